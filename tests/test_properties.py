"""Hypothesis drives the scheduler: any decisions replay exactly, today's KVM
survives every schedule Hypothesis tries, and the buggy design is found."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest
import trio
from hypothesis import HealthCheck, find, given, settings, strategies as st

from actors import Runtime, Schedule
from mmurace import Config, Replay
from scenarios import CATALOG

SCENARIO = CATALOG["race_remap"]
decisions = st.lists(st.integers(0, 2), max_size=60)


@attrs.define
class Drawn:
    """Answer from a drawn list (modulo the choices offered), then keep running."""

    draws: list[int]
    _i: int = 0

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        n = len(runnable)
        c = self.draws[self._i] % n if self._i < len(self.draws) else 0
        self._i += 1
        return c


@pytest.fixture
async def runtime() -> Runtime:
    # function-scoped and async on purpose: pytest-trio needs the health check below
    await trio.sleep(0)
    return Runtime()


@settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(draws=decisions, design=st.sampled_from(SCENARIO.designs))
async def test_any_decisions_replay_to_the_same_run(runtime: Runtime, draws: list[int], design: str) -> None:
    world = SCENARIO.build(design)
    first = await runtime.run(world, Drawn(draws))
    again = await runtime.run(SCENARIO.build(design), Replay(first.schedule))
    assert again == first
    assert Schedule.decode(first.schedule.encode()) == first.schedule


@settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(draws=decisions, remaps=st.integers(1, 2))
async def test_seq_retry_survives_every_schedule(runtime: Runtime, draws: list[int], remaps: int) -> None:
    result = await runtime.run(SCENARIO.build("seq_retry", remaps=remaps), Drawn(draws))
    assert result.finding is None, result.finding


def test_hypothesis_finds_and_shrinks_the_no_retry_race() -> None:
    config = Config(SCENARIO, "no_retry", ("stale_spte",))

    def breaks(draws: list[int]) -> bool:
        return trio.run(config.run, Drawn(draws)).finding is not None

    minimal = find(decisions, breaks, settings=settings(derandomize=True, max_examples=2000, database=None))
    schedule = trio.run(config.run, Drawn(minimal)).schedule
    # one preemption is enough: switch to the remapper right after gup and let it
    # finish; the vcpu then maps the page the remap let go of, and its release frees it
    assert schedule.encode() == "v1:11:2=1"
