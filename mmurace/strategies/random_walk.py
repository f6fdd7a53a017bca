"""Random walk: at every decision, a uniformly random runnable actor."""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs


@attrs.define(eq=False)
class RandomWalk:
    """Pick uniformly among the runnable actors, from one seeded generator."""

    seed: int
    _random: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        return self._random.randrange(len(runnable))
