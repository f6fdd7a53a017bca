"""gup_in_lock on race_remap: closing the window by translating under mmu_lock
trades the race for the lock bugs lockdep reports, and for a real deadlock; and
gup-fast, which needs no mmap_lock, reopens the window it meant to close."""

from __future__ import annotations

import functools
from collections import Counter

import attrs

from actors import ActorSpec, Design, Executor, RunResult, World, kvm_init_mmu_notifier, vcpu
from mmu import Model, Region
from mmurace import Config, RandomWalk, Replay
from scenarios import CATALOG, Scenario
from tests.hunting import run

CONFIG = Config(CATALOG["race_remap"], "gup_in_lock", executor=Executor.DIRECT)


def _without_lockdep(scenario: Scenario) -> Scenario:
    """``scenario`` on a kernel built without CONFIG_PROVE_LOCKING: a lock bug is
    a finding only if the schedule hangs on it."""

    def build(design: Design | str, **params: int) -> World:
        world = scenario.build(design, **params)
        world.lockdep = False
        return world

    return attrs.evolve(scenario, build=build)


NO_LOCKDEP = attrs.evolve(CONFIG, scenario=_without_lockdep(CATALOG["race_remap"]))


def _first(oracle: str, config: Config = CONFIG) -> RunResult:
    for seed in range(300):
        result = config.run_direct(RandomWalk(seed))
        if result.finding is not None and result.finding.oracle == oracle:
            return result
    raise AssertionError(f"no {oracle} in 300 seeds")


def test_lockdep_and_gup_fast_each_catch_it_within_200_seeds() -> None:
    kinds: Counter[str | None] = Counter()
    for seed in range(200):
        result = CONFIG.run_direct(RandomWalk(seed))
        kinds[result.finding.oracle if result.finding else None] += 1
    # lockdep sees the vcpu's mmap_lock attempt under mmu_lock, once QEMU took
    # the two the other way round; a fault that gup-fast resolves needs no
    # mmap_lock at all, and may take the page inside QEMU's window
    assert set(kinds) == {"lock_order", "stale_spte", None}, kinds


def test_lockdep_reports_the_attempt_before_the_wait() -> None:
    """As the kernel's ``down_read`` calls lockdep before it waits: the report comes in
    the step where the vcpu queues behind QEMU's write lock."""
    result = _first("lock_order")
    assert result.finding is not None
    assert result.finding.message.startswith(
        "vcpu0 takes mmap_lock while holding mmu_lock, but mmu_lock was taken while holding mmap_lock at step"
    )
    assert "(qemu)" in result.finding.message
    fatal = result.steps[result.finding.step]
    assert (fatal.actor, fatal.label) == ("vcpu0", "get_user_pages: rwsem_down_read_slowpath, wait")


def test_without_lockdep_the_schedule_hangs() -> None:
    """KVM's invalidate_range_start runs in QEMU's thread, under its mmap_lock."""
    result = _first("deadlock", NO_LOCKDEP)
    assert result.finding is not None
    assert result.finding.message == (
        "deadlock: nobody can run; vcpu0 waits for mmap_lock for read (held by writer qemu);"
        " qemu waits for mmu_lock (held by vcpu0)"
    )
    assert NO_LOCKDEP.run_direct(Replay(result.schedule)) == result


def test_gup_fast_installs_inside_an_invalidation_it_never_checks() -> None:
    """QEMU's start has zapped and raised in_progress, its pte is still there: the
    vcpu takes the old page lockless, under mmu_lock, and maps it."""
    result = _first("stale_spte")
    labels = [(s.actor, s.label) for s in result.steps]
    start = labels.index(("qemu", "mmu_lock: invalidate_begin, unmap, flush"))
    fast = labels.index(("vcpu0", "get_user_page_fast_only"), start)
    assert fast < labels.index(("qemu", "zap_pte_range: ptep_get_and_clear"))


def test_a_page_gup_fast_cannot_take_sleeps_in_atomic_context() -> None:
    """An absent page needs the slow path, and so mmap_lock, under mmu_lock."""
    model = Model.build_regions(Region(1, populated=False))
    design = kvm_init_mmu_notifier(model, "gup_in_lock")
    world = World(model, (ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(0,))),))
    result = run(world, RandomWalk(0))
    assert result.finding is not None
    assert (result.finding.oracle, result.finding.message) == (
        "sleep_in_atomic",
        "vcpu0 takes mmap_lock, which may sleep, while holding spinlock mmu_lock",
    )
