"""A write fault on a read-only pte in a writable VMA: reuse the page, or break COW.

``handle_mm_fault(FAULT_FLAG_WRITE)`` -> ``do_wp_page`` (mm/memory.c), in the
kernel's order (docs/model.md section 3, "COW break (wp_page_copy)" row). A page
nobody else may see is reused: the pte gets its write bit back, on the same
frame, so no notifier is needed. A KSM page, or one somebody else holds a
reference on, is copied: ``wp_page_copy`` allocates and copies outside the
page-table lock, then brackets the pte switch with invalidate_range_start/end,
so KVM's leaf to the old page is zapped before the pte moves (R4) and a fault
that resolved the old page meanwhile sees seq move (R1, R2). A 2011 host
(v3.1-v3.5) brackets nothing and tells KVM through ``->change_pte`` alone
(``actors.host.era2011``).

The caller (``get_user_pages``, KSM's ``break_cow``) holds ``mmap_lock`` for
read throughout, as ``handle_mm_fault`` runs under it.
"""

from __future__ import annotations

from mmu import PAGE_SIZE

from ..runtime.context import ActorContext
from . import era2011
from .notifier import invalidate_end, invalidate_start


def cow_needed(ctx: ActorContext, hva: int) -> bool:
    """Would a write through ``hva`` need ``do_wp_page``: a present read-only pte in a
    writable VMA? Reads what ``get_user_page`` reads, and logs nothing."""
    mm = ctx.model.mm
    vma = mm.find_vma(hva, ctx.name)
    pte = mm.follow_pte(hva, ctx.name)
    return vma is not None and "w" in vma.prot and pte is not None and not pte.writable


async def do_wp_page(ctx: ActorContext, hva: int) -> None:
    """``do_wp_page`` on the read-only pte at ``hva``; returns with the pte writable,
    or changed by somebody else (the caller retries its walk either way).

    The first part runs in the caller's step, under the pte lock:
    ``wp_page_reuse`` if the page is not KSM and its only reference is the
    pte's (XX: the kernel's ``wp_can_reuse_anon_folio`` also weighs the swap
    cache and ``PageAnonExclusive``); otherwise ``folio_get`` and copy.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    orig = mm.follow_pte(hva, ctx.name)
    assert orig is not None and not orig.writable, f"do_wp_page without a read-only pte at {hva:#x}"
    old = orig.pfn
    if not frames.is_ksm(old) and frames.refcount(old) == 1:
        ctx.note("do_wp_page: page exclusive to this mapping, wp_page_reuse")
        mm.mkwrite_pte(hva, ctx.name)
        return
    why = "a KSM page" if frames.is_ksm(old) else "page shared"
    ctx.note(f"do_wp_page: {why}, copy (folio_get)")
    frames.get_page(old)  # do_wp_page's reference, dropped after end
    await wp_page_copy(ctx, hva, old, orig.writable)


async def wp_page_copy(ctx: ActorContext, hva: int, old: int, orig_writable: bool) -> None:
    """``wp_page_copy`` (v6.12): alloc + copy, start, under the pte lock ``pte_same`` ->
    ``ptep_clear_flush`` (the TLB flush, before the new pte), ``set_pte_at(new,
    writable)``, ``folio_remove_rmap_pte(old)`` ("Only after switching the pte to
    the new page may we remove the mapcount"); end; then both puts: the old
    mapping's reference (``folio_put(new_folio)``, which is the old folio by
    then) and ``do_wp_page``'s (``folio_put(old_folio)``). A copy that lost
    ``pte_same`` is dropped after end the same way. A 2011 host runs
    ``era2011.do_wp_page_copy`` instead."""
    if ctx.model.era.change_pte:
        await era2011.do_wp_page_copy(ctx, hva, old, orig_writable)
        return
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.point("wp_page_copy: alloc_page, copy_user_highpage")
    new = frames.alloc_page()
    frames.copy_page(old, new)
    await invalidate_start(
        ctx,
        hva,
        hva + PAGE_SIZE,
        resume="wp_page_copy: pte_same, ptep_clear_flush, set_pte_at(new)",
    )
    pte = mm.follow_pte(hva, ctx.name)
    drop = new  # the folio put after end: the old mapping's reference, or the unused copy
    if pte is not None and pte.pfn == old and pte.writable == orig_writable:
        drop = mm.zap_pte(hva, ctx.name).pfn  # ptep_clear_flush: hands over the mapping's reference
        mm.set_pte(hva, new, True, ctx.name)  # the allocation's reference becomes the pte's
        if frames.is_ksm(old):
            ctx.model.ksm.cow_broken(ctx.thread, hva, old)
    else:
        ctx.note("!pte_same: somebody changed the pte meanwhile, drop the copy")
    await invalidate_end(
        ctx, hva, hva + PAGE_SIZE, resume="wp_page_copy: folio_put(new_folio), folio_put(old)"
    )
    frames.put_page(drop)
    frames.put_page(old)
