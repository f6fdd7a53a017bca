"""A bound on one step's wall time: a step stuck in a loop is reported, not waited for.

A step runs from one scheduling point to the next, in microseconds. One that
never reaches its next point (``while True: pass`` in an actor) would hang
the run, and the command with it. While a run is watched, a ``SIGALRM``
interval timer ticks every ``TICK`` seconds; when a step has been running
for ``seconds`` without the executor resuming any actor, the signal handler
raises ``StepTimeout`` in it, and the executor reports a ``step_timeout``
finding at that step.

What Python allows, and so the limits:

- Signal handlers run in the main thread, between bytecodes. A pure-Python
  loop is interrupted; so is a C call that sleeps or waits (``time.sleep``,
  a blocking lock), which the signal breaks out of. A C call that computes
  and holds the GIL (``sum(range(10**12))``, a huge regex) is not: the
  handler runs only when it returns.
- Only the main thread of a process gets signals: a run in another thread
  (a Dask worker runs tasks in a thread pool) is not watched, and a stuck
  step there hangs that worker until the cluster's own timeouts end it.
  Likewise on a platform without ``signal.setitimer`` (Windows).
- The bound is wall time, the only thing here that is: it can only turn a
  step that takes longer than ``seconds`` into a finding, so it never
  changes a run whose steps are short (any real step is, by 6 orders of
  magnitude). The finding replays: the same schedule reaches the same loop.
  What the stuck step did before it was stopped depends on when, so the
  executor drops it from the trace and does not judge it.
- While a run is watched, an earlier ``SIGALRM`` handler and timer (pytest-timeout's,
  say) are set aside, and given back when the last watched run ends.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType

#: seconds between two looks at the running step
TICK = 0.05


class StepTimeout(BaseException):
    """Raised inside a step that ran past its bound.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that an actor's
    ``except Exception`` cannot swallow it; only the executor catches it.
    """


_watched: list[Watchdog] = []
_set_aside: tuple[object, tuple[float, float]] | None = None


def _alarm(signum: int, frame: FrameType | None) -> None:
    for dog in _watched:
        dog.look()


class Watchdog:
    """Watches one run's steps; the executor counts each resume and says when a step runs."""

    __slots__ = ("seconds", "resumes", "stepping", "_seen", "_since")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds  # None: not watched
        self.resumes = 0  # actors resumed so far: a step that ends makes it move
        self.stepping = False  # an actor's step is running now (not the runtime's own work)
        self._seen = -1
        self._since = 0.0

    def look(self) -> None:
        """Raise ``StepTimeout`` if the running step has not moved on for ``seconds``."""
        if not self.stepping or self.resumes != self._seen:
            self._seen, self._since = self.resumes, time.monotonic()
        elif self.seconds is not None and time.monotonic() - self._since >= self.seconds:
            self._seen = -1
            raise StepTimeout

    def __enter__(self) -> Watchdog:
        global _set_aside
        if self.seconds is None or not _can_alarm():
            return self
        if not _watched:
            handler = signal.signal(signal.SIGALRM, _alarm)
            _set_aside = (handler, signal.setitimer(signal.ITIMER_REAL, TICK, TICK))
        _watched.append(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _set_aside
        if self not in _watched:
            return
        _watched.remove(self)
        if not _watched and _set_aside is not None:
            handler, (delay, interval) = _set_aside
            _set_aside = None
            signal.setitimer(signal.ITIMER_REAL, delay, interval)
            signal.signal(signal.SIGALRM, handler)  # type: ignore[arg-type]


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
