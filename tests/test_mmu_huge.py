"""Huge pages in the model on their own: leaves judged page by page, the host
mapping size from the page table, the folio kept whole until its split.

A huge leaf at gfn 0 maps four base pages (``HPAGE_PAGES``); each is judged
against the frame it was made for and the host pte of its own address, and
the safe state beside each broken one is not flagged.
"""

from __future__ import annotations

import pytest

from mmu import PAGE_SIZE, Model, Region
from mmu.constants import HPAGE_PAGES, HPAGE_SIZE
from mmu.oracles import divergence, huge_spte, leaked_refs, stale_spte, writable_spte

HVA = 0x40000000


def thp_model() -> Model:
    """Guest RAM of one huge page mapped by a PMD, and a huge leaf over it."""
    m = Model.build_regions(Region(HPAGE_PAGES, populated=False), nframes=3 * HPAGE_PAGES)
    m.mm.mmap_lock.acquire("setup", write=True)
    head = m.frames.alloc_compound(HPAGE_PAGES)
    m.mm.set_pmd(HVA, head, True, "setup")
    m.mm.mmap_lock.release("setup", write=True)
    huge_leaf(m, head)
    return m


def huge_leaf(m: Model, pfn: int, *, writable: bool = True) -> None:
    m.kvm.mmu_lock.acquire("vcpu0")
    m.kvm.install_spte(0, pfn, writable, "vcpu0", page_size=HPAGE_SIZE)
    m.kvm.mmu_lock.release("vcpu0")


def base_model() -> tuple[Model, int]:
    """Four base pages from four separate allocations, and a huge leaf at the first."""
    m = Model.build(npages=HPAGE_PAGES, nframes=3 * HPAGE_PAGES)
    head = m.mm.ptes[HVA].pfn
    huge_leaf(m, head)
    return m, head


def remap_tail(m: Model, gfn: int) -> int:
    """Replace the host page of ``gfn`` by a fresh one, behind KVM's back (no notifier)."""
    hva = m.kvm.memslot.gfn_to_hva(gfn)
    m.mm.mmap_lock.acquire("qemu", write=True)
    old = m.mm.clear_pte(hva, "qemu").pfn
    m.mm.set_pte(hva, m.frames.alloc_page(), True, "qemu")
    m.mm.mmap_lock.release("qemu", write=True)
    m.frames.put_page(old)
    return old


def test_a_huge_leaf_over_its_own_pages_is_not_flagged() -> None:
    m, _ = base_model()
    assert [o(m) for o in (stale_spte, divergence, writable_spte)] == [None] * 3


def test_a_tail_page_remapped_is_divergence() -> None:
    m, head = base_model()
    remap_tail(m, 2)
    violation = divergence(m)
    assert violation is not None
    assert violation.message.startswith(f"spte gfn 0x2 -> pfn {head + 2:#x}, but host pte of hva 0x40002000 is -> pfn")


def test_a_tail_page_freed_is_a_stale_spte() -> None:
    m, head = base_model()
    assert remap_tail(m, 3) == head + 3
    violation = stale_spte(m)
    assert violation is not None
    assert violation.message == f"spte gfn 0x3 -> pfn {head + 3:#x}, but pfn {head + 3:#x} was freed (refcount 0, on the free list)"


def test_a_tail_page_write_protected_under_a_writable_leaf_is_writable_spte() -> None:
    m, head = base_model()
    m.mm.mmap_lock.acquire("qemu", write=True)
    m.mm.wrprotect_pte(HVA + PAGE_SIZE, "qemu")
    m.mm.mmap_lock.release("qemu", write=True)
    violation = writable_spte(m)
    assert violation is not None and violation.message.startswith(f"spte gfn 0x1 -> pfn {head + 1:#x} is writable")
    m.kvm.mmu_lock.acquire("vcpu0")
    m.kvm.zap_leaf(0, "vcpu0")
    m.kvm.mmu_lock.release("vcpu0")
    huge_leaf(m, head, writable=False)
    assert writable_spte(m) is None, "a read-only leaf over it is fine"


def test_the_host_mapping_size_is_the_page_tables() -> None:
    m = thp_model()
    assert [m.mm.mapping_size(HVA + i * PAGE_SIZE) for i in range(4)] == [HPAGE_SIZE] * 4
    assert huge_spte(m) is None
    m.mm.mmap_lock.acquire("qemu", write=False)
    m.mm.split_pmd(HVA, "qemu")
    m.mm.mmap_lock.release("qemu", write=False)
    assert m.mm.mapping_size(HVA) == PAGE_SIZE, "split: base ptes, though the folio is whole"
    assert m.frames.folio_nr_pages(m.mm.ptes[HVA].pfn) == HPAGE_PAGES
    assert huge_spte(m) is not None
    assert m.mm.mapping_size(HVA + HPAGE_SIZE) == PAGE_SIZE, "nothing mapped: a base page"


def test_a_hugetlb_region_is_mapped_by_one_leaf_of_its_size() -> None:
    m = Model.build_regions(Region(16, page_size=16 * PAGE_SIZE), nframes=32)
    (head,) = m.mm.pmds.values()
    assert m.frames.folio_nr_pages(head) == 16
    assert {m.mm.mapping_size(HVA + i * PAGE_SIZE) for i in range(16)} == {16 * PAGE_SIZE}
    m.end_run()
    assert leaked_refs(m) is None
    m.mm.mmap_lock.acquire("qemu", write=True)
    with pytest.raises(AssertionError, match=r"^zap of hva 0x40001000 inside a huge leaf: split it first$"):
        m.mm.clear_pte(HVA + PAGE_SIZE, "qemu")
    pte = m.mm.clear_pte(HVA, "qemu")
    m.mm.mmap_lock.release("qemu", write=True)
    assert (pte.pfn, pte.size, m.mm.ptes, m.mm.pmds) == (head, 16 * PAGE_SIZE, {}, {})
    m.frames.put_page(pte.pfn)
    assert all(m.frames[head + i].free for i in range(16)), "the leaf's one reference frees it whole"


def test_a_region_of_large_pages_must_hold_whole_pages() -> None:
    with pytest.raises(ValueError, match=r"^'page_size' must divide the region into whole pages \(got 0x10000\)$"):
        Region(1, page_size=0x10000)


def test_unmapping_one_page_of_a_split_folio_queues_it_once() -> None:
    m = thp_model()
    head = m.mm.pmds[HVA]
    m.mm.mmap_lock.acquire("qemu", write=False)
    m.mm.split_pmd(HVA, "qemu")
    assert m.frames.deferred == []
    for hva in (HVA + PAGE_SIZE, HVA + 2 * PAGE_SIZE):
        m.frames.put_page(m.mm.zap_pte(hva, "qemu").pfn)
    assert m.frames.deferred == [head]
    assert not m.frames[head + 1].free, "the folio keeps its unmapped pages until it is split"
    for hva in (HVA, HVA + 3 * PAGE_SIZE):
        m.frames.put_page(m.mm.zap_pte(hva, "qemu").pfn)
    m.mm.mmap_lock.release("qemu", write=False)
    assert m.frames.deferred == [], "freed whole, and off the queue"
    assert all(m.frames[head + i].free for i in range(4))


def test_the_shrinker_takes_a_folio_off_the_queue_with_a_reference() -> None:
    m = thp_model()
    head = m.mm.pmds[HVA]
    m.frames.deferred_split_folio(head)
    assert m.frames.deferred_split_take() == head and m.frames.refcount(head) == 2
    assert m.frames.deferred_split_take() is None
