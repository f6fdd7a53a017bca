"""Schedule search: PCT, exhaustive search with sleep sets, Hypothesis-drawn
sparse schedules, shrinking, and grouped findings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from actors import DESIGNS, ActorContext, ActorSpec, Design, Executor, Fault, Schedule, World
from mmu import Model, Violation
from mmurace import Config, RandomWalk, Replay
from mmurace.explore import Verdict, explore
from mmurace.shrink import shrink
from mmurace.strategies import Pct, Sparse
from mmurace.stress import Kind, stress
from scenarios import CATALOG, Scenario

from . import toys

RACE = CATALOG["race_remap"]


def config(design: str, *oracles: str) -> Config:
    return Config(RACE, design, oracles, executor=Executor.DIRECT)


# ---- toy worlds with known interleavings ----


def _toy(actors: dict[str, Callable[[ActorContext], object]], oracle: Callable[[Model], Violation | None] | None = None) -> Config:
    def build(design: str) -> World:
        w = World(Model.build(), tuple(ActorSpec(n, f) for n, f in actors.items()))  # type: ignore[arg-type]
        w.oracles = {"toy": oracle} if oracle else {}
        return w

    return Config(Scenario("toy", "toy", "toy", build, ("toy",)), Design("toy", "toy"), executor=Executor.DIRECT)


def _private(key: str) -> Callable[[ActorContext], object]:
    async def actor(ctx: ActorContext) -> None:
        for i in range(2):
            await ctx.point(f"{key}{i}")
            ctx.model.fp.write((key,))

    return actor


async def test_independent_steps_are_explored_once_with_sleep_sets() -> None:
    """a0 a1 and b0 b1 touch disjoint objects. Without reduction the six
    interleavings aabb abab abba baab baba bbaa are all run; with sleep sets,
    only aabb runs to the end: abba and bbaa are cut short when the sleeping
    a is forced to run, and abab, baab, baba are never started."""
    toy = _toy({"a": _private("a"), "b": _private("b")})
    full = await explore(toy, preemptions=None, reduce=False, stateful=False)
    reduced = await explore(toy, preemptions=None, stateful=False)
    assert (full.verdict, full.executions) == (Verdict.EXHAUSTED, 6)
    assert (reduced.verdict, reduced.executions, reduced.pruned) == (Verdict.EXHAUSTED, 1, 2)


def _incrementer(atomic: bool) -> Callable[[ActorContext], object]:
    async def actor(ctx: ActorContext) -> None:
        fp, counter = ctx.model.fp, ctx.model.kvm.slot_phys
        await ctx.point("load x")
        fp.read(("x",))
        seen = counter.get(0, 0)
        if not atomic:
            await ctx.point("store x + 1")
        fp.write(("x",))
        counter[0] = seen + 1

    return actor


def _lost_update(model: Model) -> Violation | None:
    finished = model.kvm.slot_phys.get(1, 0)
    return None if finished < 2 or model.kvm.slot_phys[0] == 2 else Violation("toy", "lost update")


def _counting(inner: Callable[[ActorContext], object]) -> Callable[[ActorContext], object]:
    async def actor(ctx: ActorContext) -> None:
        await inner(ctx)  # type: ignore[misc]
        ctx.model.kvm.slot_phys[1] = ctx.model.kvm.slot_phys.get(1, 0) + 1

    return actor


@pytest.mark.parametrize("reduce", [True, False])
async def test_a_lost_update_is_found_with_and_without_reduction(reduce: bool) -> None:
    racy = _toy({n: _counting(_incrementer(atomic=False)) for n in "ab"}, _lost_update)
    found = await explore(racy, preemptions=None, reduce=reduce)
    assert found.verdict is Verdict.FOUND
    atomic = _toy({n: _counting(_incrementer(atomic=True)) for n in "ab"}, _lost_update)
    proof = await explore(atomic, preemptions=None, reduce=reduce)
    assert proof.verdict is Verdict.EXHAUSTED


# ---- exhaustive search on race_remap ----


@pytest.mark.parametrize(("design", "bound"), [("no_retry", 1), ("setup_time", 1)])
async def test_explore_finds_the_known_races(design: str, bound: int) -> None:
    found = await explore(config(design), preemptions=bound)
    assert found.verdict is Verdict.FOUND
    assert found.result is not None and found.result.finding is not None
    replayed = await config(design).run(Replay(found.result.schedule))
    assert replayed == found.result


async def _slow_gup_only(design: Design, ctx: ActorContext, f: Fault) -> bool:
    return False


async def test_explore_exhausts_seq_retry_unbounded_and_the_reduction_pays() -> None:
    # Without gup-fast: a lockless fault may run anywhere in the remap's window,
    # which multiplies the unreduced space by fourteen (33k runs), not the reduced one.
    slow = Config(RACE, DESIGNS["seq_retry"].replace(resolve_fast=_slow_gup_only), executor=Executor.DIRECT)
    reduced = await explore(slow, preemptions=None, stateful=False)
    full = await explore(slow, preemptions=None, reduce=False, stateful=False)
    assert reduced.verdict is full.verdict is Verdict.EXHAUSTED
    assert reduced.executions * 10 < full.executions, (reduced.executions, full.executions)
    assert (await explore(config("seq_retry"), preemptions=None)).verdict is Verdict.EXHAUSTED


async def test_a_larger_bound_explores_more() -> None:
    counts = [(await explore(config("seq_retry"), preemptions=b)).executions for b in (0, 1, 2)]
    assert counts == sorted(counts) and counts[0] < counts[2]


# ---- PCT ----


async def test_pct_is_seeded_and_replays() -> None:
    first = await config("no_retry").run(Pct(5, depth=3, steps=20))
    again = await config("no_retry").run(Pct(5, depth=3, steps=20))
    assert first == again
    assert await config("no_retry").run(Replay(first.schedule)) == first


def _world(build: Callable[[], World]) -> Config:
    return Config(Scenario("toy", "toy", "toy", lambda design: build(), ("toy",)), Design("toy", "toy"), executor=Executor.DIRECT)


async def test_pct_preempts_back_and_forth() -> None:
    """``a`` sets a flag then clears it, ``b`` reads it twice (toys.back_and_forth):
    only a0 b0 a1 b1 breaks, with two preemptions (a after a0, b after b0).

    The old PCT could not run that schedule at any depth. Change point j gave
    the actor about to run the fixed priority j, below every initial priority
    but above every earlier demotion. The first change point demotes the
    running actor, say a, to 1, and b takes over; every later one finds b
    about to run (a never blocks b here) and gives it j > 1: still above a.
    So b runs to its end before a moves again: one preemption at most, and no
    schedule with one preemption (aabb abba baab bbaa) breaks, as the search
    below shows. A demotion below every current priority hands a the second
    preemption.
    """
    toy = _world(toys.back_and_forth)
    one = await explore(toy, preemptions=1, reduce=False)
    assert (one.verdict, one.executions) == (Verdict.EXHAUSTED, 4)
    assert (await explore(toy, preemptions=2)).verdict is Verdict.FOUND
    assert not (await stress(toy, Kind.PCT, schedules=100, depth=2)).found
    found = await stress(toy, Kind.PCT, schedules=100, depth=3)
    assert found.first_at == 7
    assert found.groups[0].first.result.schedule.preemptions == 2


async def test_pct_raises_its_step_estimate_to_the_longest_run() -> None:
    """``stop`` ends two 12-step workers; the finding needs both 8 steps in first
    (toys.stopped_late). A random walk picks ``stop`` early, so the estimate k
    from random walks is 7 decisions, and with k fixed at 7 PCT of depth 2
    never finds it: ``stop`` runs as soon as it is the highest-priority actor,
    so it must start below a worker X; X runs until the change point, at a
    decision below 7, and drops below ``stop``, which then runs while X has
    done fewer than 8 steps. The runs PCT itself makes, the other worker
    running to its end before ``stop``, last 20 decisions and more; taken as
    k, they bring the change point to X's eighth step.
    """
    toy = _world(toys.stopped_late)
    k = toy.estimate_decisions()
    assert k == 7
    assert not any(toy.run_direct(Pct(seed, 2, k)).finding for seed in range(200))
    found = await stress(toy, Kind.PCT, schedules=100, depth=2)
    assert found.first_at == 18


@pytest.mark.parametrize(("design", "within"), [("setup_time", 50), ("no_retry", 200)])
async def test_pct_finds_the_known_races(design: str, within: int) -> None:
    outcome = await stress(config(design), Kind.PCT, schedules=within)
    assert outcome.found


async def test_pct_and_random_leave_seq_retry_alone() -> None:
    for kind in (Kind.PCT, Kind.RANDOM):
        assert not (await stress(config("seq_retry"), kind, schedules=300, depth=3)).found


# ---- Hypothesis-drawn sparse schedules ----


async def test_hypothesis_finds_no_retry_and_shrinks_it_to_the_shortest_schedule() -> None:
    outcome = await stress(config("no_retry", "stale_spte"), Kind.HYPOTHESIS, schedules=300)
    assert outcome.found
    # nine decisions: the fault takes the page lockless (gup-fast) inside QEMU's
    # write-locked window, after KVM's zap, and maps it (sort_key: fewest decisions first)
    assert outcome.groups[0].first.result.schedule.encode() == "v1:9:0=1,3=1"


async def test_hypothesis_leaves_seq_retry_alone() -> None:
    assert not (await stress(config("seq_retry"), Kind.HYPOTHESIS, schedules=150)).found


def test_sparse_form_replays_a_schedule_exactly() -> None:
    schedule = Schedule.decode("v1:11:2=1,4=1,5=1,6=1,7=1,10=1")
    by_sparse = config("setup_time").run_direct(Sparse.from_schedule(schedule))
    assert by_sparse.schedule == schedule


# ---- shrinking ----


def test_shrinking_a_hand_written_schedule() -> None:
    original = config("no_retry").run_direct(Sparse.from_schedule(Schedule.decode("v1:10:2=1,5=1,8=1")))
    assert original.finding is not None
    shrunk = shrink(config("no_retry"), original)
    assert shrunk.result.schedule.encode() == "v1:9:2=1,5=1"
    assert shrunk.result.finding is not None and shrunk.result.finding.oracle == "stale_spte"


@pytest.mark.parametrize("design", ["setup_time", "no_retry"])
async def test_shrinking_never_lengthens_and_keeps_the_oracle(design: str) -> None:
    outcome = await stress(config(design), Kind.RANDOM, schedules=300, keep_going=True)
    for group in outcome.groups:
        result = group.first.result
        shrunk = shrink(config(design), result).result
        assert shrunk.finding is not None and result.finding is not None
        assert shrunk.finding.oracle == result.finding.oracle
        assert shrunk.schedule.preemptions <= result.schedule.preemptions
        assert len(shrunk.schedule.choices) <= len(result.schedule.choices) or (
            shrunk.schedule.preemptions < result.schedule.preemptions
        )


def test_a_passing_run_cannot_be_shrunk() -> None:
    passing = config("seq_retry").run_direct(Sparse({}))
    with pytest.raises(ValueError, match=r"^only a failing run can be shrunk$"):
        shrink(config("seq_retry"), passing)


# ---- findings ----


async def test_findings_are_grouped_by_oracle_and_fatal_step() -> None:
    outcome = await stress(config("no_retry"), Kind.RANDOM, schedules=300, keep_going=True)
    failing = [s for s in range(300) if (await config("no_retry").run(RandomWalk(s))).finding]
    assert sum(g.count for g in outcome.groups) == len(failing)
    locations = [g.first.location for g in outcome.groups]
    assert len(set(locations)) == len(locations)
    assert all(g.first.strategy == f"random --seed {g.first.seed}" for g in outcome.groups)


async def test_hypothesis_search_is_seeded() -> None:
    runs = [await stress(config("setup_time"), Kind.HYPOTHESIS, schedules=100, seed=7) for _ in range(2)]
    assert runs[0].first_at == runs[1].first_at
    assert runs[0].groups[0].first.result == runs[1].groups[0].first.result


async def test_hypothesis_database_remembers_the_failure(tmp_path: Path) -> None:
    """Seed 0 alone does not find the race in one schedule; with the database that
    seed 4 filled, that one schedule is the remembered failure."""
    alone = await stress(config("no_retry"), Kind.HYPOTHESIS, schedules=1, seed=0)
    assert not alone.found
    database = tmp_path / "db"
    first = await stress(config("no_retry"), Kind.HYPOTHESIS, schedules=300, seed=4, database=database)
    assert first.found and first.first_at is not None and first.first_at > 1
    assert database.is_dir() and any(p.is_file() for p in database.rglob("*")), "the failure was saved"
    again = await stress(config("no_retry"), Kind.HYPOTHESIS, schedules=1, seed=0, database=database)
    assert again.found and again.first_at == 1, "the remembered schedule is tried first"
    assert again.groups[0].first.result.schedule == first.groups[0].first.result.schedule


async def test_a_fault_that_never_stops_retrying_is_a_livelock() -> None:
    """Three remaps can keep landing between seq_retry's gup and its recheck;
    with a retry bound of 2 the exhaustive search finds the schedule that does it."""
    starved = Config(RACE, "seq_retry", params=(("remaps", 3),), executor=Executor.DIRECT, max_retries=2)
    found = await explore(starved, preemptions=None)
    assert found.result is not None and found.result.finding is not None
    assert found.result.finding.oracle == "livelock"
    assert found.result.finding.message == (
        "vcpu0 retried its fault on gfn 0x0 2 times: invalidations keep landing between gup and the recheck"
    )
    assert starved.describe() == "race_remap --design seq_retry -p remaps=3 --max-retries 2"
    assert await starved.run(Replay(found.result.schedule)) == found.result
