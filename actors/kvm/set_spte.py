"""The arch half of a 2011 host's ``change_pte``: ``kvm_set_spte_hva`` per architecture.

The generic callback (``Design.change_pte``, virt/kvm/kvm_main.c) takes
``mmu_lock``, bumps ``seq`` and hands the new host pte to the arch. x86
repoints a leaf read-only to the new pfn, or drops it if the new pte is
writable (``Design.set_spte_hva``, the default); PPC Book3S HV has no
cheaper way than to unmap the HPTE and let the guest fault it back in
(this module). Either is safe on its own: what KVM needs is that no leaf
still maps the old page once the callback returns, and that ``seq`` moved.
Plug it into a design with ``design.replace(set_spte_hva=ppc_hv_set_spte_hva)``.
"""

from __future__ import annotations

from mmu import PAGE_SIZE, HostPte

from ..runtime.context import ActorContext
from .design import Design


async def ppc_hv_set_spte_hva(design: Design, ctx: ActorContext, hva: int, pte: HostPte) -> int:
    """``kvm_set_spte_hva`` of PPC Book3S HV (arch/powerpc/kvm/book3s_64_mmu_hv.c from
    v3.3, when HV got MMU notifiers; ``kvm_set_spte_hva_hv`` once PR and HV became
    separate modules): ``kvm_handle_hva(kvm, hva, kvm_unmap_rmapp)``, whatever the
    new pte says: the HPTE is made absent, R/C
    harvested, and the next guest access faults. Nothing without
    ``using_mmu_notifiers`` (PPC970): the design's ``zap`` decides. Returns how
    many leaves went."""
    ctx.note("kvm_set_spte_hva (book3s_hv): kvm_handle_hva(kvm_unmap_rmapp)")
    return await design.zap(ctx, hva, hva + PAGE_SIZE)
