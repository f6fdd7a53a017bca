"""dirty_log: live migration must not lose a page the guest wrote (O3).

Bounds: wp_ignore is caught by ``lost_dirty`` within 20 seeds (seed 3 today);
wp_zap_refault survives 300 seeds; it and wp_readonly are exhausted, without a
preemption bound, at the default parameters and at pages=2, and for three
preemptions at pages=2, rounds=2.
"""

from __future__ import annotations

import pytest

from actors import Executor
from mmu import Model
from mmu.oracles import lost_dirty
from mmurace import Config, RandomWalk, Replay, hunt
from mmurace.explore import Verdict, explore
from mmurace.report import render_run
from scenarios import CATALOG

SCENARIO = CATALOG["dirty_log"]


def config(design: str, **params: int) -> Config:
    return Config(SCENARIO, design, params=tuple(params.items()), executor=Executor.DIRECT)


async def test_wp_ignore_loses_a_write_made_through_a_writable_spte() -> None:
    found = await hunt(config("wp_ignore"), range(20))
    assert found.result is not None, "wp_ignore survived 20 seeds"
    assert found.result.finding is not None and found.result.finding.oracle == "lost_dirty"
    assert "is in none of the 1 bitmap harvested after it" in found.result.finding.message
    steps = found.result.steps
    ignored = next(i for i, s in enumerate(steps) if "write protection ignored: writable leaves stay writable" in s.events)
    through = [i for i, s in enumerate(steps) if s.actor == "vcpu0" and "through spte -> pfn 0x100" in s.events]
    assert through and through[-1] > ignored, "the lost write went through the spte the harvest left writable"
    fatal = steps[found.result.finding.step]
    assert fatal.actor == "migration" and "end of run: every actor finished" in fatal.events


@pytest.mark.parametrize("params", [{}, {"pages": 2, "rounds": 2}])
async def test_wp_zap_refault_survives_300_seeds(params: dict[str, int]) -> None:
    assert (await hunt(config("wp_zap_refault", **params), range(300))).result is None


@pytest.mark.parametrize(("params", "bound"), [({}, None), ({"pages": 2}, None), ({"pages": 2, "rounds": 2}, 3)])
@pytest.mark.parametrize("design", ["wp_zap_refault", "wp_readonly"])
async def test_write_protecting_designs_are_exhausted(design: str, params: dict[str, int], bound: int | None) -> None:
    """Both survive with TLBs: a write through a stale writable entry before the ioctl's
    flush lands in a page QEMU sends after it. The flush window multiplies the
    interleavings: pages=2, rounds=2 takes 9350 executions unbounded, so it is proved
    for three preemptions."""
    search = await explore(config(design, **params), preemptions=bound)
    assert search.verdict is Verdict.EXHAUSTED and search.result is None


async def test_wp_zap_refault_refaults_and_logs_a_write_after_a_harvest() -> None:
    """Some run zaps the leaf at a harvest, and the next write faults and marks the page."""
    for seed in range(50):
        result = await config("wp_zap_refault").run(RandomWalk(seed))
        events = [e for s in result.steps for e in s.events]
        zaps = [i for i, e in enumerate(events) if e == "zap spte gfn 0x0 -> pfn 0x100"]
        later = [events[z:].index("no spte: exit to kvm_mmu_page_fault") + z for z in zaps
                 if "no spte: exit to kvm_mmu_page_fault" in events[z:]]
        if later:
            assert "mark_page_dirty_in_slot gfn 0x0" in events[later[0]:]
            return
    pytest.fail("no run of 50 zapped a writable leaf while the guest still wrote")


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_gives_the_identical_run(design: str) -> None:
    for seed in range(20):
        first = await config(design).run(RandomWalk(seed))
        again = await config(design).run(Replay(first.schedule))
        assert again == first
        assert render_run(config(design), again) == render_run(config(design), first)


def test_the_catalog_judges_the_four_dirty_log_designs() -> None:
    """Every design has a write_protect step (the base one drops access, as the thread
    proposed), but only the designs about dirty logging are columns of the matrix;
    power7_dirty is POWER7's as merged (tests/test_scenario_power7_dirty.py)."""
    assert SCENARIO.designs == ("wp_ignore", "wp_zap_refault", "wp_readonly", "power7_dirty")


# ---- the model and the oracle on their own ----


def _logging_model() -> Model:
    m = Model.build(npages=2)
    m.kvm.mmu_lock.acquire("migration")
    m.kvm.enable_dirty_logging("migration")
    m.kvm.mmu_lock.release("migration")
    return m


def _harvest(m: Model) -> tuple[int, ...]:
    """KVM_GET_DIRTY_LOG, then QEMU sends what it reported."""
    m.kvm.mmu_lock.acquire("migration")
    mask = m.kvm.get_dirty_log("migration")
    m.kvm.mmu_lock.release("migration")
    m.kvm.dirty_log.send(mask)
    return mask


def _write_through_writable_spte(m: Model, gfn: int, *, mark: bool) -> None:
    pfn = m.mm.ptes[m.kvm.memslot.gfn_to_hva(gfn)].pfn
    m.kvm.mmu_lock.acquire("vcpu0")
    m.kvm.install_spte(gfn, pfn, True, "vcpu0")  # marks the page: logging is on
    m.kvm.mmu_lock.release("vcpu0")
    if not mark:
        m.kvm.dirty_log.bitmap.discard(gfn)  # as if the leaf predated logging
    assert m.kvm.guest_access("vcpu0", gfn, write=True) is not None


def test_a_reported_write_is_not_lost() -> None:
    m = _logging_model()
    _write_through_writable_spte(m, 1, mark=True)
    assert _harvest(m) == (1,)
    m.end_run()
    assert lost_dirty(m) is None


def test_a_write_still_dirty_at_the_end_is_not_lost() -> None:
    m = _logging_model()
    _write_through_writable_spte(m, 0, mark=True)
    m.end_run()
    assert lost_dirty(m) is None


def test_an_unmarked_write_is_lost_only_once_the_run_ended() -> None:
    m = _logging_model()
    _write_through_writable_spte(m, 0, mark=False)
    assert _harvest(m) == ()
    assert lost_dirty(m) is None  # a later harvest could still report it
    m.end_run()
    violation = lost_dirty(m)
    assert violation is not None and violation.message.startswith("guest write #1 to gfn 0x0")


def test_writes_before_logging_are_not_recorded() -> None:
    m = Model.build()
    hva = m.kvm.memslot.gfn_to_hva(0)
    m.kvm.mmu_lock.acquire("vcpu0")
    m.kvm.install_spte(0, m.mm.ptes[hva].pfn, True, "vcpu0")
    m.kvm.mmu_lock.release("vcpu0")
    m.kvm.guest_access("vcpu0", 0, write=True)
    assert m.kvm.dirty_log.unreported == {} and m.kvm.dirty_log.bitmap == set()
