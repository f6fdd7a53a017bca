"""``mremap``: host userspace moves guest RAM to another address.

Unlike munmap, nothing is freed: the frames follow their ptes to the new
address, with no refcount change (docs/model.md section 3, "mremap move"). KVM's
memslot still names the old address, so the sptes must go all the same
(R4): a design that keeps one maps a live frame that the old address no
longer has, and the guest and QEMU silently see different memory.
"""

from __future__ import annotations

from mmu import PAGE_SIZE, Vma

from ..runtime.context import ActorContext
from .notifier import invalidate_end, invalidate_start


async def mremap_move(ctx: ActorContext, old_start: int, new_start: int) -> bool:
    """``mremap(old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, new)`` of the VMA at ``old_start``.

    ``move_vma`` (v6.12): ``copy_vma`` makes the new VMA, ``move_page_tables``
    moves each pte between invalidate_range_start and end of the old range
    (``move_ptes``: ``ptep_get_and_clear`` old, ``set_pte_at`` new, and
    ``flush_tlb_range`` of the old range before it drops the page-table lock,
    "to make sure the physical page stays valid until the TLB entry for the
    old mapping has been flushed": one step, before end), and
    ``do_vmi_munmap`` drops the old VMA, which has nothing left to zap.
    Returns False if no VMA starts at ``old_start``.
    """
    mm = ctx.model.mm
    await ctx.down_write(mm.mmap_lock, "mremap: mmap_write_lock")
    old = mm.find_vma(old_start, ctx.name)
    if old is None or old.start != old_start:
        ctx.note(f"no vma starts at {old_start:#x}: -EFAULT")
        ctx.up_write(mm.mmap_lock)
        return False
    shift = new_start - old.start
    mm.insert_vma(Vma(old.start + shift, old.end + shift, old.prot, old.page_size), ctx.name)
    ctx.note("copy_vma")
    await invalidate_start(
        ctx, old.start, old.end, resume="move_ptes: ptep_get_and_clear, set_pte_at, flush_tlb_range"
    )
    for hva in range(old.start, old.end, PAGE_SIZE):
        if mm.follow_pte(hva, ctx.name) is not None:
            pte = mm.clear_pte(hva, ctx.name)
            mm.set_pte(hva + shift, pte.pfn, pte.writable, ctx.name)  # the reference moves with it
    ctx.note("cpu tlb flushed for the old range, under the page-table lock")
    await invalidate_end(
        ctx, old.start, old.end, resume="do_vmi_munmap(old): remove_vma, mmap_write_unlock"
    )
    mm.remove_vma(old, ctx.name)
    ctx.up_write(mm.mmap_lock)
    return True
