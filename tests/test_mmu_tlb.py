"""Each vcpu's TLB (``mmu/tlb.py``): what a guest access caches, what only a flush
drops, what the fault path must flush, and how the oracles judge cached entries.

docs/model.md 1.1 (state), 1.2 (the access and F7), 1.3 (the notifier's flush),
5.1 (what the TLB model leaves out).
"""

from __future__ import annotations

import pytest

from mmu import LockError, Model, corruption, divergence, stale_spte, writable_spte
from mmu.constants import HPAGE_SIZE
from mmu.model import FIRST_PFN, GUEST_RAM_HVA
from mmu.tlb import TlbEntry

P0 = FIRST_PFN
HVA = GUEST_RAM_HVA


def mapped(npages: int = 2, *, writable: bool = True) -> Model:
    """Guest RAM of ``npages`` with a leaf on every page, as the host maps it."""
    m = Model.build(npages=npages)
    m.kvm.mmu_lock.acquire("kvm")
    for gfn in range(npages):
        m.kvm.install_spte(gfn, P0 + gfn, writable, "kvm")
    m.kvm.mmu_lock.release("kvm")
    m.drain_log()
    m.fp.clear()
    return m


def zap(m: Model, gfn: int, *, flush: bool) -> None:
    """The notifier's mmu_lock section over ``gfn``: zap, and flush or not."""
    hva = m.kvm.memslot.gfn_to_hva(gfn)
    m.kvm.mmu_lock.acquire("notifier")
    m.kvm.unmap_hva_range(hva, hva + 1, "notifier")
    if flush:
        m.kvm.flush_remote_tlbs("notifier")
    m.kvm.mmu_lock.release("notifier")


def free_host_page(m: Model, gfn: int) -> None:
    """The host clears the pte of ``gfn`` and drops its reference: the frame is freed."""
    m.mm.mmap_lock.acquire("qemu", write=True)
    pte = m.mm.clear_pte(m.kvm.memslot.gfn_to_hva(gfn), "qemu")
    m.mm.mmap_lock.release("qemu", write=True)
    m.frames.put_page(pte.pfn)


# ---- guest accesses ----


def test_an_access_caches_the_leaf_and_the_next_one_does_not_walk() -> None:
    m = mapped()
    assert m.kvm.guest_access("vcpu0", 0, write=True) == TlbEntry(P0, True, 1)
    walk = m.drain_footprint()
    assert ("spte", 0) in walk.reads and ("tlb", "vcpu0", 0) in walk.writes
    assert m.kvm.guest_access("vcpu0", 0, write=False) == TlbEntry(P0, True, 1)
    hit = m.drain_footprint()
    assert ("tlb", "vcpu0", 0) in hit.reads and ("spte", 0) not in hit.reads and hit.writes == frozenset()
    assert m.drain_log() == ("through spte -> pfn 0x100", "through TLB -> pfn 0x100")


def test_each_vcpu_has_its_own_tlb() -> None:
    m = mapped()
    m.kvm.guest_access("vcpu0", 0, write=False)
    m.drain_log()
    m.kvm.guest_access("vcpu1", 0, write=False)
    assert m.drain_log() == ("through spte -> pfn 0x100",)
    assert sorted(m.kvm.tlbs.entries) == ["vcpu0", "vcpu1"]


def test_a_zap_leaves_a_usable_translation_until_the_flush() -> None:
    m = mapped()
    m.kvm.guest_access("vcpu0", 0, write=True)
    zap(m, 0, flush=False)
    assert not m.kvm.sptes.get(0)
    assert m.kvm.guest_access("vcpu0", 0, write=True) == TlbEntry(P0, True, 1)
    zap(m, 0, flush=True)
    m.drain_log()
    assert m.kvm.guest_access("vcpu0", 0, write=True) is None
    assert m.drain_log() == ("no spte: exit to kvm_mmu_page_fault",)


def test_a_write_through_a_read_only_entry_faults_and_drops_it() -> None:
    m = mapped(writable=False)
    m.kvm.guest_access("vcpu0", 0, write=False)
    m.drain_footprint()
    m.drain_log()
    assert m.kvm.guest_access("vcpu0", 0, write=True) is None
    assert ("tlb", "vcpu0", 0) in m.drain_footprint().writes
    assert m.drain_log() == ("read-only TLB entry: exit to kvm_mmu_page_fault",)
    assert m.kvm.tlbs.entries["vcpu0"] == {}


def test_an_access_through_a_stale_entry_is_corruption() -> None:
    m = mapped()
    m.kvm.guest_access("vcpu0", 0, write=True)
    zap(m, 0, flush=False)
    free_host_page(m, 0)
    assert corruption(m) is None
    m.kvm.guest_access("vcpu0", 0, write=True)
    found = corruption(m)
    assert found is not None and found.message == (
        "guest write of gfn 0x0 went through a stale TLB entry: pfn 0x100 was freed (refcount 0, on the free list)"
    )


def test_a_huge_leaf_is_cached_page_by_page() -> None:
    m = Model.build(npages=4)
    m.kvm.mmu_lock.acquire("kvm")
    m.kvm.install_spte(0, P0, True, "kvm", page_size=HPAGE_SIZE)
    m.kvm.mmu_lock.release("kvm")
    assert m.kvm.guest_access("vcpu0", 2, write=False) == TlbEntry(P0 + 2, True, 1)
    assert list(m.kvm.tlbs.entries["vcpu0"]) == [2]


# ---- flushes ----


def test_flush_remote_tlbs_empties_every_vcpu_and_says_who_acked() -> None:
    m = mapped()
    m.kvm.guest_access("vcpu0", 0, write=False)
    m.kvm.guest_access("vcpu0", 1, write=False)
    m.kvm.guest_access("vcpu1", 1, write=False)
    m.drain_log()
    m.drain_footprint()
    m.kvm.flush_remote_tlbs("qemu")
    assert m.kvm.tlbs.entries == {"vcpu0": {}, "vcpu1": {}}
    assert m.drain_log() == (
        "kvm_flush_remote_tlbs: KVM_REQ_TLB_FLUSH, acked by vcpu0 (gfn 0x0, gfn 0x1), vcpu1 (gfn 0x1)",
    )
    flush = m.drain_footprint()
    assert {("tlb", v, g) for v in ("vcpu0", "vcpu1") for g in (0, 1)} == flush.writes
    assert ("kvm", "vcpus") in flush.reads


def test_a_flush_before_any_vcpu_ran_reaches_nobody() -> None:
    m = mapped()
    m.kvm.flush_remote_tlbs("qemu")
    assert m.drain_log() == ("kvm_flush_remote_tlbs: KVM_REQ_TLB_FLUSH, no vcpu has entered the guest",)


def test_a_flush_conflicts_with_every_access_even_a_vcpus_first() -> None:
    """Partial-order reduction may swap a flush and an access only if they commute:
    they never do, not even when the flush came before the vcpu existed."""
    m = mapped()
    m.kvm.flush_remote_tlbs("qemu")
    before = m.drain_footprint()
    m.kvm.guest_access("vcpu0", 1, write=False)
    first = m.drain_footprint()
    assert first.conflicts(before), "a vcpu's first access registers it: a flush now reaches it"
    m.kvm.flush_remote_tlbs("qemu")
    flush = m.drain_footprint()
    m.kvm.guest_access("vcpu0", 1, write=False)
    m.drain_footprint()
    m.kvm.guest_access("vcpu0", 1, write=False)  # a hit
    hit = m.drain_footprint()
    assert hit.conflicts(flush)
    zap1 = m.kvm.memslot.gfn_to_hva(1)
    m.kvm.mmu_lock.acquire("notifier")
    m.kvm.unmap_hva_range(zap1, zap1 + 1, "notifier")
    m.kvm.mmu_lock.release("notifier")
    assert not hit.conflicts(m.drain_footprint()), "a hit does not look at the leaf: it commutes with a zap"


def test_the_fault_paths_flush_needs_mmu_lock_and_drops_only_its_range() -> None:
    m = mapped()
    m.kvm.guest_access("vcpu0", 0, write=False)
    m.kvm.guest_access("vcpu0", 1, write=False)
    with pytest.raises(LockError, match=r"^vcpu0 must hold mmu_lock$"):
        m.kvm.flush_remote_tlbs_range(range(1, 2), "vcpu0")
    m.kvm.mmu_lock.acquire("vcpu0")
    m.drain_log()
    m.kvm.flush_remote_tlbs_range(range(1, 2), "vcpu0")
    assert list(m.kvm.tlbs.entries["vcpu0"]) == [0]
    assert m.drain_log() == ("kvm_flush_remote_tlbs_gfn gfn 0x1+1: KVM_REQ_TLB_FLUSH, acked by vcpu0 (gfn 0x1)",)


# ---- what the fault path must flush (F7) ----


@pytest.mark.parametrize(
    ("before", "after", "stale"),
    [
        (None, (P0, True), range(0)),  # not present -> present: nothing was cached
        ((P0, False), (P0, True), range(0)),  # read-only -> writable: a write faults anyway
        ((P0, True), (P0, True), range(0)),  # the same leaf again
        ((P0, True), (P0, False), range(0, 1)),  # writable -> read-only
        ((P0, True), (P0 + 1, True), range(0, 1)),  # another pfn
    ],
)
def test_install_spte_says_what_its_change_made_stale(
    before: tuple[int, bool] | None, after: tuple[int, bool], stale: range
) -> None:
    m = Model.build(npages=4)
    m.kvm.mmu_lock.acquire("vcpu0")
    if before is not None:
        m.kvm.install_spte(0, *before, "vcpu0")
    assert m.kvm.install_spte(0, *after, "vcpu0") == stale


def test_a_huge_leaf_over_base_leaves_and_back_makes_the_range_stale() -> None:
    m = Model.build(npages=4)
    kvm = m.kvm
    kvm.mmu_lock.acquire("vcpu0")
    kvm.install_spte(1, P0 + 1, True, "vcpu0")
    assert kvm.install_spte(0, P0, True, "vcpu0", page_size=HPAGE_SIZE) == range(0, 4)
    assert kvm.install_spte(0, P0, True, "vcpu0") == range(0, 4)


# ---- write protection for dirty logging (x86) ----


def test_wrprotect_keeps_the_leaf_but_a_writable_entry_outlives_it_until_the_flush() -> None:
    m = mapped()
    kvm = m.kvm
    kvm.guest_access("vcpu0", 0, write=True)
    kvm.mmu_lock.acquire("migration")
    assert kvm.wrprotect_gfn(0, "migration") and not kvm.wrprotect_gfn(0, "migration")
    kvm.mmu_lock.release("migration")
    assert kvm.sptes[0].writable is False
    assert kvm.guest_access("vcpu0", 0, write=True) is not None, "the stale writable entry"
    kvm.flush_remote_tlbs_memslot("migration")
    assert kvm.guest_access("vcpu0", 0, write=True) is None


# ---- the oracles judge cached entries as they judge leaves ----


def test_stale_spte_judges_an_entry_that_outlived_its_leaf() -> None:
    broken, correct = mapped(), mapped()
    for m, flush in ((broken, False), (correct, True)):
        m.kvm.guest_access("vcpu0", 0, write=True)
        zap(m, 0, flush=flush)
        m.mm.mmap_lock.acquire("qemu", write=True)
        m.frames.put_page(m.mm.clear_pte(HVA, "qemu").pfn)
        m.mm.mmap_lock.release("qemu", write=True)
    assert stale_spte(correct) is None
    found = stale_spte(broken)
    assert found is not None and found.message == (
        "vcpu0 TLB entry gfn 0x0 -> pfn 0x100 (its leaf is gone: zapped, not flushed), but pfn 0x100 was"
        " freed (refcount 0, on the free list)"
    )


def remap(m: Model, gfn: int) -> None:
    """The host points ``gfn``'s hva at a fresh page (the old one stays referenced)."""
    hva = m.kvm.memslot.gfn_to_hva(gfn)
    m.mm.mmap_lock.acquire("qemu", write=True)
    m.mm.clear_pte(hva, "qemu")
    m.mm.set_pte(hva, m.frames.alloc_page(), True, "qemu")
    m.mm.mmap_lock.release("qemu", write=True)


def test_divergence_judges_an_entry_the_host_no_longer_maps_outside_invalidations() -> None:
    broken, correct = mapped(), mapped()
    for m, flush in ((broken, False), (correct, True)):
        m.kvm.guest_access("vcpu1", 1, write=False)
        m.kvm.mmu_lock.acquire("qemu")
        m.kvm.invalidate_begin("qemu")
        m.kvm.mmu_lock.release("qemu")
        zap(m, 1, flush=flush)
        remap(m, 1)
    assert divergence(broken) is None, "inside the window the host may be half way through"
    for m in (broken, correct):
        m.kvm.mmu_lock.acquire("qemu")
        m.kvm.invalidate_end("qemu")
        m.kvm.mmu_lock.release("qemu")
    assert divergence(correct) is None
    found = divergence(broken)
    assert found is not None and found.message.startswith(
        "vcpu1 TLB entry gfn 0x1 -> pfn 0x101 (its leaf is gone: zapped, not flushed), but host pte of hva"
    )


def test_writable_spte_judges_a_writable_entry_over_a_read_only_pte() -> None:
    broken, correct, read = mapped(), mapped(), mapped()
    for m, flush, write in ((broken, False, True), (correct, True, True), (read, False, False)):
        m.kvm.guest_access("vcpu0", 0, write=write)
        if not write:  # a read-only leaf, cached read-only
            m.kvm.tlbs.entries["vcpu0"][0] = TlbEntry(P0, False, 1)
        zap(m, 0, flush=flush)
        m.mm.mmap_lock.acquire("qemu", write=True)
        m.mm.wrprotect_pte(HVA, "qemu")
        m.mm.mmap_lock.release("qemu", write=True)
    assert writable_spte(correct) is None and writable_spte(read) is None
    found = writable_spte(broken)
    assert found is not None and found.message == (
        "vcpu0 TLB entry gfn 0x0 -> pfn 0x100 (its leaf is gone: zapped, not flushed) is writable, but host"
        " pte of hva 0x40000000 is read-only -> pfn 0x100 and no invalidation is in progress"
    )
