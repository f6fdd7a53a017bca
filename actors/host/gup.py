"""``get_user_pages``: hva -> pfn with a page reference, fast (lockless) or slow.

Two ways in, as ``mm/gup.c`` has them (v6.12; docs/model.md F3):

- ``get_user_page_fast_only``: one lockless step, no ``mmap_lock`` and no VMA.
  It succeeds only on a present pte (writable, for a write) and never faults
  a page in, waits or breaks COW; whatever it cannot do it leaves to the slow
  path. It may run while a host operation holds ``mmap_lock`` for write, or
  between munmap's VMA detach and its zap: only the pte is looked at.
- ``get_user_pages`` (the slow path, ``get_user_pages_unlocked``): under
  ``mmap_lock`` for read, one step, since every host operation changes ptes
  either under ``mmap_lock`` for write or in one step that stands for its
  page-table-lock section. A migration entry makes it wait, and a write to a
  read-only pte in a writable VMA (a KSM page) breaks COW (``actors.host.cow``),
  which calls the notifier: those take steps of their own before the walk
  is retried.
"""

from __future__ import annotations

from mmu import Vma

from ..runtime.context import ActorContext
from .cow import cow_needed, do_wp_page


async def get_user_page_fast_only(ctx: ActorContext, hva: int, write: bool) -> int | None:
    """The step ``get_user_page_fast_only`` (``gup_fast`` -> ``gup_fast_pte_range``):
    the pfn of a present pte, writable if ``write``, with a reference; None if
    the slow path must do it (absent, a migration entry, or read-only for a write).

    No lock at all: ``local_irq_save`` keeps the page tables (freed after a TLB
    flush IPI, or by RCU) and so the page (freed only after that flush) alive
    while the walk reads the pte, ``try_grab_folio_fast`` takes the reference,
    and a recheck of the pte drops it if the pte changed meanwhile. So the walk
    succeeds as if at one instant, before or after any pte change: one step of
    the model, which reads the pte (a conflict with every step that writes it)
    and never the VMAs.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.point("get_user_page_fast_only")
    pte = mm.gup_fast_pte(hva)
    if pte is not None and pte.special:  # gup_fast_pte_range: pte_special, goto pte_unmap
        ctx.note(f"gup_fast: special pte at hva {hva:#x}, fall back to the slow path")
        return None
    if pte is None or (write and not pte.writable):
        what = "no present pte" if pte is None else "read-only pte"
        ctx.note(f"gup_fast: {what} at hva {hva:#x}, fall back to the slow path")
        return None
    frames.get_page(pte.pfn)  # try_grab_folio_fast
    return pte.pfn


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
    if vma.pfnmap:  # check_vma_flags: gup never takes device memory
        ctx.note(f"check_vma_flags: VM_PFNMAP vma at hva {hva:#x}: -EFAULT")
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


async def get_user_pages_locked(ctx: ActorContext, hva: int, write: bool) -> tuple[int, bool] | None:
    """``__get_user_pages_locked``, for a caller that holds ``mmap_lock`` for read.

    A migration entry makes the fault sleep in ``migration_entry_wait`` (still
    holding ``mmap_lock`` for read) until ``remove_migration_ptes`` replaced it.
    A write to a read-only pte in a writable VMA faults with FAULT_FLAG_WRITE
    (``faultin_page`` -> ``handle_mm_fault`` -> ``do_wp_page``), then the walk
    is retried. A walk that needs neither runs inside the caller's step.
    """
    mm = ctx.model.mm
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
    return get_user_page(ctx, hva, write)


async def get_user_pages(ctx: ActorContext, hva: int, write: bool) -> tuple[int, bool] | None:
    """The step ``get_user_pages`` (``get_user_pages_unlocked``): ``mmap_read_lock``,
    ``__get_user_pages_locked``, ``mmap_read_unlock``. A walk that needs no wait
    and no COW break takes exactly this one step."""
    mm = ctx.model.mm
    await ctx.down_read(mm.mmap_lock, "get_user_pages")
    got = await get_user_pages_locked(ctx, hva, write)
    ctx.up_read(mm.mmap_lock)
    return got
