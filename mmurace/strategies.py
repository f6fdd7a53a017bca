"""Strategies: who runs next. Each sees only how many actors are runnable.

Decisions are relative to the actor that ran last (see ``actors.schedule``):
0 keeps it running, anything else is a preemption.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from actors import Schedule, ScheduleDiverged


@attrs.define(eq=False)
class RandomWalk:
    """Pick uniformly among the runnable actors, from one seeded generator."""

    seed: int
    _random: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        return self._random.randrange(len(runnable))


@attrs.define(eq=False)
class Replay:
    """Replay a recorded schedule decision by decision, failing loudly if the run diverges."""

    schedule: Schedule
    _next: int = attrs.field(default=0, init=False)

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
        return choices[i]

    def check_complete(self) -> None:
        """Raise ``ScheduleDiverged`` if the run ended before using every decision."""
        if self._next != len(self.schedule.choices):
            raise ScheduleDiverged(
                f"schedule diverged: the run ended after {self._next} decisions,"
                f" the schedule has {len(self.schedule.choices)}"
            )
