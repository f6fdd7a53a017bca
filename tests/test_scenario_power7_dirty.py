"""power7_dirty: POWER7's dirty logging as merged in v3.6, beside the thread's proposal.

``power7_dirty`` (the HPTEs' hardware C bits, each HPTE made absent briefly
with ``tlbie`` to clear C and then valid again) must survive every schedule
of dirty_log; a harvest that clears C and leaves a vcpu a translation that
has recorded C (no ``tlbie``, or C cleared after the HPTE is valid again)
must be caught by ``lost_dirty``. A vcpu that meets the brief absent HPTE
waits on its lock and re-executes, with no re-fault of KVM's;
``kvm_unmap_rmapp`` keeps a C bit in the rmap word for the next harvest, so
a page migrated while logging is not lost, and an unmap that drops it is.
Beside them, ``lost_dirty`` is judged against what userspace sent after
each ioctl returned: the kernel's own order (x86: xchg, write-protect under
``mmu_lock``, flush after unlocking) is not flagged, a write-protect that
comes only after userspace sent the page is.
"""

from __future__ import annotations

import functools

import pytest

from actors import DESIGNS, ActorContext, ActorSpec, Design, Executor, World
from actors.host import migrate_page
from mmu import Model
from mmurace import Config, RandomWalk
from mmurace.testing import assert_no_race, assert_race
from scenarios import CATALOG, Scenario
from scenarios.dirty_log import build as dirty_log

DIRTY_LOG = CATALOG["dirty_log"]
MERGED = DESIGNS["power7_dirty"]


# ---- the merged design, and harvests that lose a write ----


@pytest.mark.parametrize("params", [{}, {"pages": 2}, {"pages": 2, "rounds": 2}], ids=["one", "two_pages", "two_rounds"])
def test_the_merged_design_survives_every_schedule_of_dirty_log(params: dict[str, int]) -> None:
    assert_no_race(DIRTY_LOG, MERGED, params=params)


async def _no_tlbie(design: Design, ctx: ActorContext, gfn: int) -> None:
    hpt = ctx.model.hpt
    leaf = hpt.make_absent(gfn, ctx.name)
    await ctx.point("kvm_test_clear_dirty: clear HPTE_R_C, valid again (no tlbie)")
    hpt.clear_c(gfn, ctx.name)
    hpt.make_valid(gfn, leaf, ctx.name)


async def _valid_first(design: Design, ctx: ActorContext, gfn: int) -> None:
    hpt = ctx.model.hpt
    leaf = hpt.make_absent(gfn, ctx.name)
    hpt.tlbie(gfn, ctx.name)
    hpt.make_valid(gfn, leaf, ctx.name)
    await ctx.point("kvm_test_clear_dirty: clear HPTE_R_C of the valid HPTE")
    hpt.clear_c(gfn, ctx.name)


async def _c_first(design: Design, ctx: ActorContext, gfn: int) -> None:
    hpt = ctx.model.hpt
    hpt.clear_c(gfn, ctx.name)
    await ctx.point("kvm_test_clear_dirty: HPTE_V_ABSENT, tlbie after clearing C")
    leaf = hpt.make_absent(gfn, ctx.name)
    hpt.tlbie(gfn, ctx.name)
    hpt.make_valid(gfn, leaf, ctx.name)


NO_TLBIE = MERGED.replace(clear_hpte_c=_no_tlbie, name="no_tlbie")
VALID_FIRST = MERGED.replace(clear_hpte_c=_valid_first, name="valid_first")
C_FIRST = MERGED.replace(clear_hpte_c=_c_first, name="c_first")


@pytest.mark.parametrize("variant", [NO_TLBIE, VALID_FIRST], ids=["no_tlbie", "valid_first"])
def test_a_harvest_that_leaves_a_translation_recording_c_loses_a_write(variant: Design) -> None:
    """Without the tlbie, vcpu0 keeps the TLB entry that recorded C; clearing C after the
    HPTE is valid again lets vcpu0 load it, and record C, in between. Either way the
    next store through it sets nothing, and no later harvest reports the page."""
    race = assert_race(DIRTY_LOG, variant, oracle="lost_dirty")
    steps = race.result.steps
    cleared = max(i for i, s in enumerate(steps) if "clear HPTE_R_C" in " ".join(s.events))
    after = [s for s in steps[cleared:] if s.actor == "vcpu0" and "through TLB -> pfn 0x100" in s.events]
    assert after, "the lost store went through a translation that had recorded C"


def test_c_cleared_before_the_tlbie_is_no_loss_in_the_model() -> None:
    """A store between clearing C and the tlbie goes through an entry that recorded C and
    sets nothing, but this harvest reports the page (C was set), and userspace sends it
    after the ioctl returned, store included. What the kernel's order (absent, tlbie,
    then clear) also protects, the hardware's own R/C update racing the store to
    hptep[1], is below the model's grain (docs/model.md 5.10)."""
    assert_no_race(DIRTY_LOG, C_FIRST, params={"pages": 2})


def test_a_store_in_the_absent_window_waits_and_re_executes_with_no_re_fault() -> None:
    """vcpu0 finds the HPTE absent, spins on its lock bit, sees it changed and re-executes:
    RESUME_GUEST, no get_user_pages, no H_ENTER; its store then sets C again."""
    config = Config(DIRTY_LOG, MERGED, executor=Executor.DIRECT)
    for seed in range(300):
        result = config.run_direct(RandomWalk(seed))
        assert result.finding is None, f"seed {seed}: {result.finding}"
        labels = [(s.actor, s.label) for s in result.steps]
        events = [(s.actor, e) for s in result.steps for e in s.events]
        if ("vcpu0", "hpte != vcpu->arch.pgfault_hpte: RESUME_GUEST") not in events:
            continue
        absent = events.index(("migration", "HPTE gfn 0x0 -> pfn 0x100: HPTE_V_ABSENT, to clear C"))
        back = events.index(("migration", "HPTE gfn 0x0 -> pfn 0x100 valid again"))
        faulted = events.index(("vcpu0", "no spte: exit to kvm_mmu_page_fault"), absent)
        assert absent < faulted < back
        window = labels[[i for i, s in enumerate(result.steps) if s.actor == "vcpu0"][0]:]
        assert ("vcpu0", "get_user_page_fast_only") not in window[window.index(("vcpu0", "kvmppc_book3s_hv_page_fault")):]
        return
    pytest.fail("no run of 300 had vcpu0 store while the HPTE was absent")


# ---- kvm_unmap_rmapp keeps C in the rmap word ----


def _logging_and_migration(design: Design | str) -> World:
    """dirty_log with one harvest, while kcompactd migrates gfn 0's page."""
    world = dirty_log(design)
    hva = world.model.kvm.memslot.gfn_to_hva(0)
    kcompactd = ActorSpec("kcompactd", functools.partial(migrate_page, hva=hva))
    return World(world.model, (*world.actors, kcompactd), world.oracles)


MIGRATED = Scenario(
    "dirty_log_migrated", "a page migrated while its dirty log is on", "-", _logging_and_migration,
    designs=("power7_dirty",),
)


async def _unmap_drops_c(design: Design, ctx: ActorContext, gfn: int) -> int:
    zapped = await DESIGNS["power7_dirty"].unmap_rmapp(ctx, gfn)
    hpt = ctx.model.hpt
    await ctx.spin_lock(hpt.rmap_lock(gfn), "kvm_unmap_rmapp: drop KVMPPC_RMAP_CHANGED")
    hpt.take_rmap_changed(gfn, ctx.name)
    ctx.spin_unlock(hpt.rmap_lock(gfn))
    return zapped


DROPS_C = MERGED.replace(unmap_rmapp=_unmap_drops_c, name="drops_c")


def test_a_migrated_page_keeps_its_c_bit_in_the_rmap_and_one_that_drops_it_is_caught() -> None:
    assert_no_race(MIGRATED, MERGED, preemptions=2)
    race = assert_race(MIGRATED, DROPS_C, oracle="lost_dirty")
    said = [e for s in race.result.steps for e in s.events]
    assert "harvest C: rmap[0x0] |= KVMPPC_RMAP_CHANGED" in said


def test_the_model_moves_c_into_the_rmap_word_and_the_harvest_takes_it() -> None:
    m = Model.build()
    hpt, kvm = m.hpt, m.kvm
    kvm.mmu_lock.acquire("migration")
    kvm.enable_dirty_logging("migration")
    kvm.mmu_lock.release("migration")
    for lock in (hpt.hpte_lock(0), hpt.rmap_lock(0)):
        lock.acquire("vcpu0")
    hpt.enter_hpte(0, m.mm.ptes[kvm.memslot.gfn_to_hva(0)].pfn, True, "vcpu0")
    entry = kvm.guest_access("vcpu0", 0, write=True)
    assert entry is not None and entry.changed and 0 in kvm.changed
    hpt.unmap_hpte(0, "vcpu0")
    assert 0 not in kvm.changed and hpt.rmap_changed == {0}
    assert hpt.take_rmap_changed(0, "vcpu0") and not hpt.take_rmap_changed(0, "vcpu0")


# ---- lost_dirty: what userspace sent after the ioctl returned ----


async def _protect_late(design: Design, ctx: ActorContext) -> tuple[int, ...]:
    """KVM_GET_DIRTY_LOG that write-protects, under mmu_lock, only the pages of the harvest
    before: each reported page stays writable until after userspace sent it."""
    kvm = ctx.model.kvm
    await ctx.spin_lock(kvm.mmu_lock, "kvm_get_dirty_log: mmu_lock, xchg, write-protect the last harvest")
    mask = kvm.get_dirty_log(ctx.name)
    sent = kvm.dirty_log.harvests[-1] if kvm.dirty_log.harvests else ()
    await design.write_protect(ctx, sent)
    ctx.spin_unlock(kvm.mmu_lock)
    await ctx.point("kvm_flush_remote_tlbs_memslot, copy_to_user")
    await design.flush_memslot(ctx)
    return mask


LATE = DESIGNS["wp_readonly"].replace(get_dirty_log=_protect_late, name="protect_late")


def test_lost_dirty_spares_the_kernels_granularity_and_flags_a_late_write_protect() -> None:
    """x86's order (xchg and write-protect in one mmu_lock section, flush after unlocking:
    a store through a stale writable entry before the flush lands in a page userspace
    sends after the ioctl) is not flagged even with two pages in one bitmap word; a
    write-protect that only comes at the next harvest, after userspace sent the page,
    is."""
    assert_no_race(DIRTY_LOG, "wp_readonly", params={"pages": 2})
    race = assert_race(DIRTY_LOG, LATE, oracle="lost_dirty", params={"rounds": 2})
    assert "ram_save: send gfn 0x0" in [e for s in race.result.steps for e in s.events]
