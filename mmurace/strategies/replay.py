"""Replay a recorded schedule, failing loudly when the run no longer fits it."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from actors import Schedule, ScheduleDiverged


@attrs.define(eq=False)
class Replay:
    """Replay a recorded schedule decision by decision, failing loudly if the run diverges."""

    schedule: Schedule
    _next: int = attrs.field(default=0, init=False)
    #: decisions replayed so far that switched away from an actor that could go on: the
    #: preemptions explore's bound counts (``Schedule.preemptions`` counts every choice
    #: other than the default, also after an actor that could not go on)
    switches: int = attrs.field(default=0, init=False)

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        n = len(runnable)
        i = self._next
        choices = self.schedule.choices
        if i >= len(choices):
            raise ScheduleDiverged(
                f"schedule diverged: the run needs more than the schedule's {len(choices)} decisions"
            )
        if choices[i] >= n:
            raise ScheduleDiverged(
                f"schedule diverged at decision {i}: choice {choices[i]} but only {n} actors are runnable"
            )
        self._next += 1
        if choices[i] and runnable[0] == current:  # listed from current: it could go on
            self.switches += 1
        return choices[i]

    def check_complete(self) -> None:
        """Raise ``ScheduleDiverged`` if the run ended before using every decision."""
        if self._next != len(self.schedule.choices):
            raise ScheduleDiverged(
                f"schedule diverged: the run ended after {self._next} decisions,"
                f" the schedule has {len(self.schedule.choices)}"
            )
