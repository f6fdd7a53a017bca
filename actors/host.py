"""Host userspace: the VMM remapping guest RAM under KVM's feet.

Each operation follows the kernel's order (KERNEL.md section 3): take
``mmap_lock`` for write, call ``invalidate_range_start``, clear the ptes,
drop their references, call ``invalidate_range_end``, and only then change
the VMAs.
"""

from __future__ import annotations

from mmu import PAGE_SIZE, Vma

from .context import ActorContext
from .mailbox import Mailbox
from .notifier import InvalidateEnd, InvalidateStart


async def remapper(ctx: ActorContext, notifier: Mailbox, hva: int, times: int = 1) -> None:
    """``mmap(hva, MAP_FIXED)`` over the VMA holding ``hva``, ``times`` times.

    MAP_FIXED unmaps the old range inside the same ``mmap_lock`` hold
    (``mmap_region`` -> ``do_vmi_munmap``), and the new mapping is populated
    lazily, by the next fault on it. The old frames are freed inside the
    invalidation window, as when the mmu_gather batch fills and
    ``tlb_flush_mmu`` puts its pages before ``invalidate_range_end``
    (KERNEL.md section 3); a page freed after end is the easier case.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    for _ in range(times):
        await ctx.down_write(mm.mmap_lock, "do_mmap(MAP_FIXED): mmap_write_lock")
        old = mm.find_vma(hva, ctx.name)
        if old is None:
            ctx.note(f"no vma at {hva:#x}: nothing to remap")
            ctx.up_write(mm.mmap_lock)
            return
        ctx.note(f"unmap vma {old.start:#x}-{old.end:#x} (do_vmi_munmap)")
        await ctx.call(
            notifier,
            InvalidateStart(old.start, old.end),
            label="mmu_notifier_invalidate_range_start",
            resume="zap_pte_range: ptep_get_and_clear",
        )
        cleared = [mm.clear_pte(h, ctx.name) for h in range(old.start, old.end, PAGE_SIZE) if h in mm.ptes]
        await ctx.point("tlb_flush_mmu: put_page")
        for pte in cleared:
            frames.put_page(pte.pfn)
        await ctx.call(
            notifier,
            InvalidateEnd(old.start, old.end),
            label="mmu_notifier_invalidate_range_end",
            resume="remove_vma",
        )
        mm.remove_vma(old, ctx.name)
        await ctx.point("mmap_region: new vma, mmap_write_unlock")
        mm.insert_vma(Vma(old.start, old.end, old.prot, old.page_size), ctx.name)
        ctx.up_write(mm.mmap_lock)
