"""POWER7's VRMA: the page size of guest real mode, told to the hardware once.

    "There is one thing we can't do at fault time, which is to tell the
    hardware the page size for the 'virtual real mode area' (VRMA) ... We
    can however work out that pagesize the first time we run a vcpu."
    (Paul Mackerras)  "Do you need to check at fault time that your
    assumptions haven't changed, then?"  (Avi Kivity, 2011-11-21)

``kvmppc_hv_setup_htab_rma`` reads the page size of the VMA at the memslot
for gpa 0 and writes it into ``vrma_slb_v`` and LPCR VRMASD; every VRMA
HPTE then has that size, and must be backed by host memory physically
contiguous over the whole page. The fault path either trusts the size read
then (``vrma_once``) or checks, after its seq snapshot, that the host page
still covers it, and fails the fault otherwise (``vrma_checked``, the
kernel's ``if (psize > pte_size) goto out_put``: R5).
"""

from __future__ import annotations

import itertools

from mmu import PAGE_SIZE

from ..host.gup import get_user_pages
from ..runtime.context import ActorContext
from . import refault

#: "We can handle 4k, 64k or 16M pages in the VRMA", largest first
VRMA_PAGE_SIZES = (0x1000000, 0x10000, PAGE_SIZE)


def vrma_page_size(host_psize: int) -> int:
    """The VRMA page size for a host page size: the largest supported one that fits."""
    return next(size for size in VRMA_PAGE_SIZES if host_psize >= size)


async def setup_htab_rma(ctx: ActorContext) -> None:
    """``kvmppc_hv_setup_htab_rma`` at first vcpu run (``!hpte_setup_done``).

    Only the first page's VMA is consulted (Avi's question). XX:
    ``kvmppc_map_vrma`` enters the VRMA HPTEs through ``kvmppc_virtmode_do_h_enter``,
    valid for pages already present (with the same size check as the fault
    path); the model enters them absent, so each is made by the fault path.
    """
    kvm, mm = ctx.model.kvm, ctx.model.mm
    await ctx.down_read(mm.mmap_lock, "kvmppc_hv_setup_htab_rma: find_vma(memslot->userspace_addr)")
    ctx.note("mutex_lock(kvm->lock); memslot = gfn_to_memslot(kvm, 0)")
    vma = mm.find_vma(kvm.memslot.userspace_addr, ctx.name)
    host_psize = None if vma is None else vma.page_size  # vma_kernel_pagesize
    ctx.up_read(mm.mmap_lock)
    if host_psize is None:
        ctx.note("no vma at gpa 0: -EINVAL")
        return
    ctx.note(f"vma_kernel_pagesize = {host_psize // 1024}K")
    await ctx.point("kvmppc_map_vrma, kvmppc_update_lpcr(VRMASD)")
    kvm.setup_vrma(vrma_page_size(host_psize))


async def _host_page_size(ctx: ActorContext, hva: int) -> int:
    """The size of the host page at ``hva`` (``find_kvm_host_pte``'s hugepage shift).

    The kernel walks the host page table with interrupts off; the model keeps
    the size on the VMA, which needs ``mmap_lock``. No VMA: no pte, base size.
    """
    mm = ctx.model.mm
    await ctx.down_read(mm.mmap_lock, "find_kvm_host_pte: host page size")
    vma = mm.find_vma(hva, ctx.name)
    ctx.up_read(mm.mmap_lock)
    return PAGE_SIZE if vma is None else vma.page_size


async def fault_vrma(ctx: ActorContext, gfn: int, write: bool, *, checked: bool) -> bool:
    """``kvmppc_book3s_hv_page_fault`` on an absent VRMA HPTE, in the kernel's order.

    The HPTE's page size is the VRMA's; seq snapshot (R1); ``__gfn_to_pfn_memslot``;
    with ``checked``, the host page size after the snapshot, and -EFAULT if the
    VRMA page is larger; ``lock_rmap`` (mmu_lock here) and ``mmu_invalidate_retry``
    before entering the HPTE (R2); ``put_page``. Like ``seq_retry``, a re-fault
    waits out an invalidation in progress.
    """
    kvm, frames = ctx.model.kvm, ctx.model.frames
    hva = kvm.memslot.gfn_to_hva(gfn)
    spinning = False
    for attempt in itertools.count(1):
        await refault.enter(ctx, "kvmppc_book3s_hv_page_fault", after_retry=spinning)
        psize = kvm.vrma_page_size()
        if psize is None:
            ctx.note("hpte_setup_done == 0: KVM_RUN fails")
            return False
        ctx.note(f"VRMA HPTE: psize {psize // 1024}K")
        mmu_seq = kvm.snapshot_seq()
        got = await get_user_pages(ctx, hva, write)
        if got is None:
            return False
        pfn, writable = got
        if checked:
            pte_size = await _host_page_size(ctx, hva)
            if psize > pte_size:
                ctx.note(f"psize {psize // 1024}K > pte_size {pte_size // 1024}K: -EFAULT (out_put)")
                frames.put_page(pfn)
                return False
        await ctx.spin_lock(kvm.mmu_lock, "lock_rmap: mmu_invalidate_retry, enter HPTE")
        retry = kvm.retry(mmu_seq, ctx.name)
        if not retry:
            kvm.install_spte(gfn, pfn, writable, ctx.name, page_size=psize)
        ctx.spin_unlock(kvm.mmu_lock)
        await ctx.point("put_page(pages[0])")
        frames.put_page(pfn)
        if not retry:
            return True
        spinning = refault.retry(ctx, gfn, attempt, "RESUME_GUEST: the guest re-faults")
    raise AssertionError("unreachable")
