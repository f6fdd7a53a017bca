"""Transparent huge pages: the host splits and collapses them, in kernel order.

docs/model.md section 3, THP rows. A huge page is ``HPAGE_PAGES`` contiguous
base frames mapped by one PMD (``mmu.constants``: 4 stand for 512). The
split (``__split_huge_pmd``) brackets ``pmdp_invalidate`` + the new ptes
with invalidate_range_start/end over the whole huge range, so start zaps a
huge leaf (R4); afterwards the host maps the range with base pages, and a
KVM that still maps it huge keeps the guest on base pages the host may free
one by one (``huge_spte``, O4). khugepaged's ``collapse_huge_page`` does
the reverse: start, ``pmdp_collapse_flush``, end, copy into a new huge page,
free the old pages, ``set_pmd_at`` (no notifier: nothing was mapped).
"""

from __future__ import annotations

from mmu import PAGE_SIZE
from mmu.constants import HPAGE_PAGES, HPAGE_SIZE

from ..runtime.context import ActorContext
from .notifier import invalidate_end, invalidate_start


async def thp_split(ctx: ActorContext, haddr: int) -> bool:
    """``split_huge_pmd`` of the huge page at ``haddr``, as a caller holding
    ``mmap_lock`` for read does it (mprotect or madvise of part of the page).

    Start over [haddr, haddr + HPAGE) (``mmu_notifier_range_init`` on the
    whole huge range), then under the pmd lock ``pmdp_invalidate``, one pte
    per base page and ``pmd_populate`` (one step), then end. No reference is
    dropped: every base page stays mapped. Returns False if no huge PMD maps
    ``haddr``.
    """
    mm = ctx.model.mm
    await ctx.down_read(mm.mmap_lock, "split_huge_pmd: mmap_read_lock (caller)")
    if not mm.pmd_mapped(haddr):
        ctx.note(f"no huge pmd at {haddr:#x}: nothing to split")
        ctx.up_read(mm.mmap_lock)
        return False
    end = haddr + HPAGE_SIZE
    await invalidate_start(
        ctx, haddr, end, resume="__split_huge_pmd: pmd_lock, pmdp_invalidate, pmd_populate"
    )
    mm.split_pmd(haddr, ctx.name)
    await invalidate_end(ctx, haddr, end, resume="mmap_read_unlock")
    ctx.up_read(mm.mmap_lock)
    return True


async def thp_collapse(ctx: ActorContext, haddr: int) -> bool:
    """khugepaged's ``collapse_huge_page`` of the base pages at [haddr, haddr + HPAGE).

    The new huge page is allocated first (``alloc_charge_hpage``, before any
    lock); under ``mmap_write_lock``: start, ``pmdp_collapse_flush`` (the ptes
    become unreachable, gup-fast included), end; ``__collapse_huge_page_copy``
    copies each base page (an absent one stays zero: ``max_ptes_none``) and
    frees the old pages; then ``set_pmd_at`` under the pmd lock. Returns False
    if the range is already huge or has no VMA.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.point("collapse_huge_page: alloc_charge_hpage")
    new = frames.alloc_compound(HPAGE_PAGES)
    await ctx.down_write(mm.mmap_lock, "collapse_huge_page: mmap_write_lock, hugepage_vma_revalidate")
    vma = mm.find_vma(haddr, ctx.name)
    if vma is None or mm.pmd_mapped(haddr) or not (vma.start <= haddr and haddr + HPAGE_SIZE <= vma.end):
        ctx.note(f"{haddr:#x}: no vma covering a huge page, or already huge: SCAN_FAIL")
        ctx.up_write(mm.mmap_lock)
        frames.put_page(new)
        return False
    end = haddr + HPAGE_SIZE
    await invalidate_start(ctx, haddr, end, resume="pmd_lock: pmdp_collapse_flush")
    old = mm.collapse_flush(haddr, ctx.name)
    await invalidate_end(
        ctx, haddr, end, resume="__collapse_huge_page_isolate, __collapse_huge_page_copy"
    )
    for hva, pte in old.items():
        frames.copy_page(pte.pfn, new + (hva - haddr) // PAGE_SIZE)
        frames.put_page(pte.pfn)  # free_page_and_swap_cache: the old page goes
    await ctx.point("pmd_lock: set_pmd_at, mmap_write_unlock")
    mm.set_pmd(haddr, new, "w" in vma.prot, ctx.name)
    ctx.up_write(mm.mmap_lock)
    return True
