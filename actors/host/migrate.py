"""Page migration (``move_pages(2)``, NUMA balancing, compaction), in kernel order.

docs/model.md section 3, in v6.12's order (``migrate_pages_batch``): isolate
the folio (ref+1), allocate the destination, ``try_to_migrate`` under the
anon_vma lock (start, ``ptep_clear_flush`` + migration entry +
``folio_remove_rmap_pte`` + ``folio_put``, end: the mapping's reference is
dropped inside the window, the isolation's keeps the page; since v6.4 the
TLB flush is batched, ``TTU_BATCH_FLUSH``, and done by ``try_to_unmap_flush``
after end, before anything is copied or freed), the expected-refcount
check of ``folio_migrate_mapping`` (an extra reference, such as gup's or a
PPC970 pin, makes it fail with -EAGAIN), copy, ``remove_migration_ptes``
(non-present -> present: no notifier), free the old frame. KVM's only
protection is that start zapped the spte (R4) and that a fault which got the
old pfn before start sees seq move (R1, R2). A 2011 host (v3.1-v3.5) clears
the pte and then calls ``->invalidate_page`` instead of start/end
(``actors.host.era2011.try_to_unmap_one``).
"""

from __future__ import annotations

from mmu import PAGE_SIZE

from ..runtime.context import ActorContext
from . import era2011
from .notifier import invalidate_end, invalidate_start


async def _restore(ctx: ActorContext, hva: int, pfn: int, label: str) -> None:
    """``remove_migration_ptes(src, dst)``: the entry at ``hva`` becomes a pte to ``pfn``."""
    mm = ctx.model.mm
    await ctx.down_read(mm.rmap_lock, label)
    mm.remove_migration_pte(hva, pfn, ctx.name)
    ctx.up_read(mm.rmap_lock)


async def _try_to_migrate_one(ctx: ActorContext, hva: int, src: int, *, resume: str) -> bool:
    """``try_to_migrate_one``, under the anon_vma lock: start, ``ptep_clear_flush``, a
    migration entry, ``folio_remove_rmap_pte``, ``folio_put``, end; returns whether
    ``src`` was mapped at ``hva``. The code after end is the step ``resume``. A 2011
    host runs ``era2011.try_to_unmap_one`` instead."""
    if ctx.model.era.invalidate_page:
        return await era2011.try_to_unmap_one(ctx, hva, src, resume=resume)
    mm, frames = ctx.model.mm, ctx.model.frames
    await invalidate_start(
        ctx,
        hva,
        hva + PAGE_SIZE,
        resume="try_to_migrate_one: ptep_clear_flush, migration entry",
    )
    mapped = mm.rmap_pte(hva, ctx.name)
    unmapped = mapped is not None and mapped.pfn == src
    if unmapped:
        frames.put_page(mm.set_migration_entry(hva, ctx.name).pfn)  # page_remove_rmap; folio_put
    else:
        ctx.note("folio no longer mapped at hva: nothing to unmap")
    await invalidate_end(ctx, hva, hva + PAGE_SIZE, resume=resume)
    return unmapped


async def migrate_page(ctx: ActorContext, hva: int) -> bool:
    """Migrate the page mapped at ``hva`` to a new frame; return whether it moved.

    The page is found as ``move_pages(2)`` finds it (``add_page_for_migration``
    under ``mmap_lock`` for read); the rest walks the rmap without ``mmap_lock``.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.down_read(mm.mmap_lock, "add_page_for_migration: folio_isolate_lru")
    pte = mm.follow_pte(hva, ctx.name)
    if pte is None:
        ctx.note(f"no page at hva {hva:#x}: nothing to migrate")
        ctx.up_read(mm.mmap_lock)
        return False
    src = pte.pfn
    frames.get_page(src)  # isolation's reference
    ctx.up_read(mm.mmap_lock)

    await ctx.point("migrate_folio_unmap: alloc_migration_target")
    dst = frames.alloc_page()

    await ctx.down_read(mm.rmap_lock, "try_to_migrate: folio_lock_anon_vma_read")
    unmapped = await _try_to_migrate_one(ctx, hva, src, resume="folio_migrate_mapping: expected refcount")
    ctx.up_read(mm.rmap_lock)
    refs = frames.refcount(src)
    if not unmapped or refs != 1:  # only isolation's reference may remain
        ctx.note(f"pfn {src:#x} refcount {refs}, expected 1: -EAGAIN, migration fails")
        if unmapped:
            frames.get_page(src)  # the restored pte's reference
            await _restore(ctx, hva, src, "remove_migration_ptes(src, src): anon_vma lock")
        await ctx.point("migrate_pages: putback_movable_pages")
        frames.put_page(src)
        frames.put_page(dst)
        return False
    frames.copy_page(src, dst)  # folio_migrate_copy, refcount frozen
    # dst's allocation reference becomes the pte's
    await _restore(ctx, hva, dst, "remove_migration_ptes(src, dst): anon_vma lock")
    await ctx.point("migrate_folio_done: folio_put(src)")
    frames.put_page(src)
    return True
