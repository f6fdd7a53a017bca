"""The Trio executor and the direct one make the same decisions: the same
schedule gives the same trace, byte for byte, under both."""

from __future__ import annotations

import attrs
import pytest

from actors import Executor
from mmurace import Config, RandomWalk, Replay
from mmurace.report import render_run, to_json
from scenarios import CATALOG

SCENARIO = CATALOG["race_remap"]


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_same_seed_same_run_under_both_executors(design: str) -> None:
    trio_config = Config(SCENARIO, design, executor=Executor.TRIO)
    direct_config = attrs.evolve(trio_config, executor=Executor.DIRECT)
    for seed in range(60):
        by_trio = await trio_config.run(RandomWalk(seed))
        by_hand = await direct_config.run(RandomWalk(seed))
        assert by_hand == by_trio, f"seed {seed}"
        assert render_run(direct_config, by_hand) == render_run(trio_config, by_trio)
        assert to_json(direct_config, by_hand) == to_json(trio_config, by_trio)


async def test_a_schedule_recorded_by_one_replays_under_the_other() -> None:
    trio_config = Config(SCENARIO, "no_retry", executor=Executor.TRIO)
    direct_config = attrs.evolve(trio_config, executor=Executor.DIRECT)
    for seed in range(60):
        recorded = await direct_config.run(RandomWalk(seed))
        assert await trio_config.run(Replay(recorded.schedule)) == recorded
        recorded = await trio_config.run(RandomWalk(seed))
        assert await direct_config.run(Replay(recorded.schedule)) == recorded


def test_direct_executor_needs_no_event_loop() -> None:
    from actors import Runtime

    result = Runtime(executor=Executor.DIRECT).run_direct(SCENARIO.build("no_retry"), RandomWalk(42))
    assert result.finding is not None
    assert result.finding.oracle == "stale_spte"
