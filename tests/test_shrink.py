"""Shrinking to the fewest preemptions: the passes, then the search that confirms them."""

from __future__ import annotations

import pytest

from actors import ActorContext, ActorSpec, Design, Executor, RunResult, Schedule, World
from actors.runtime import ActorFn
from mmu import Model, Violation
from mmurace import Config
from mmurace.api import configure
from mmurace.cli import main
from mmurace.shrink import shrink
from mmurace.strategies import Sparse
from scenarios import Scenario


def build_two_ways(design: Design) -> World:
    """A breaks if B's first step runs right after a2 (one preemption: decision 3),
    or right after a0 with A taking it back at once (two: decisions 1 and 2).

    From the second, no single pass makes progress: dropping either preemption
    leaves b0 where it breaks nothing, targets are already the lowest, and
    moving the first earlier puts b0 before a0. The passes stop at 2."""
    order: list[str] = []

    def actor(name: str, steps: int) -> ActorFn:
        async def run(ctx: ActorContext) -> None:
            for i in range(steps):
                await ctx.point(f"{name}{i}")
                order.append(f"{name}{i}")

        return run

    def broken(model: Model) -> Violation | None:
        text = " ".join(order)
        if "a2 b0" in text or "a0 b0 a1" in text:
            return Violation("order", f"b0 ran at {text}")
        return None

    world = World(Model.build(), (ActorSpec("a", actor("a", 4)), ActorSpec("b", actor("b", 2))))
    world.oracles = {"order": broken}
    return world


TWO_WAYS = Config(Scenario("two_ways", "two ways to break", "", build_two_ways, ("toy",)), Design("toy", "toy"),
                  executor=Executor.DIRECT)


def from_sparse(config: Config, preemptions: dict[int, int]) -> RunResult:
    result = config.run_direct(Sparse(preemptions))
    assert result.finding is not None
    return result


def test_the_passes_stop_in_a_local_minimum_and_the_search_finds_the_true_one() -> None:
    local = from_sparse(TWO_WAYS, {1: 0, 2: 0})
    assert local.schedule.encode() == "v1:3:1=1,2=1"
    passes_only = shrink(TWO_WAYS, local, confirm_runs=0)
    assert passes_only.result.schedule == local.schedule
    assert not passes_only.minimal
    confirmed = shrink(TWO_WAYS, local)
    assert confirmed.result.schedule.encode() == "v1:4:3=1"
    assert confirmed.result.finding is not None and confirmed.result.finding.oracle == "order"
    assert confirmed.minimal
    assert confirmed.note() == "no schedule with fewer preemptions fails this way"


def test_a_confirmation_cut_short_by_its_run_limit_says_so() -> None:
    local = from_sparse(TWO_WAYS, {1: 0, 2: 0})
    # bound 0 is one run; nothing is left for bound 1
    cut = shrink(TWO_WAYS, local, confirm_runs=1)
    assert cut.result.schedule == local.schedule
    assert (cut.minimal, cut.cut_short) == (False, 1)
    assert cut.note() == (
        "fewer not ruled out: the search of schedules with at most 1 preemption stopped at its limit of 1 runs"
    )


def test_a_true_minimum_is_confirmed_as_it_is() -> None:
    one = from_sparse(TWO_WAYS, {3: 0})
    shrunk = shrink(TWO_WAYS, one)
    assert shrunk.result.schedule == one.schedule
    assert shrunk.minimal


@pytest.mark.parametrize(
    ("scenario", "design", "local", "fewest"),
    [
        # where the passes alone stop (from random walks 6 and 5): 8 and 3 preemptions
        ("ksm_merge", "no_retry", "v1:16:1=1,2=1,6=1,7=1,8=1,10=1,11=1,13=1", 2),
        ("thp_split", "level_early", "v1:17:0=1,1=1,3=1", 1),
    ],
)
def test_catalog_races_shrink_to_their_fewest_preemptions(scenario: str, design: str, local: str, fewest: int) -> None:
    config = configure(scenario, design, executor=Executor.DIRECT)
    found = from_sparse(config, Sparse.from_schedule(Schedule.decode(local)).preemptions)
    assert shrink(config, found, confirm_runs=0).result.schedule.encode() == local
    shrunk = shrink(config, found)
    assert (shrunk.result.schedule.preemptions, shrunk.minimal) == (fewest, True)


def test_the_shrink_command_says_the_count_is_the_fewest(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["shrink", "ksm_merge", "--design", "no_retry", "--schedule", "v1:16:1=1,2=1,6=1,7=1,8=1,10=1,11=1,13=1"])
    out = capsys.readouterr().out
    assert status == 1
    assert "        to v1:20:9=1,15=1@2dcc87 (2 preemptions, 20 decisions) in " in out
    assert out.endswith("(no schedule with fewer preemptions fails this way)\n")


def test_a_matrix_cell_whose_count_is_not_proved_says_at_most() -> None:
    from mmurace.matrix import Cell, Outcome

    cell = Cell("ksm_merge", "no_retry", Outcome.BROKEN, "writable_spte", "v1:17:0=1,6=1,11=1@2dcc87", minimal=False)
    assert cell.text() == "writable_spte (<=3 preemptions)"
    assert Cell("s", "d", Outcome.BROKEN, "x", "v1:4:3=1").text() == "x (1 preemption)"
