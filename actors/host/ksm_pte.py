"""The pte work of mm/ksm.c ``write_protect_page``, the same in every era: what
differs is the notifier around it (start/end today, ``change_pte`` in 2011)."""

from __future__ import annotations

from mmu import HostPte

from ..runtime.context import ActorContext


def wrprotect_pte(ctx: ActorContext, hva: int, page: int, walk: str) -> tuple[HostPte | None, bool]:
    """Under the page-table lock the caller holds: a writable pte of ``page`` is cleared
    (``ptep_clear_flush``), and restored (``set_pte_at``) if ``page_count`` shows a
    reference beyond the mappings, else made clean and read-only.

    Returns ``orig_pte`` (None: ``page`` not mapped at ``hva`` any more, named after
    ``walk``, or an extra reference), and whether this call made it read-only.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    pte = mm.follow_pte(hva, ctx.name)
    if pte is None or pte.pfn != page:
        ctx.note(f"{walk}: pfn {page:#x} no longer mapped at hva {hva:#x}")
        return None, False
    if not pte.writable:
        ctx.note("pte already read-only and clean: nothing to do")
        return pte, False
    mapcount = mm.mapcount(page, ctx.name)  # the rmap's count: ptep_clear_flush keeps it
    entry = mm.zap_pte(hva, ctx.name)
    refs = frames.refcount(page)
    if refs != mapcount + 1:
        ctx.note(
            f"page_count {refs} != mapcount {mapcount} + 1: an extra reference"
            " (gup in flight, a pin), set_pte_at(orig): no merge"
        )
        mm.set_pte(hva, page, entry.writable, ctx.name)
        return None, False
    mm.set_pte(hva, page, False, ctx.name)  # pte_mkclean, pte_wrprotect, set_pte_at(_notify)
    return mm.ptes[hva], True
