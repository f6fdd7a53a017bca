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

from typing import ClassVar

import attrs

from mmu import PAGE_SIZE
from mmu.constants import HPAGE_PAGES, HPAGE_SIZE

from ..runtime.context import ActorContext
from .design import Fault, step
from .fault_path import SeqRetry


def max_mapping_size(ctx: ActorContext, gfn: int) -> int:
    """``kvm_mmu_max_mapping_level`` (v6.12): HPAGE if the memslot holds the whole
    aligned huge range and the host page table maps the hva with a PMD (or
    larger), else PAGE_SIZE. The host size is ``host_pfn_mapping_level``'s, a
    walk of the host page table (``HostMm.mapping_size``), never the VMA's page
    size nor the folio's: a split THP is still one folio until the deferred
    split (before v4.6 x86 read ``PageTransCompound`` of the page, which a
    pte-mapped THP fools)."""
    kvm = ctx.model.kvm
    slot = kvm.memslot
    base = gfn - (gfn - slot.base_gfn) % HPAGE_PAGES
    fits = base + HPAGE_PAGES <= slot.base_gfn + slot.npages and slot.userspace_addr % HPAGE_SIZE == 0
    host = ctx.model.mm.mapping_size(slot.gfn_to_hva(gfn))
    size = HPAGE_SIZE if fits and host >= HPAGE_SIZE else PAGE_SIZE
    ctx.note(f"host_pfn_mapping_level: host maps {host // 1024}K -> {size // 1024}K leaf")
    return size


@attrs.frozen
class HugeLeaves(SeqRetry):
    """``kvm_tdp_page_fault`` with hugepage adjustment, in the kernel's order:
    seq snapshot (R1), ``kvm_faultin_pfn``, mmu_lock, ``is_page_fault_stale``
    (R2), ``kvm_mmu_hugepage_adjust`` (``locked``: here, F6), map, unlock,
    ``kvm_release_pfn_clean``. Without ``locked`` the size is read first."""

    locked: bool = True

    fault_label: ClassVar[str] = "kvm_tdp_page_fault"
    lock_label: ClassVar[str] = "mmu_lock: is_page_fault_stale, kvm_mmu_hugepage_adjust, map"

    @step
    async def snapshot(self, ctx: ActorContext, f: Fault) -> None:
        """Without ``locked``, the mapping size first, outside mmu_lock (breaks R5)."""
        f.size = PAGE_SIZE
        if not self.locked:
            f.size = max_mapping_size(ctx, f.gfn)
            await ctx.point("mmu_seq = mmu_invalidate_seq")
        await super().snapshot(ctx, f)

    @step
    async def install(self, ctx: ActorContext, f: Fault) -> None:
        """``kvm_mmu_hugepage_adjust`` (with ``locked``), then the leaf, aligned to its size."""
        assert f.pfn is not None
        if self.locked:
            f.size = max_mapping_size(ctx, f.gfn)
        kvm = ctx.model.kvm
        offset = (f.gfn - kvm.memslot.base_gfn) % (f.size // PAGE_SIZE)
        stale = kvm.install_spte(f.gfn - offset, f.pfn - offset, f.writable, ctx.name, page_size=f.size)
        if stale:  # a huge leaf over base leaves: the TDP MMU flushes the range
            kvm.flush_remote_tlbs_range(stale, ctx.name)
