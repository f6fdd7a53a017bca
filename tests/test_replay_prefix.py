"""A search re-reaches a state by replaying the last run's prefix without asking the
strategy (``DirectExecution.replay``): the runs it makes are the runs it would make
asking at every step, and a world that does not repeat itself is refused, never proved."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from actors import ActorContext, ActorSpec, World
from mmurace import Config, UsageError
from mmurace.api import configure
from mmurace.explore import Verdict, _PathStrategy, explore_direct
from mmurace.strategies import Replay

from .small_worlds import toy_config
from .toys import world


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the steps replayed from a trail (patched into every path strategy)."""
    replayed: list[int] = []
    fast = _PathStrategy.replay

    def counted(self: _PathStrategy) -> object:
        plan = fast(self)
        if plan is not None:
            replayed.append(len(plan[0]))
        return plan

    monkeypatch.setattr(_PathStrategy, "replay", counted)
    return replayed


def test_a_race_found_through_replayed_prefixes_has_the_trace_its_schedule_replays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replayed = _counting(monkeypatch)
    config = configure("race_remap", "no_retry", params=["remaps=2"])
    e = explore_direct(config, preemptions=None)
    assert e.verdict is Verdict.FOUND and e.result is not None
    assert sum(replayed) > 0, "the search never replayed a prefix from a trail"
    again = config.run_direct(Replay(e.result.schedule))
    assert again.steps == e.result.steps  # events, labels, threads: byte for byte
    assert again.finding == e.result.finding


def test_replaying_prefixes_changes_no_count_of_a_proof(monkeypatch: pytest.MonkeyPatch) -> None:
    config = configure("race_remap", "seq_retry", params=["remaps=2"])
    fast = explore_direct(config, preemptions=None)
    monkeypatch.setattr(_PathStrategy, "replay", None)  # every replayed step asks the strategy
    slow = explore_direct(config, preemptions=None)
    assert fast.verdict is slow.verdict is Verdict.EXHAUSTED
    assert (fast.executions, fast.pruned, fast.states, fast.revisits) == (
        slow.executions, slow.pruned, slow.states, slow.revisits,
    )


def _drifting() -> Callable[[], World]:
    """A world whose actor takes one step fewer on every other build: it depends on
    something outside the model (here a counter of builds, as a global would be)."""
    builds = itertools.count()

    def build() -> World:
        steps = 3 if next(builds) % 2 == 0 else 1

        # both touch one word: steps that touch nothing would leave a search nothing to branch on
        async def drifter(ctx: ActorContext) -> None:
            for i in range(steps):
                await ctx.point(f"drift {i}")
                ctx.model.fp.write(("word",))

        async def steady(ctx: ActorContext) -> None:
            for i in range(3):
                await ctx.point(f"steady {i}")
                ctx.model.fp.write(("word",))

        return world(ActorSpec("drifter", drifter), ActorSpec("steady", steady))

    return build


@pytest.mark.parametrize("stateful", [True, False])
def test_a_world_that_does_not_repeat_itself_is_refused_in_one_line(stateful: bool) -> None:
    config: Config = toy_config(_drifting())
    with pytest.raises(UsageError, match=r"^toy --design toy: nondeterministic scenario \(.*\): the same"):
        explore_direct(config, preemptions=None, stateful=stateful)
