"""A schedule as a few preemptions: (decision index, target) pairs.

Drawing one choice per decision makes a search (or Hypothesis) spend its
effort on the long stretches where nothing matters; a race buried under 40
unrelated steps is then out of reach. A sparse schedule names only the
decisions where the running actor is preempted, and whom to switch to:
every other decision keeps the running actor (position 0). It is the
encoding Hypothesis draws and shrinks (fewer pairs, earlier decisions,
lower targets), and the one ``mmurace shrink`` works on.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from actors import Schedule


@attrs.define(eq=False)
class Sparse:
    """Preempt at the listed decisions, keep running everywhere else."""

    #: decision index -> target; the target picks among the non-zero positions (mod their count)
    preemptions: dict[int, int]
    _decision: int = attrs.field(init=False, default=0)

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[int, int]]) -> Sparse:
        """Later pairs at the same decision replace earlier ones."""
        return cls(dict(pairs))

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> Sparse:
        """The sparse form that replays ``schedule`` exactly (choice c is target c - 1)."""
        return cls({i: c - 1 for i, c in enumerate(schedule.choices) if c})

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        target = self.preemptions.get(self._decision)
        self._decision += 1
        if target is None:
            return 0
        return target % (len(runnable) - 1) + 1
