"""KSM: ksmd merges two guest pages with identical content, in mm/ksm.c's order.

One pass of ``ksm_do_scan`` -> ``cmp_and_merge_page(page)``: an earlier scan
left ``tree_page`` in the unstable tree, and ``page`` now matches it, so
``try_to_merge_two_pages`` makes ``page`` the KSM page
(``try_to_merge_with_ksm_page(page, NULL)``) and then maps ``tree_page``'s
address to it (``try_to_merge_with_ksm_page(tree_page, page)``). Each merge
write-protects its page first (``write_protect_page``); the second then
swaps the pte to the KSM page (``replace_page``) and frees the old page.

KVM's part (docs/model.md section 3, "KSM merge" row): every pte change is
inside invalidate_range_start/end, so its leaf is zapped before the pte is
write-protected or replaced (R4), and a fault that resolved the page before
start must see seq move (R1, R2). The refcount check of ``write_protect_page``
(``page_mapcount + 1 == page_count``, the 1 being ksmd's own reference) is
why KVM holds no reference while a page is mapped (R6): a gup in flight or
a pin makes the merge give up. A 2011 host (v3.1-v3.5) brackets nothing and
tells KVM through ``->change_pte`` alone (``actors.host.era2011``).

XX: page contents are not modelled: the guest writes the same bytes to both
pages, so ``memcmp_pages`` and ``pages_identical`` always find them equal,
and the checksum KSM wants stable across two scans is not kept.
"""

from __future__ import annotations

from mmu import PAGE_SIZE, HostPte

from ..runtime.context import ActorContext
from . import era2011
from .cow import do_wp_page
from .ksm_pte import wrprotect_pte
from .notifier import invalidate_end, invalidate_start


async def _follow_page(ctx: ActorContext, hva: int, label: str) -> int | None:
    """``follow_page(vma, addr, FOLL_GET)`` under mmap_read_lock: ksmd's reference on
    the page mapped at ``hva``, or None if nothing is."""
    mm = ctx.model.mm
    await ctx.down_read(mm.mmap_lock, label)
    pte = mm.follow_pte(hva, ctx.name)
    if pte is not None:
        ctx.model.frames.get_page(pte.pfn)
    else:
        ctx.note(f"no page at hva {hva:#x}")
    ctx.up_read(mm.mmap_lock)
    return None if pte is None else pte.pfn


async def write_protect_page(
    ctx: ActorContext, hva: int, page: int
) -> HostPte | None:
    """``write_protect_page`` (v6.12, same order since v3.6): start;
    ``page_vma_mapped_walk``; ``ptep_clear_flush`` (the TLB flush is inside the
    window, so gup-fast cannot take a reference during the check); if
    ``page_mapcount + 1 != page_count`` restore the pte and fail; else
    ``pte_mkclean``, ``pte_wrprotect``, ``set_pte_at``; end (R3).

    Returns the pte as left (``orig_pte``, for ``replace_page``'s ``pte_same``),
    or None if the page is not mapped at ``hva`` any more or somebody holds
    an extra reference. The caller holds mmap_lock for read. A 2011 host runs
    ``era2011.write_protect_page`` instead.
    """
    if ctx.model.era.change_pte:
        return await era2011.write_protect_page(ctx, hva, page)
    end = hva + PAGE_SIZE
    await invalidate_start(
        ctx, hva, end, resume="write_protect_page: ptep_clear_flush, page_count check"
    )
    orig, _ = wrprotect_pte(ctx, hva, page, "page_vma_mapped_walk")
    await invalidate_end(ctx, hva, end, resume="write_protect_page: page_vma_mapped_walk_done")
    return orig


async def replace_page(
    ctx: ActorContext, hva: int, page: int, kpage: int, orig: HostPte
) -> bool:
    """``replace_page`` (v6.12, same order since v3.6): start; under the pte lock
    ``pte_same(orig)``, ``folio_get(kpage)`` + rmap, ``ptep_clear_flush`` (flush
    inside the window), ``set_pte_at(mk_pte(kpage, vm_page_prot))``
    (``set_pte_at_notify`` before v6.10; read-only: a private mapping's
    ``vm_page_prot`` has no write bit), ``folio_remove_rmap_pte(page)``,
    ``folio_put(page)`` still under the pte lock, before end; end.

    ``page`` stays alive on ksmd's reference until ``cmp_and_merge_page``
    drops it. Returns False if the pte changed since ``write_protect_page``.
    A 2011 host runs ``era2011.replace_page`` instead.
    """
    if ctx.model.era.change_pte:
        return await era2011.replace_page(ctx, hva, page, kpage, orig)
    mm, frames = ctx.model.mm, ctx.model.frames
    end = hva + PAGE_SIZE
    await invalidate_start(
        ctx, hva, end, resume="replace_page: pte_same, ptep_clear_flush, set_pte_at(kpage)"
    )
    replaced = mm.follow_pte(hva, ctx.name) == orig
    if replaced:
        frames.get_page(kpage)  # the new pte's reference
        old = mm.zap_pte(hva, ctx.name)
        mm.set_pte(hva, kpage, False, ctx.name)
        frames.put_page(old.pfn)
    else:
        ctx.note("!pte_same: the pte changed since write_protect_page, -EFAULT")
    await invalidate_end(ctx, hva, end, resume="try_to_merge_one_page: unlock_page")
    return replaced


async def _try_to_merge_with_ksm_page(
    ctx: ActorContext, hva: int, page: int, kpage: int | None
) -> bool:
    """``try_to_merge_with_ksm_page``: mmap_read_lock, ``find_mergeable_vma``, then
    ``try_to_merge_one_page``: write-protect ``page``; with no ``kpage`` make it the
    KSM page (``folio_set_stable_node``), else ``replace_page`` it by ``kpage``."""
    mm = ctx.model.mm
    await ctx.down_read(mm.mmap_lock, "try_to_merge_with_ksm_page: mmap_read_lock, lock_page")
    vma = mm.find_vma(hva, ctx.name)
    merged = False
    if vma is None or "w" not in vma.prot:  # XX: VM_MERGEABLE is not modelled
        ctx.note(f"find_mergeable_vma: no anonymous writable vma at {hva:#x}")
    else:
        orig = await write_protect_page(ctx, hva, page)
        if orig is not None and kpage is None:
            ctx.model.frames.set_ksm(page)
            merged = True
        elif orig is not None and kpage is not None:
            ctx.note("pages_identical")
            merged = await replace_page(ctx, hva, page, kpage, orig)
    ctx.up_read(mm.mmap_lock)
    return merged


async def _break_cow(ctx: ActorContext, hva: int, kpage: int) -> None:
    """``break_cow`` -> ``break_ksm``: the first merge made a KSM page nobody shares;
    fault it with write to get a private copy back."""
    mm = ctx.model.mm
    await ctx.down_read(mm.mmap_lock, "break_cow: mmap_read_lock, break_ksm")
    pte = mm.follow_pte(hva, ctx.name)
    if pte is not None and pte.pfn == kpage and not pte.writable:
        await do_wp_page(ctx, hva)
    else:
        ctx.note("the KSM page is no longer mapped read-only there: nothing to break")
    ctx.up_read(mm.mmap_lock)


async def ksm_merge(ctx: ActorContext, page_hva: int, tree_hva: int) -> bool:
    """Merge the page at ``tree_hva`` (an earlier scan's, in the unstable tree) with the
    page at ``page_hva`` (this scan's); return whether both now map one KSM page.

    ``scan_get_next_rmap_item`` and ``get_mergeable_page`` take ksmd's references;
    ``try_to_merge_two_pages`` merges; a failed second merge breaks COW on the
    first (``break_cow``); ``cmp_and_merge_page`` drops the references, freeing the
    replaced page.
    """
    frames = ctx.model.frames
    page = await _follow_page(ctx, page_hva, "scan_get_next_rmap_item: follow_page(FOLL_GET)")
    if page is None:
        return False
    tree_page = await _follow_page(
        ctx, tree_hva, "unstable_tree_search_insert: get_mergeable_page(FOLL_GET)"
    )
    merged = False
    if tree_page is not None and tree_page != page:
        ctx.note("memcmp_pages: identical, try_to_merge_two_pages")
        if await _try_to_merge_with_ksm_page(ctx, page_hva, page, None):
            merged = await _try_to_merge_with_ksm_page(ctx, tree_hva, tree_page, page)
            if not merged:
                await _break_cow(ctx, page_hva, page)
    await ctx.point("cmp_and_merge_page: put_page(tree_page), put_page(page)")
    if tree_page is not None:
        frames.put_page(tree_page)
    frames.put_page(page)
    return merged
