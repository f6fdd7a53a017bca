"""gup_in_lock on race_remap: closing the window by translating under mmu_lock
trades the race for the lock bugs lockdep reports, and for a real deadlock."""

from __future__ import annotations

from collections import Counter

from actors import Executor, RunResult
from mmurace import Config, RandomWalk, Replay
from scenarios import CATALOG

CONFIG = Config(CATALOG["race_remap"], "gup_in_lock", executor=Executor.DIRECT)


def test_each_lock_bug_shows_within_200_seeds_and_no_race_does() -> None:
    kinds = Counter()
    for seed in range(200):
        result = CONFIG.run_direct(RandomWalk(seed))
        assert result.finding is not None, f"seed {seed} passed"
        kinds[result.finding.oracle] += 1
    assert set(kinds) == {"deadlock", "sleep_in_atomic", "lock_order"}, kinds


def _first(oracle: str) -> RunResult:
    for seed in range(300):
        result = CONFIG.run_direct(RandomWalk(seed))
        if result.finding is not None and result.finding.oracle == oracle:
            return result
    raise AssertionError(f"no {oracle} in 300 seeds")


def test_the_deadlock_is_qemus_callback_waiting_on_the_vcpus_mmu_lock() -> None:
    """KVM's invalidate_range_start runs in QEMU's thread, under its mmap_lock."""
    result = _first("deadlock")
    assert result.finding is not None
    assert result.finding.message == (
        "deadlock: nobody can run; vcpu0 waits for mmap_lock for read; qemu waits for mmu_lock (held by vcpu0)"
    )
    assert CONFIG.run_direct(Replay(result.schedule)) == result


def test_lock_order_names_both_halves() -> None:
    result = _first("lock_order")
    assert result.finding is not None
    assert result.finding.message.startswith(
        "vcpu0 takes mmap_lock while holding mmu_lock, but mmu_lock was taken while holding mmap_lock at step"
    )
    assert "(qemu)" in result.finding.message


def test_without_preemption_the_vcpu_sleeps_in_atomic_context() -> None:
    result = _first("sleep_in_atomic")
    assert result.finding is not None
    assert (result.finding.oracle, result.finding.message) == (
        "sleep_in_atomic",
        "vcpu0 takes mmap_lock, which may sleep, while holding spinlock mmu_lock",
    )
