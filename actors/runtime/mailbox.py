"""Request/reply between actors: one actor serving another's requests.

The caller stays blocked (not runnable) until the reply is in, and the
steps that serve a request count as the requester's kernel thread (for
lockdep and the ``--threads`` view), as a synchronous call would. (KVM's
notifier callbacks need none of this: they run in the host's own actor.)
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

_NO_REPLY = object()


@attrs.define(eq=False)
class Request:
    """A message in flight and, once answered, its reply."""

    message: Any
    sender: str
    key: tuple[str, int]  # ("request", n): names it in footprints, equal across runs
    _reply: Any = attrs.field(default=_NO_REPLY, init=False)

    @property
    def answered(self) -> bool:
        return self._reply is not _NO_REPLY

    def answer(self, value: Any = None) -> None:
        if self.answered:
            raise RuntimeError(f"request {self.message!r} answered twice")
        self._reply = value

    @property
    def reply(self) -> Any:
        if not self.answered:
            raise RuntimeError(f"request {self.message!r} has no reply yet")
        return self._reply


@attrs.define(eq=False)
class Mailbox:
    """A FIFO of requests for one serving actor."""

    name: str
    _queue: deque[Request] = attrs.field(factory=deque, init=False)
    _sent: int = attrs.field(default=0, init=False)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def post(self, message: Any, sender: str) -> Request:
        """Queue ``message`` and return its request, numbered in sending order."""
        self._sent += 1
        request = Request(message, sender, (self.name, self._sent))
        self._queue.append(request)
        return request

    def take(self) -> Request:
        return self._queue.popleft()
