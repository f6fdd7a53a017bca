"""KVM's callbacks for a 2011 host, as PPC HV had them and as one might get them wrong.

On a v3.1-v3.5 host KSM and COW report a pte switch through ``->change_pte``
and ``try_to_unmap_one`` through ``->invalidate_page``, both after the pte
changed and with no invalidate_range_start/end around them (docs/model.md
1.3). Nothing raises ``in_progress``: KVM's callback must change or drop the
leaf, and bump ``seq``, in one ``mmu_lock`` section. Four variants of
``seq_retry``'s callbacks:

- ``ppc_hv``: PPC Book3S HV's ``kvm_set_spte_hva``, which unmaps the HPTE
  instead of repointing it (correct);
- ``change_pte_writable``: repoints the leaf to the new page but keeps it
  writable, so the guest writes the KSM page;
- ``change_pte_no_seq``: repoints the leaf but forgets ``seq++``, so a read
  fault that resolved the old page just before ``replace_page`` installs it;
- ``invalidate_page_late_seq``: bumps ``seq`` in a second ``mmu_lock``
  section after the unmap, which the kernel's comment calls unsafe: a fault
  rechecks in between and installs the page being migrated away.

    mmurace matrix --scenario ksm_merge_2011 --scenario migrate_page_2011 \\
        --design examples/change_pte_2011.py
"""

from actors import DESIGNS, ActorContext, Design, ppc_hv_set_spte_hva
from mmu import PAGE_SIZE, HostPte

SEQ_RETRY = DESIGNS["seq_retry"]


async def set_spte_hva_writable(design: Design, ctx: ActorContext, hva: int, pte: HostPte) -> int:
    """x86's repoint, but the new leaf keeps the old leaf's write permission."""
    kvm = ctx.model.kvm
    leaves = kvm.leaves_in(hva, hva + PAGE_SIZE, ctx.name)
    for gfn in leaves:
        kvm.repoint_leaf(gfn, pte.pfn, ctx.name, writable=kvm.sptes[gfn].writable)
    return len(leaves)


async def change_pte_no_seq(design: Design, ctx: ActorContext, hva: int, pte: HostPte) -> None:
    """``kvm_mmu_notifier_change_pte`` without ``mmu_notifier_seq++``."""
    kvm = ctx.model.kvm
    await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: kvm_set_spte_hva")
    changed = await design.set_spte_hva(ctx, hva, pte)
    await design.flush(ctx, hva, hva + PAGE_SIZE, changed)
    ctx.spin_unlock(kvm.mmu_lock)


async def invalidate_page_late_seq(design: Design, ctx: ActorContext, hva: int) -> None:
    """``kvm_mmu_notifier_invalidate_page`` with ``seq++`` after the unlock."""
    kvm = ctx.model.kvm
    await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: kvm_unmap_hva, flush")
    zapped = await design.zap(ctx, hva, hva + PAGE_SIZE)
    await design.flush(ctx, hva, hva + PAGE_SIZE, zapped)
    ctx.spin_unlock(kvm.mmu_lock)
    await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: mmu_notifier_seq++")
    await design.bump_seq(ctx, hva, hva + PAGE_SIZE)
    ctx.spin_unlock(kvm.mmu_lock)


PPC_HV = SEQ_RETRY.replace(
    set_spte_hva=ppc_hv_set_spte_hva,
    name="ppc_hv",
    summary="seq_retry with PPC HV's change_pte: unmap the HPTE, whatever the new pte",
)
CHANGE_PTE_WRITABLE = SEQ_RETRY.replace(
    set_spte_hva=set_spte_hva_writable,
    name="change_pte_writable",
    summary="seq_retry whose change_pte repoints the leaf to the new page, still writable",
)
CHANGE_PTE_NO_SEQ = SEQ_RETRY.replace(
    change_pte=change_pte_no_seq,
    name="change_pte_no_seq",
    summary="seq_retry whose change_pte repoints the leaf but does not bump seq",
)
INVALIDATE_PAGE_LATE_SEQ = SEQ_RETRY.replace(
    invalidate_page=invalidate_page_late_seq,
    name="invalidate_page_late_seq",
    summary="seq_retry whose invalidate_page bumps seq in a second mmu_lock section, after the unmap",
)
