"""PCT: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi,
Nagarakatte, "A Randomized Scheduler with Probabilistic Guarantees of Finding
Bugs", ASPLOS 2010).

Every actor gets a random priority above ``depth``; the highest-priority
runnable actor always runs. At ``depth - 1`` change points, chosen uniformly
among the first ``steps`` decisions, the actor about to run drops to a
priority below every initial one (change point j sets priority j). A bug of
depth d (d ordering constraints) among n actors and k steps is then found
with probability at least 1 / (n * k^(d-1)) per run, whatever its position:
what the random walk lacks when the race is buried under unrelated steps.

Decisions with a single runnable actor are forced and are not counted, so
``steps`` is measured in decisions (``Config.estimate_decisions``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs


@attrs.define(eq=False)
class Pct:
    """One PCT run, seeded: priorities and change points drawn from ``seed``."""

    seed: int
    depth: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    steps: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    _random: random.Random = attrs.field(init=False)
    _priority: dict[int, float] = attrs.field(init=False, factory=dict)
    # invariant: len == depth - 1; decision index -> the lowered priority it gives
    _changes: dict[int, int] = attrs.field(init=False, factory=dict)
    _decision: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._random = random.Random(self.seed)
        points = self._random.sample(range(self.steps), min(self.depth - 1, self.steps))
        self._changes = {point: j for j, point in enumerate(sorted(points), 1)}

    def _of(self, actor: int) -> float:
        # drawn at first sight: actors are seen in the same order on every run of a seed
        if actor not in self._priority:
            self._priority[actor] = self.depth + self._random.random()
        return self._priority[actor]

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        best = max(range(len(runnable)), key=lambda i: self._of(runnable[i]))
        change = self._changes.get(self._decision)
        self._decision += 1
        if change is not None:
            self._priority[runnable[best]] = change
            best = max(range(len(runnable)), key=lambda i: self._of(runnable[i]))
        return best
