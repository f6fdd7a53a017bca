"""A migration entry stands for the page it replaced until ``remove_migration_ptes``.

The leaf of a pinned page whose migration fails and is put back is not
flagged while the entry is in place; a leaf left on the old page once the
entry is replaced by the new page's pte is.
"""

from __future__ import annotations

from mmu import Model
from mmu.oracles import divergence, writable_spte


def _migrating() -> tuple[Model, int]:
    m = Model.build(npages=1)
    hva = m.kvm.memslot.gfn_to_hva(0)
    pfn = m.mm.ptes[hva].pfn
    m.kvm.mmu_lock.acquire("vcpu0")
    m.kvm.install_spte(0, pfn, True, "vcpu0")
    m.kvm.mmu_lock.release("vcpu0")
    m.mm.rmap_lock.acquire("kcompactd", write=False)
    m.mm.set_migration_entry(hva, "kcompactd")
    return m, hva


def test_a_leaf_on_the_page_a_migration_entry_stands_for_is_not_flagged() -> None:
    m, _ = _migrating()
    assert divergence(m) is None and writable_spte(m) is None


def test_a_leaf_left_on_the_old_page_after_the_migration_is_flagged() -> None:
    m, hva = _migrating()
    new = m.frames.alloc_page()
    m.mm.remove_migration_pte(hva, new, "kcompactd")
    violation = divergence(m)
    assert violation is not None
    assert violation.message.startswith(f"spte gfn 0x0 -> pfn 0x100, but host pte of hva {hva:#x} is -> pfn {new:#x}")
