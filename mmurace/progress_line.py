"""One line that says how far a long search is: states, runs, depth, rate.

On a terminal it is a transient status line (rich), redrawn a few times a
second and gone when the search ends; otherwise (a log, a pipe) a plain line
on stderr every ``PLAIN_SECONDS``, the first after that long, so that a
short search prints nothing. The clock only paces what is shown: it never
touches a run.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import Any

from .explore import Progress

#: how often a line is printed when stderr is not a terminal
PLAIN_SECONDS = 10.0
#: how often the terminal's line is redrawn
REDRAW_SECONDS = 0.2


class ProgressLine:
    """A context manager; ``update`` (and ``runs``, ``parts``) are the searches' callbacks."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._terminal = _terminal()
        self._status: Any = None
        self._start = self._last = time.monotonic()

    def __enter__(self) -> ProgressLine:
        if self._terminal:
            from rich.console import Console

            self._status = Console(stderr=True).status(self._what)
            self._status.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._status is not None:
            self._status.__exit__(kind, exc, tb)

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last < (REDRAW_SECONDS if self._terminal else PLAIN_SECONDS):
            return False
        self._last = now
        return True

    def _show(self, text: str) -> None:
        if self._status is not None:
            self._status.update(f"{self._what}: {text}")
        else:
            print(f"{self._what}: {text}", file=sys.stderr, flush=True)

    def _rate(self, runs: int) -> str:
        return f"{runs / max(time.monotonic() - self._start, 1e-9):,.0f} runs/s"

    def update(self, p: Progress) -> None:
        """After each run of a stateful (or stateless) search."""
        if self._due():
            states = "" if p.states is None else f"{p.states:,} states, "
            self._show(f"{states}{p.runs:,} runs, depth {p.depth}, {self._rate(p.runs)}")

    def runs(self, n: int) -> None:
        """After each run of a search that counts runs only."""
        if self._due():
            self._show(f"{n:,} runs, {self._rate(n)}")

    def parts(self, done: int, total: int, runs: int) -> None:
        """After each part of a search split over processes."""
        if self._due():
            self._show(f"{done}/{total} parts done, {runs:,} runs, {self._rate(runs)}")


def _terminal() -> bool:
    """Whether rich would draw on stderr; rich (40 ms to import) is asked only when it might."""
    if not (sys.stderr.isatty() or "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ):
        return False
    from rich.console import Console

    return Console(stderr=True).is_terminal
