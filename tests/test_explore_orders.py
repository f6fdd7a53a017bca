"""The simplest race: breadth first finds one with the fewest steps, iterative
deepening one with the fewest preemptions, each checked against brute force
(every schedule, no reduction, no state remembered)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from actors import Executor, RunResult, World
from mmurace import Config
from mmurace.explore import Verdict, explore_direct
from mmurace.explore_order import explore_bfs, explore_fewest_preemptions
from scenarios import CATALOG

from .small_worlds import lost_update, toy_config
from .toys import back_and_forth, stopped_late


def _catalog(scenario: str, design: str) -> Callable[[], Config]:
    return lambda: Config(CATALOG[scenario], design, executor=Executor.DIRECT)


def _toy(world_fn: Callable[[], World]) -> Callable[[], Config]:
    return lambda: toy_config(world_fn)


WORLDS = {
    "race_remap/setup_time": _catalog("race_remap", "setup_time"),
    "back_and_forth": _toy(back_and_forth),
    "stopped_late": _toy(functools.partial(stopped_late, 4, 3)),
    "lost_update": _toy(lost_update),
    "lost_update_3x1": _toy(functools.partial(lost_update, 3, 1)),
}


def _brute_fewest_steps(config: Config) -> int | None:
    lengths: list[int] = []

    def record(result: RunResult) -> bool:
        lengths.append(len(result.steps))
        return False

    e = explore_direct(config, preemptions=None, reduce=False, stateful=False, limit=5000, accept=record)
    assert e.verdict is Verdict.EXHAUSTED
    return min(lengths, default=None)


def _brute_fewest_preemptions(config: Config) -> int | None:
    for bound in range(6):
        e = explore_direct(config, preemptions=bound, reduce=False, stateful=False, limit=5000)
        assert e.verdict is not Verdict.LIMIT
        if e.verdict is Verdict.FOUND:
            return bound
    return None


@pytest.mark.parametrize("name", list(WORLDS))
def test_breadth_first_finds_a_race_with_the_fewest_steps(name: str) -> None:
    config = WORLDS[name]()
    fewest = _brute_fewest_steps(config)
    e = explore_bfs(config)
    assert fewest is not None
    assert e.verdict is Verdict.FOUND and e.result is not None
    assert len(e.result.steps) == fewest


@pytest.mark.parametrize("name", list(WORLDS))
def test_iterative_deepening_finds_a_race_with_the_fewest_preemptions(name: str) -> None:
    config = WORLDS[name]()
    fewest = _brute_fewest_preemptions(config)
    e = explore_fewest_preemptions(config)
    assert e.verdict is Verdict.FOUND
    assert e.bound == fewest


def test_both_orders_prove_a_safe_design_as_depth_first_does() -> None:
    config = Config(CATALOG["race_remap"], "seq_retry", executor=Executor.DIRECT)
    assert explore_bfs(config).verdict is Verdict.EXHAUSTED
    proof = explore_fewest_preemptions(config)
    assert (proof.verdict, proof.bound) == (Verdict.EXHAUSTED, None)


def test_breadth_first_counts_on_when_it_falls_back_to_depth_first() -> None:
    # a table of one state is full at once: the proof is finished depth first, and the
    # progress line goes on counting from the runs breadth first made, not from one again
    config = Config(CATALOG["race_remap"], "seq_retry", executor=Executor.DIRECT)
    shown: list[int] = []
    e = explore_bfs(config, max_states=1, progress=lambda p: shown.append(p.runs))
    assert e.verdict is Verdict.EXHAUSTED and e.table_full
    assert shown == sorted(shown) and len(set(shown)) == len(shown)
    assert shown[-1] == e.executions + e.pruned
