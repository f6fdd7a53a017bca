"""What a run leaves behind: frozen values that reports and tests consume."""

from __future__ import annotations

import enum

import attrs

from mmu.footprint import Access

from .schedule import Schedule


class Status(enum.IntEnum):
    """How a run ended, ordered from least to most interesting."""

    PASSED = 1
    VIOLATION = 2


@attrs.frozen
class Step:
    """One atomic step: an actor ran from one scheduling point to the next."""

    index: int
    actor: str
    label: str  # the kernel function (or hardware event) the step stands for
    events: tuple[str, ...]  # what the model recorded during the step
    # what it read and wrote, for partial-order reduction; recorded only when a
    # strategy observes steps, so not part of what makes two runs the same
    access: Access = attrs.field(default=Access(), eq=False)
    # the kernel thread it ran in: its actor's, or for an actor serving a
    # request, the requester's (a synchronous call runs there)
    thread: str = ""


@attrs.frozen
class Finding:
    """A violated oracle (or deadlock, step bound, actor crash) and where."""

    oracle: str
    step: int  # index of the fatal step; -1 if before any step
    message: str


@attrs.frozen
class RunResult:
    """One run of one schedule, after the fact."""

    status: Status
    actors: tuple[str, ...]
    steps: tuple[Step, ...]
    finding: Finding | None
    schedule: Schedule
