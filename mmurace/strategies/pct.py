"""PCT: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi,
Nagarakatte, "A Randomized Scheduler with Probabilistic Guarantees of
Finding Bugs", ASPLOS 2010), as shuttle's and Coyote's schedulers run it.

Every actor gets a random priority; the highest-priority runnable actor
always runs. At ``depth - 1`` change points, chosen uniformly among the
decisions ``1 .. steps - 1``, the actor about to run drops below every
priority held at that moment, so the runnable actor next in priority takes
over. A bug of depth d (d ordering constraints) among n actors and k
decisions is then found with probability at least 1 / (n * k^(d-1)) per
run, whatever its position: what the random walk lacks when the race is
buried under unrelated steps.

Each demotion goes below the ones before it (the paper draws the order of
the demoted at random; shuttle and Coyote, and this module, demote below
every current priority). Giving change point j the fixed priority j
instead, as this module once did, ranks a later demotion *above* an earlier
one: with two actors the second change point then demotes the actor that
took over to a priority still above the first one's, and nothing changes,
so no schedule with two preemptions is ever run, at any depth
(tests/test_search.py, ``test_pct_preempts_back_and_forth``).

Decisions with a single runnable actor are forced and are not counted, so
``steps`` (k) is measured in decisions. Nothing before a run tells k
exactly: a search starts from an estimate and raises it to the longest run
it has seen (``mmurace.stress``), so that change points reach the late
decisions of long runs.
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
    # initial priorities in [1, 2); the demoted get 0, -1, -2, ... in the order of demotion
    _priority: dict[int, float] = attrs.field(init=False, factory=dict)
    # invariant: len == min(depth - 1, steps - 1), each in [1, steps)
    _changes: frozenset[int] = attrs.field(init=False)
    _lowest: float = attrs.field(init=False, default=1.0)  # at or below every priority held
    _decision: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._random = random.Random(self.seed)
        # decision 0 is left out: the initial priorities already choose who starts
        points = min(self.depth - 1, self.steps - 1)
        self._changes = frozenset(self._random.sample(range(1, self.steps), points))

    def _of(self, actor: int) -> float:
        # drawn at first sight: actors are seen in the same order on every run of a seed
        if actor not in self._priority:
            self._priority[actor] = 1.0 + self._random.random()
        return self._priority[actor]

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        best = max(range(len(runnable)), key=lambda i: self._of(runnable[i]))
        if self._decision in self._changes:
            self._lowest -= 1.0
            self._priority[runnable[best]] = self._lowest
            best = max(range(len(runnable)), key=lambda i: self._of(runnable[i]))
        self._decision += 1
        return best

