"""``get_user_pages``: hva -> pfn with a page reference, under ``mmap_lock`` for read.

The slow path as one step: the remapper changes ptes only with ``mmap_lock``
held for write, so nothing it does can land inside this step. A write to a
read-only pte in a writable VMA (a KSM page) is the exception: the fault
breaks COW (``actors.host.cow``), which calls the notifier, so it takes steps of
its own before the walk is retried.
"""

from __future__ import annotations

from mmu import Vma

from ..runtime.context import ActorContext
from .cow import cow_needed, do_wp_page


def get_user_page(ctx: ActorContext, hva: int, write: bool) -> tuple[int, bool] | None:
    """Resolve ``hva`` (faulting the page in if needed) and take a reference.

    The caller holds ``mmap_lock`` for read. Returns (pfn, writable), or
    None for -EFAULT (no VMA, or a write to a read-only VMA).
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    vma: Vma | None = mm.find_vma(hva, ctx.name)
    if vma is None or (write and "w" not in vma.prot):
        ctx.note(f"no {'writable ' if write else ''}vma at hva {hva:#x}: -EFAULT")
        return None
    if mm.migration_entry(hva, ctx.name) is not None:  # only get_user_pages can wait
        raise AssertionError(f"get_user_page found a migration entry at hva {hva:#x}")
    if write and cow_needed(ctx, hva):  # only get_user_pages can call the notifier
        raise AssertionError(f"get_user_page needs a COW break at hva {hva:#x}")
    pte = mm.follow_pte(hva, ctx.name)
    if pte is None:
        ctx.note("handle_mm_fault: not present, fault in a new page")
        mm.set_pte(hva, frames.alloc_page(), "w" in vma.prot, ctx.name)
        pte = mm.ptes[hva]
    frames.get_page(pte.pfn)  # gup's reference, on top of the pte's
    return pte.pfn, pte.writable


async def get_user_pages(ctx: ActorContext, hva: int, write: bool) -> tuple[int, bool] | None:
    """The step ``get_user_pages``: mmap_read_lock, resolve, mmap_read_unlock.

    A migration entry makes the fault sleep in ``migration_entry_wait`` (still
    holding ``mmap_lock`` for read) until ``remove_migration_ptes`` replaced it.
    A write to a read-only pte in a writable VMA faults with FAULT_FLAG_WRITE
    (``faultin_page`` -> ``handle_mm_fault`` -> ``do_wp_page``), then the walk
    is retried. A walk that needs no COW break takes exactly the steps it
    always did.
    """
    mm = ctx.model.mm
    await ctx.down_read(mm.mmap_lock, "get_user_pages")
    while True:
        while mm.migration_entry(hva, ctx.name) is not None:
            ctx.note("do_swap_page: migration entry")
            await ctx.point(
                "migration_entry_wait: retry the fault",
                guard=lambda: hva not in mm.migration,
                waits_for=f"the migration of hva {hva:#x}",
            )
        if not (write and cow_needed(ctx, hva)):
            break
        ctx.note("follow_page_mask: read-only pte, faultin_page(FOLL_WRITE)")
        await do_wp_page(ctx, hva)
        await ctx.point("__get_user_pages: retry follow_page_mask")
    got = get_user_page(ctx, hva, write)
    ctx.up_read(mm.mmap_lock)
    return got
