"""KVM mapping guest memory with huge leaves where the host maps it by PMD.

x86 ``kvm_mmu_hugepage_adjust`` -> ``kvm_mmu_max_mapping_level`` ->
``host_pfn_mapping_level``: the leaf may be as large as the host mapping of
the hva, which the kernel reads from the host page table locklessly. Its
rule (F6): the answer is safe "only if 1) retry was checked after taking
mmu_lock, and 2) mmu_lock is taken now". ``level_locked`` reads it there;
``level_early`` reads it when the fault starts, before the seq snapshot,
so a THP split that completes in between goes unnoticed (R5) and the huge
leaf outlives the host's huge page (``huge_spte``).
"""

from __future__ import annotations

import itertools

from mmu import PAGE_SIZE
from mmu.constants import HPAGE_PAGES, HPAGE_SIZE

from ..host.gup import get_user_pages
from ..runtime.context import ActorContext
from . import refault


def max_mapping_size(ctx: ActorContext, gfn: int) -> int:
    """``kvm_mmu_max_mapping_level``: HPAGE if the memslot holds the whole aligned
    huge range and the host maps the hva with a PMD (or larger), else PAGE_SIZE."""
    kvm = ctx.model.kvm
    slot = kvm.memslot
    base = gfn - (gfn - slot.base_gfn) % HPAGE_PAGES
    fits = base + HPAGE_PAGES <= slot.base_gfn + slot.npages and slot.userspace_addr % HPAGE_SIZE == 0
    host = ctx.model.mm.mapping_size(slot.gfn_to_hva(gfn))
    size = HPAGE_SIZE if fits and host >= HPAGE_SIZE else PAGE_SIZE
    ctx.note(f"host_pfn_mapping_level: host maps {host // 1024}K -> {size // 1024}K leaf")
    return size


async def fault_huge(ctx: ActorContext, gfn: int, write: bool, *, locked: bool) -> bool:
    """``kvm_tdp_page_fault`` with hugepage adjustment, in the kernel's order:
    seq snapshot (R1), ``kvm_faultin_pfn``, mmu_lock, ``is_page_fault_stale``
    (R2), ``kvm_mmu_hugepage_adjust`` (``locked``: here, F6), map, unlock,
    ``kvm_release_pfn_clean``. Without ``locked`` the size is read first."""
    kvm, frames = ctx.model.kvm, ctx.model.frames
    hva = kvm.memslot.gfn_to_hva(gfn)
    spinning = False
    for attempt in itertools.count(1):
        await refault.enter(ctx, "kvm_tdp_page_fault", after_retry=spinning)
        size = PAGE_SIZE
        if not locked:
            size = max_mapping_size(ctx, gfn)  # before the snapshot, outside mmu_lock: R5
            await ctx.point("mmu_seq = mmu_invalidate_seq")
        mmu_seq = kvm.snapshot_seq()
        got = await get_user_pages(ctx, hva, write)
        if got is None:
            return False
        pfn, writable = got
        await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: is_page_fault_stale, kvm_mmu_hugepage_adjust, map")
        retry = kvm.retry(mmu_seq, ctx.name)
        if not retry:
            if locked:
                size = max_mapping_size(ctx, gfn)
            offset = (gfn - kvm.memslot.base_gfn) % (size // PAGE_SIZE)
            kvm.install_spte(gfn - offset, pfn - offset, writable, ctx.name, page_size=size)
        ctx.spin_unlock(kvm.mmu_lock)
        await ctx.point("kvm_release_pfn_clean")
        frames.put_page(pfn)
        if not retry:
            return True
        spinning = refault.retry(ctx, gfn, attempt, "RET_PF_RETRY: the guest re-faults")
    raise AssertionError("unreachable")
