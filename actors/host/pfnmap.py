"""Device memory mapped into the VMM: ``VM_PFNMAP`` VMAs (docs/model.md 3.14).

A driver's ``->mmap`` (a VFIO BAR, a device buffer) maps its memory with
``remap_pfn_range``: every pte at once, ``pte_special``, ``vm_pgoff`` the
first pfn. No struct page reference is taken for those ptes, and gup
refuses the VMA: what keeps the memory is the driver, and it lets go when
the mapping is torn down (``vm_ops->close``), after which the memory is
reassigned. The zap that tears the mapping down calls the MMU notifier like
any other (``unmap_vmas``), so a secondary MMU that zaps on
``invalidate_range_start`` is safe; one that translated the pfn once and
kept it is left on memory that is no longer this device's.
"""

from __future__ import annotations

from mmu import PAGE_SIZE, HostPte, Vma

from ..runtime.context import ActorContext
from .syscalls import zap_range


def follow_pfnmap_pte(ctx: ActorContext, hva: int, write: bool) -> HostPte | None:
    """The pte of a VM_PFNMAP VMA at ``hva``, for a caller holding ``mmap_lock`` for read:
    ``vma_lookup`` and ``follow_pte`` (mm/memory.c, v6.9: walk to the pte and return
    it with its page-table lock held; ``follow_pfnmap_start`` since v6.12).

    None for -EFAULT: no VMA, one that is not VM_IO|VM_PFNMAP (``hva_to_pfn``'s
    ``KVM_PFN_ERR_FAULT``), no pte (``fixup_user_fault`` finds no ``->fault`` for
    a ``remap_pfn_range`` VMA: SIGBUS), or a write to a read-only pte
    (``KVM_PFN_ERR_RO_FAULT``: ``pte_write`` is honoured).
    """
    mm = ctx.model.mm
    vma = mm.find_vma(hva, ctx.name)
    if vma is None or not vma.pfnmap:
        ctx.note(f"vma_lookup: no VM_IO|VM_PFNMAP vma at hva {hva:#x}: -EFAULT")
        return None
    pte = mm.follow_pte(hva, ctx.name)
    if pte is None:
        ctx.note(f"follow_pte: no pte at hva {hva:#x}, fixup_user_fault: SIGBUS, -EFAULT")
        return None
    if write and not pte.writable:
        ctx.note(f"follow_pte: read-only pte at hva {hva:#x}: KVM_PFN_ERR_RO_FAULT")
        return None
    ctx.note(f"follow_pte: hva {hva:#x} -> pfn {pte.pfn:#x}{' W' if pte.writable else ' RO'}")
    return pte


async def mmap_device_fixed(ctx: ActorContext, hva: int) -> bool:
    """``mmap(MAP_FIXED)`` of the device file again over the VM_PFNMAP VMA holding ``hva``.

    In the order of ``mmap_fixed`` (``actors.host.syscalls``; v6.12 ``__mmap_region``,
    docs/model.md 3.3), under one ``mmap_lock`` write hold: start, the zap of the special ptes (no
    page to put), end; ``remove_vma``, whose ``vm_ops->close`` is where the driver
    gives its memory back; then the new VMA, for which the driver's ``->mmap``
    is assigned fresh device memory and calls ``remap_pfn_range``. Returns False
    (nothing done) if no VM_PFNMAP VMA holds ``hva``.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.down_write(mm.mmap_lock, "do_mmap(MAP_FIXED): mmap_write_lock")
    old = mm.find_vma(hva, ctx.name)
    if old is None or old.pgoff is None:
        ctx.note(f"no VM_PFNMAP vma at {hva:#x}: nothing to remap")
        ctx.up_write(mm.mmap_lock)
        return False
    npages = (old.end - old.start) // PAGE_SIZE
    ctx.note(f"unmap vma {old.start:#x}-{old.end:#x} (do_vmi_munmap)")
    await zap_range(ctx, old.start, old.end, after_end="remove_vma: vm_ops->close")
    mm.remove_vma(old, ctx.name)
    frames.release_device(old.pgoff, npages)
    await ctx.point("mmap_region: f_op->mmap, remap_pfn_range, mmap_write_unlock")
    new = Vma(old.start, old.end, old.prot, pgoff=frames.alloc_device(npages))
    mm.insert_vma(new, ctx.name)
    mm.remap_pfn_range(new, ctx.name)
    ctx.up_write(mm.mmap_lock)
    return True
