"""Stopping a long command cleanly: the first SIGINT or SIGTERM asks, a second one insists.

Inside ``stoppable()`` the first signal is only recorded. The search loops
(hunt, stress, explore, shrink, matrix) call ``requested()`` between two runs
and return what they have, marked as interrupted, so no run is cut in half and
what was found so far is printed and saved. A second signal raises
``Interrupted`` (a KeyboardInterrupt) wherever the program is.

A Ctrl-C reaches the terminal's whole process group, worker processes
included: workers ignore SIGINT (``ignore_in_worker``, a pool initializer)
and it is their parent that stops them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import attrs

SIGINT = signal.SIGINT
SIGTERM = signal.SIGTERM


class Interrupted(KeyboardInterrupt):
    """A second signal: stop now."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@attrs.define
class Stop:
    """The signal that asked a command to stop, once one has."""

    signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def _ask(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum


#: the Stop of the innermost ``stoppable()`` block, if any
_current: Stop | None = None


def requested() -> bool:
    """Whether a signal asked the running command to stop (the loops' default ``stop``)."""
    return bool(_current)


@contextlib.contextmanager
def stoppable() -> Iterator[Stop]:
    """Catch SIGINT and SIGTERM for the block; the Stop it yields says whether one came."""
    global _current
    stop, outer = Stop(), _current
    if threading.current_thread() is not threading.main_thread():  # signals go to the main thread
        yield stop
        return
    previous = {signum: signal.signal(signum, stop._ask) for signum in (SIGINT, SIGTERM)}
    _current = stop
    try:
        yield stop
    finally:
        _current = outer
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignore_in_worker() -> None:
    """Pool initializer: leave Ctrl-C to the parent, and die at once on SIGTERM."""
    signal.signal(SIGINT, signal.SIG_IGN)
    signal.signal(SIGTERM, signal.SIG_DFL)
