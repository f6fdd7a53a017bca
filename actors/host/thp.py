"""Transparent huge pages: the host splits and collapses them, in kernel order.

docs/model.md section 3, THP rows. A huge page is ``HPAGE_PAGES`` contiguous
base frames, one folio, mapped by one PMD (``mmu.constants``: 4 stand for
512). As the kernel keeps it since the THP refcounting rework (v4.5), a split
has two halves:

- ``__split_huge_pmd`` (``thp_split``) splits only the *mapping*: between
  invalidate_range_start/end over the whole huge range, the PMD becomes one
  pte per base page and the folio stays whole, each pte holding a
  reference on it. Once one of its pages is unmapped (madvise(DONTNEED)) the
  folio is queued for a deferred split, and its unmapped page is *not*
  freed yet.
- ``split_huge_page`` (``deferred_split_scan``, the THP shrinker) splits the
  *folio*: under the anon_vma lock, it replaces every pte of the folio by a
  migration entry between start/end over the whole folio, freezes the
  refcount, makes each base page a page of its own, restores the ptes and
  frees the pages nobody maps.

khugepaged's ``collapse_huge_page`` does the reverse: start,
``pmdp_collapse_flush``, end, then ``__collapse_huge_page_isolate``, which
gives up when a page has a reference its mappings do not explain
(``is_refcount_suitable``: a gup in flight) and puts the pte table back;
else copy into the new huge page, free the old pages, ``set_pmd_at`` (no
notifier: nothing was mapped).

Each function names the kernel function every step stands for; the order is
v6.12's (mm/huge_memory.c, mm/khugepaged.c), which v4.5+ kernels share.
"""

from __future__ import annotations

from mmu import PAGE_SIZE
from mmu.constants import HPAGE_PAGES, HPAGE_SIZE

from ..runtime.context import IDLE, ActorContext
from .notifier import invalidate_end, invalidate_start


async def thp_split(ctx: ActorContext, haddr: int) -> bool:
    """``split_huge_pmd`` -> ``__split_huge_pmd`` of the huge page at ``haddr``, as a
    caller holding ``mmap_lock`` for read does it (mprotect or madvise of part of
    the page), in v6.12's order.

    Start over [haddr, haddr + HPAGE) (``mmu_notifier_range_init`` on the whole
    huge range, ``MMU_NOTIFY_CLEAR``), then under the pmd lock
    ``__split_huge_pmd_locked``: ``pmdp_invalidate`` (which flushes the TLB), one
    pte per base page, ``folio_ref_add(folio, HPAGE_PMD_NR - 1)``,
    ``pmd_populate`` (one step), then end. The folio is not split and no
    reference is dropped: every base page stays mapped. Returns False if no
    huge PMD maps ``haddr``.
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


async def split_huge_page(ctx: ActorContext, head: int) -> bool:
    """``split_folio`` -> ``__folio_split`` (v6.15; ``split_huge_page_to_list`` in
    v4.5-v6.14, same order) of the pte-mapped folio ``head``, on which the
    caller holds a reference. Returns whether the folio was split.

    ``anon_vma_lock_write`` (it serialises against a collapse), then
    ``can_split_folio``: every reference but the caller's must be a mapping's
    (``folio_mapcount == folio_ref_count - 1``), else -EAGAIN, a gup in
    flight being the usual reason. ``unmap_folio`` -> ``try_to_migrate`` ->
    ``try_to_migrate_one``: start over the whole folio ("For THP, we have to
    assume the worse case ie pmd for invalidation"), each pte replaced by a
    migration entry (``ptep_clear_flush``, ``folio_remove_rmap_pte``,
    ``folio_put``), end. Then ``folio_ref_freeze(folio, 1)``: only the
    caller's reference may be left, else the ptes are restored to the folio
    and -EAGAIN; ``__split_unmapped_folio`` gives each base page its own
    reference; ``remap_page`` -> ``remove_migration_ptes`` restores each pte to
    its own base page (non-present to present: no notifier); the base pages
    nobody maps are freed (``free_page_and_swap_cache``); the anon_vma is
    unlocked. A fault meeting a migration entry meanwhile waits
    (``migration_entry_wait``).
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.down_write(mm.rmap_lock, "__folio_split: anon_vma_lock_write, can_split_folio")
    mapped = mm.rmap_folio(head, ctx.name)
    refs = frames.refcount(head)
    if refs != len(mapped) + 1:
        ctx.note(f"can_split_folio: refcount {refs} != mapcount {len(mapped)} + 1: -EAGAIN")
        ctx.up_write(mm.rmap_lock)
        return False
    nr = frames.folio_nr_pages(head)
    if mapped:
        # vma_address of the folio: where its first page is (or would be) mapped
        start = mapped[0] - (mm.ptes[mapped[0]].pfn - head) * PAGE_SIZE
        end = start + nr * PAGE_SIZE
        await invalidate_start(
            ctx, start, end, resume="try_to_migrate_one: ptep_clear_flush, migration entries"
        )
        for hva in mapped:
            frames.put_page(mm.set_migration_entry(hva, ctx.name).pfn)  # folio_remove_rmap_pte; folio_put
        await invalidate_end(
            ctx, start, end, resume="__folio_split: folio_ref_freeze, __split_unmapped_folio, remap_page"
        )
    else:
        ctx.note("unmap_folio: the folio is mapped nowhere")
    split = frames.split_folio(head)
    for hva in mapped:  # remove_migration_pte: folio_get, set_pte_at
        pfn = mm.migration[hva].pfn
        frames.get_page(pfn)
        mm.remove_migration_pte(hva, pfn, ctx.name)
    if split:
        ctx.note("free_page_and_swap_cache: each base page drops the split's reference")
        for sub in range(head + 1, head + nr):
            frames.put_page(sub)
    ctx.up_write(mm.rmap_lock)
    return split


async def deferred_split_scan(ctx: ActorContext) -> None:
    """The THP shrinker (``deferred_split_scan``, v6.12), once: under memory
    pressure it takes the first folio off the deferred-split queue with a
    reference of its own (``folio_try_get``), splits it (``split_folio``), and
    drops its reference (``folios_put``), which frees the head if nobody maps
    it. A folio it fails to split is not tried again in the model (the kernel
    puts it back on the queue for a later scan).

    Runs as a daemon: it waits, idle, until a folio is queued.
    """
    frames = ctx.model.frames
    await ctx.point(
        "deferred_split_scan: split_queue_lock, folio_try_get",
        guard=lambda: bool(frames.deferred),
        waits_for=IDLE + "the deferred split queue",
    )
    head = frames.deferred_split_take()
    assert head is not None, "the guard let the scan in with an empty queue"
    await split_huge_page(ctx, head)
    frames.put_page(head)  # folio_unlock; folios_put(&fbatch)


async def thp_collapse(ctx: ActorContext, haddr: int) -> bool:
    """khugepaged's ``collapse_huge_page`` (v6.12) of the base pages at
    [haddr, haddr + HPAGE).

    The new huge page is allocated first (``alloc_charge_folio``, before any
    lock); under ``mmap_write_lock`` (``hugepage_vma_revalidate``) and
    ``anon_vma_lock_write``: start, ``pmdp_collapse_flush`` (the ptes become
    unreachable, gup-fast included), end; ``__collapse_huge_page_isolate``
    checks each page: ``is_refcount_suitable`` (``folio_ref_count ==
    folio_mapcount``) fails on a reference no mapping explains, a gup in
    flight, and the collapse gives up: ``pmd_populate`` puts the pte table
    back (``SCAN_PAGE_COUNT``) and the new page is dropped. Otherwise the
    anon_vma is unlocked, ``__collapse_huge_page_copy`` copies each base page
    (an absent one stays zero: ``max_ptes_none``) and frees the old pages;
    then ``set_pmd_at`` under the pmd lock. Returns False if the range is
    already huge, has no VMA, or a page had an extra reference.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.point("collapse_huge_page: alloc_charge_folio")
    new = frames.alloc_compound(HPAGE_PAGES)
    await ctx.down_write(mm.mmap_lock, "collapse_huge_page: mmap_write_lock, hugepage_vma_revalidate")
    vma = mm.find_vma(haddr, ctx.name)
    if vma is None or mm.pmd_mapped(haddr) or not (vma.start <= haddr and haddr + HPAGE_SIZE <= vma.end):
        ctx.note(f"{haddr:#x}: no vma covering a huge page, or already huge: SCAN_FAIL")
        ctx.up_write(mm.mmap_lock)
        frames.put_page(new)
        return False
    end = haddr + HPAGE_SIZE
    await ctx.down_write(mm.rmap_lock, "collapse_huge_page: anon_vma_lock_write")
    await invalidate_start(ctx, haddr, end, resume="pmd_lock: pmdp_collapse_flush")
    old = mm.collapse_flush(haddr, ctx.name)
    await invalidate_end(
        ctx, haddr, end, resume="__collapse_huge_page_isolate, __collapse_huge_page_copy"
    )
    mapcount: dict[int, int] = {}
    for pte in old.values():
        head = frames.compound_head(pte.pfn)
        mapcount[head] = mapcount.get(head, 0) + 1
    extra = [head for head in sorted(mapcount) if frames.refcount(head) != mapcount[head]]
    if extra:
        ctx.note(f"pfn {extra[0]:#x}: a reference no pte explains, SCAN_PAGE_COUNT")
        mm.collapse_abort(haddr, old, ctx.name)
        ctx.up_write(mm.rmap_lock)
        ctx.up_write(mm.mmap_lock)
        frames.put_page(new)
        return False
    ctx.up_write(mm.rmap_lock)
    for hva, pte in old.items():
        frames.copy_page(pte.pfn, new + (hva - haddr) // PAGE_SIZE)
        frames.put_page(pte.pfn)  # free_folio_and_swap_cache: the old page goes
    await ctx.point("pmd_lock: set_pmd_at, mmap_write_unlock")
    mm.set_pmd(haddr, new, "w" in vma.prot, ctx.name)
    ctx.up_write(mm.mmap_lock)
    return True
