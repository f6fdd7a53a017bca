"""The fault-handling designs from the review thread, selectable by name.

Each design is how a vcpu resolves a guest page fault on ``gfn``: what it
reads from the host, when, and what it checks before installing the spte.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable

import attrs

from ..host.gup import get_user_page, get_user_pages
from ..runtime.context import ActorContext
from . import refault
from .dirtylog import WriteProtect, wp_ignore, wp_zap
from .hugepage import fault_huge
from .vrma import fault_vrma, setup_htab_rma


async def _nothing(ctx: ActorContext) -> None:
    return None


async def _install(ctx: ActorContext, gfn: int, pfn: int, writable: bool, label: str) -> None:
    """Take mmu_lock, map the spte, drop mmu_lock: one critical section."""
    kvm = ctx.model.kvm
    await ctx.spin_lock(kvm.mmu_lock, label)
    kvm.install_spte(gfn, pfn, writable, ctx.name)
    ctx.spin_unlock(kvm.mmu_lock)


async def _release(ctx: ActorContext, pfn: int) -> None:
    """``kvm_release_pfn_clean``: drop gup's reference (F8); KVM keeps none (R6)."""
    await ctx.point("kvm_release_pfn_clean")
    ctx.model.frames.put_page(pfn)


# ---- setup_time: translate once at registration (the patch under review) ----


async def _prepare_setup_time(ctx: ActorContext) -> None:
    """``kvmppc_core_prepare_memory_region`` as first posted: look up "the VMA",
    check it is rw, translate every page once into ``slot_phys[]``.

    The reference gup took is dropped at once: with MMU notifiers KVM holds no
    reference on mapped pages (R6), so nothing keeps these frames alive, and
    nothing re-translates them when the host remaps the hva (Avi: "There is
    no 'the VMA' ... remap it under your feet").
    """
    kvm, mm, frames = ctx.model.kvm, ctx.model.mm, ctx.model.frames
    await ctx.down_read(mm.mmap_lock, "kvm_arch_prepare_memory_region")
    slot = kvm.memslot
    for gfn in range(slot.base_gfn, slot.base_gfn + slot.npages):
        got = get_user_page(ctx, slot.gfn_to_hva(gfn), write=True)
        if got is None:
            continue
        kvm.record_translation(gfn, got[0])
        frames.put_page(got[0])
    ctx.up_read(mm.mmap_lock)


async def _fault_setup_time(ctx: ActorContext, gfn: int, write: bool) -> bool:
    """Map whatever ``slot_phys[]`` says, without asking the host again."""
    pfn = ctx.model.kvm.cached_translation(gfn)
    if pfn is None:
        await ctx.point("kvmppc_book3s_hv_page_fault")
        ctx.note(f"gfn {gfn:#x} was not translated at setup: -EFAULT")
        return False
    await _install(ctx, gfn, pfn, True, "mmu_lock: map slot_phys[gfn]")
    return True


# ---- no_retry: per page at fault time, no seq check ----


async def _fault_no_retry(ctx: ActorContext, gfn: int, write: bool) -> bool:
    """get_user_pages at fault time (as Avi asked), then map under mmu_lock
    without rechecking: breaks R1/R2, an invalidation that runs between the
    gup and the install goes unnoticed."""
    got = await get_user_pages(ctx, ctx.model.kvm.memslot.gfn_to_hva(gfn), write)
    if got is None:
        return False
    pfn, writable = got
    await _install(ctx, gfn, pfn, writable, "mmu_lock: map spte")
    await _release(ctx, pfn)
    return True


# ---- seq_retry: today's KVM ----


async def _fault_seq_retry(ctx: ActorContext, gfn: int, write: bool) -> bool:
    """Today's KVM (x86 ``kvm_faultin_pfn`` + ``is_page_fault_stale``, PPC
    ``kvmppc_book3s_hv_page_fault``): snapshot ``mmu_invalidate_seq`` before
    gup (R1), recheck ``in_progress`` and seq under mmu_lock and map in the
    same critical section (R2), else drop the page and retry (``actors.kvm.refault``).
    """
    kvm = ctx.model.kvm
    spinning = False
    for attempt in itertools.count(1):
        await refault.enter(ctx, "kvm_faultin_pfn", after_retry=spinning)
        mmu_seq = kvm.snapshot_seq()
        got = await get_user_pages(ctx, kvm.memslot.gfn_to_hva(gfn), write)
        if got is None:
            return False
        pfn, writable = got
        await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: mmu_invalidate_retry, map")
        retry = kvm.retry(mmu_seq, ctx.name)
        if not retry:
            kvm.install_spte(gfn, pfn, writable, ctx.name)
        ctx.spin_unlock(kvm.mmu_lock)
        await _release(ctx, pfn)
        if not retry:
            return True
        spinning = refault.retry(ctx, gfn, attempt, "RET_PF_RETRY: the guest re-faults")
    raise AssertionError("unreachable")


# ---- gup_in_lock: translate under mmu_lock ----


async def _fault_gup_in_lock(ctx: ActorContext, gfn: int, write: bool) -> bool:
    """Take ``mmu_lock`` first, then translate and map in one critical section,
    so that no invalidation can come between gup and the install. It trades
    the race for two lock bugs: ``get_user_pages`` may sleep (it takes
    ``mmap_lock``) under a spinlock, and it nests mmap_lock inside mmu_lock
    while every host operation, through its synchronous notifier callback,
    nests mmu_lock inside mmap_lock: the ABBA deadlock lockdep warns about,
    and which a schedule that interleaves them turns into a hang.
    """
    kvm = ctx.model.kvm
    await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: then translate")
    got = await get_user_pages(ctx, kvm.memslot.gfn_to_hva(gfn), write)
    if got is None:
        ctx.spin_unlock(kvm.mmu_lock)
        return False
    pfn, writable = got
    kvm.install_spte(gfn, pfn, writable, ctx.name)
    ctx.spin_unlock(kvm.mmu_lock)
    await _release(ctx, pfn)
    return True


# ---- pin: PPC970, no fault interception, pages pinned for the VM's life ----


async def _fault_pin(ctx: ActorContext, gfn: int, write: bool) -> bool:
    """PPC970 ``kvmppc_get_guest_page`` on the first H_ENTER of a page: gup for
    write, keep the reference in ``slot_phys[]`` (KVMPPC_GOT_PAGE) and map it
    for good. It breaks R6 on purpose: with no way to take access back, the
    pin is what keeps the frame from being freed under the guest. Its notifier
    callbacks do nothing, so a remap leaves the guest on the old frame
    (divergence) and the pinned frame is freed only when the VM is destroyed.
    """
    kvm = ctx.model.kvm
    pfn = kvm.pinned_pfn(gfn)
    if pfn is None:
        got = await get_user_pages(ctx, kvm.memslot.gfn_to_hva(gfn), True)
        if got is None:
            return False
        pfn = got[0]
        await ctx.spin_lock(kvm.mmu_lock, "slot_phys_lock: pin, kvmppc_h_enter")
        kvm.pin_page(gfn, pfn, ctx.name)
    else:
        await ctx.spin_lock(kvm.mmu_lock, "kvmppc_h_enter: map slot_phys[gfn]")
    kvm.install_spte(gfn, pfn, True, ctx.name)
    ctx.spin_unlock(kvm.mmu_lock)
    return True


@attrs.frozen
class Design:
    """A fault-handling design: set-up at memslot registration, and the fault handler.

    ``uses_mmu_notifiers`` False means KVM's notifier callbacks zap nothing
    (PPC970): scenarios pass it on to ``notifier_dispatcher(arch_unmap=...)``.
    ``write_protect`` is how KVM write-protects pages for dirty logging
    (``actors.kvm.dirtylog``); None for designs that say nothing about it.
    """

    name: str
    summary: str
    prepare: Callable[[ActorContext], Awaitable[None]]
    fault: Callable[[ActorContext, int, bool], Awaitable[bool]]
    uses_mmu_notifiers: bool = True
    write_protect: WriteProtect | None = None


#: every design by name, in the order the thread discusses them
DESIGNS: dict[str, Design] = {
    d.name: d
    for d in (
        Design(
            "setup_time",
            "translate once at memslot registration (the patch under review)",
            _prepare_setup_time,
            _fault_setup_time,
        ),
        Design(
            "no_retry",
            "get_user_pages per page at fault time, no seq/in_progress recheck",
            _nothing,
            _fault_no_retry,
        ),
        Design(
            "seq_retry",
            "per page at fault time, seq snapshot + recheck under mmu_lock (KVM today)",
            _nothing,
            _fault_seq_retry,
        ),
        Design(
            "gup_in_lock",
            "get_user_pages and map under mmu_lock: no window, but a sleeping call in atomic"
            " context and an ABBA lock order",
            _nothing,
            _fault_gup_in_lock,
        ),
        Design(
            "pin",
            "PPC970: pin each page when first given to the guest, never release, ignore notifiers",
            _nothing,
            _fault_pin,
            uses_mmu_notifiers=False,
        ),
        Design(
            "vrma_once",
            "POWER7: VRMA page size read once at first vcpu run and trusted at fault time",
            setup_htab_rma,
            functools.partial(fault_vrma, checked=False),
        ),
        Design(
            "vrma_checked",
            "POWER7: VRMA page size from first vcpu run, re-checked against the host page"
            " at fault time (-EFAULT if larger)",
            setup_htab_rma,
            functools.partial(fault_vrma, checked=True),
        ),
        Design(
            "wp_ignore",
            "dirty logging keeps writable sptes: no write protection when logging starts or"
            " at each harvest",
            _nothing,
            _fault_seq_retry,
            write_protect=wp_ignore,
        ),
        Design(
            "wp_zap_refault",
            "POWER7: dirty logging drops access (HPTE absent) and re-faults with write,"
            " marking the page dirty",
            _nothing,
            _fault_seq_retry,
            write_protect=wp_zap,
        ),
        Design(
            "level_early",
            "huge leaves: host mapping level read when the fault starts, before the seq"
            " snapshot (breaks F6/R5)",
            _nothing,
            functools.partial(fault_huge, locked=False),
        ),
        Design(
            "level_locked",
            "huge leaves: host_pfn_mapping_level read under mmu_lock after the retry check"
            " (x86 today)",
            _nothing,
            functools.partial(fault_huge, locked=True),
        ),
    )
}
