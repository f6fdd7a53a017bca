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

from typing import ClassVar

import attrs

from mmu import PAGE_SIZE

from ..runtime.context import ActorContext
from .design import Fault, step
from .fault_path import SeqRetry

#: "We can handle 4k, 64k or 16M pages in the VRMA", largest first, in host bytes
VRMA_PAGE_SIZES = (0x1000000, 0x10000, 0x1000)


def vrma_page_size(host_psize: int, scale: int = 1) -> int:
    """The VRMA page size for a host page size, both in model bytes (``scale`` is
    ``FrameTable.scale``): the largest supported one that fits, as
    ``kvmppc_hv_setup_htab_rma`` clamps ``vma_kernel_pagesize`` (v3.6+; v3.3
    refused any other size with -EINVAL)."""
    return next(size for size in VRMA_PAGE_SIZES if host_psize * scale >= size) // scale


async def setup_htab_rma(ctx: ActorContext) -> None:
    """``kvmppc_hv_setup_htab_rma`` at first vcpu run (``!hpte_setup_done``).

    Only the first page's VMA is consulted (Avi's question), and the size is
    the VMA's: ``vma_kernel_pagesize(vma)`` under ``mmap_read_lock``, as the
    kernel reads it here (v3.3 to today). XX: ``kvmppc_map_vrma`` enters the
    VRMA HPTEs through ``kvmppc_virtmode_do_h_enter``, valid for pages already
    present (with the same size check as the fault path); the model enters
    them absent, so each is made by the fault path.
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
    frames = ctx.model.frames
    ctx.note(f"vma_kernel_pagesize = {frames.size_name(host_psize)}")
    await ctx.point("kvmppc_map_vrma, kvmppc_update_lpcr(VRMASD)")
    kvm.setup_vrma(vrma_page_size(host_psize, frames.scale))


def host_page_size(ctx: ActorContext, pfn: int) -> int:
    """The size of the host page gup returned, as v3.3 ``kvmppc_book3s_hv_page_fault``
    reads it: ``pte_size = PAGE_SIZE; if (PageHuge(page)) { page = compound_head(page);
    pte_size <<= compound_order(page); }``, after ``get_user_pages_fast`` returned.

    The compound frame's, never the VMA's page size, under no lock at all: in
    v3.3 neither ``mmap_lock`` nor ``kvm->mmu_lock`` is held here, and what keeps
    the answer true is the reference gup took (a hugetlb page is never split,
    and is not freed while referenced). The model reads it in the step of the
    gup that took that reference, which is the same. v5.x and later walk the
    host page table instead, with ``kvm->mmu_lock`` held after
    ``mmu_invalidate_retry`` (``find_kvm_host_pte``, which asserts that lock and
    relies on the notifier to keep the walk valid); for hugetlb pages, the only
    compound pages a v3.3 ppc64 host had (THP came to ppc64 in v3.11), both
    give the same size. Neither era's reader takes ``mmap_lock``.
    """
    return ctx.model.frames.folio_nr_pages(pfn) * PAGE_SIZE


@attrs.frozen
class VrmaFault(SeqRetry):
    """``kvmppc_book3s_hv_page_fault`` on an absent VRMA HPTE, in v3.3's order.

    The HPTE's page size is the VRMA's (``lookup``); seq snapshot (R1);
    ``get_user_pages_fast``; with ``checked``, the size of the host page gup
    returned (``host_page_size``: ``PageHuge``, under no lock), after the
    snapshot, and -EFAULT if the VRMA page is larger (``resolve``);
    ``lock_rmap`` (mmu_lock here) and ``mmu_invalidate_retry`` before entering
    the HPTE (R2); ``put_page``. Like ``seq_retry``, a re-fault waits out an
    invalidation in progress.
    """

    checked: bool = False

    fault_label: ClassVar[str] = "kvmppc_book3s_hv_page_fault"
    lock_label: ClassVar[str] = "lock_rmap: mmu_invalidate_retry, enter HPTE"
    release_label: ClassVar[str] = "put_page(pages[0])"
    retry_note: ClassVar[str] = "RESUME_GUEST: the guest re-faults"

    @step
    async def prepare(self, ctx: ActorContext) -> None:
        """``kvmppc_hv_setup_htab_rma`` at first vcpu run."""
        await setup_htab_rma(ctx)

    @step
    async def lookup(self, ctx: ActorContext, f: Fault) -> bool:
        """The VRMA page size the hardware was told: the HPTE's size; none yet fails KVM_RUN."""
        psize = ctx.model.kvm.vrma_page_size()
        if psize is None:
            ctx.note("hpte_setup_done == 0: KVM_RUN fails")
            return False
        ctx.note(f"VRMA HPTE: psize {ctx.model.frames.size_name(psize)}")
        f.size = psize
        return True

    @step
    async def resolve(self, ctx: ActorContext, f: Fault) -> bool:
        """gup, then (``checked``) ``if (psize > pte_size) goto out_put``."""
        if not await super().resolve(ctx, f):
            return False
        if self.checked:
            assert f.pfn is not None
            pte_size = host_page_size(ctx, f.pfn)
            if f.size > pte_size:
                name = ctx.model.frames.size_name
                ctx.note(f"psize {name(f.size)} > pte_size {name(pte_size)}: -EFAULT (out_put)")
                ctx.model.frames.put_page(f.pfn)
                return False
        return True
