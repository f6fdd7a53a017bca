"""Unit tests of what the model has for a 2011 host: the era, the page-table lock,
KVM's repointed leaf, and the oracles' window around a per-page callback.
"""

from __future__ import annotations

import pytest

from mmu import PAGE_SIZE, Era, HostPte, LockError, Model, SpinLock, Spte
from mmu.model import FIRST_PFN, GUEST_RAM_HVA
from mmu.oracles import divergence, in_window, stale_spte, writable_spte

HVA = GUEST_RAM_HVA
P0, P1, P2 = FIRST_PFN, FIRST_PFN + 1, FIRST_PFN + 2


# ---- Era ----


@pytest.mark.parametrize(("year", "era"), [(2011, Era.Y2011), (2024, Era.TODAY)])
def test_an_era_is_named_by_its_year(year: int, era: Era) -> None:
    assert Era.from_year(year) is era and era == year


@pytest.mark.parametrize("year", [2012, 2017, 0, -1])
def test_a_year_that_is_not_an_era_is_refused(year: int) -> None:
    with pytest.raises(ValueError, match=rf"^'era' must be 2011 \(v3.1-v3.5\) or 2024 \(v6.10 and later\) \(got {year}\)$"):
        Era.from_year(year)


def test_only_a_2011_host_has_the_per_page_callbacks() -> None:
    assert (Era.Y2011.change_pte, Era.Y2011.invalidate_page) == (True, True)
    assert (Era.TODAY.change_pte, Era.TODAY.invalidate_page) == (False, False)


def test_a_model_runs_today_unless_told_otherwise() -> None:
    assert Model.build().era is Era.TODAY
    assert Model.build(npages=2, era=Era.Y2011).era is Era.Y2011


# ---- the page-table lock ----


def test_the_page_table_lock_is_a_free_spinlock_on_the_mm_footprint() -> None:
    m = Model.build()
    assert isinstance(m.mm.ptl, SpinLock) and (m.mm.ptl.name, m.mm.ptl.owner) == ("ptl", None)
    m.fp.clear()
    m.mm.ptl.acquire("ksmd")
    assert ("lock", "ptl") in m.drain_footprint().writes


# ---- Kvm.repoint_leaf (x86 kvm_set_pte_rmapp for one spte) ----


def locked(m: Model, who: str = "ksmd") -> Model:
    m.kvm.mmu_lock.acquire(who)
    return m


def test_repoint_leaf_needs_mmu_lock() -> None:
    m = locked(Model.build(npages=2))
    m.kvm.install_spte(0, P0, True, "ksmd")
    m.kvm.mmu_lock.release("ksmd")
    with pytest.raises(LockError, match=r"^ksmd must hold mmu_lock$"):
        m.kvm.repoint_leaf(0, P1, "ksmd")


def test_repoint_leaf_maps_the_new_frame_read_only_with_its_generation() -> None:
    m = locked(Model.build(npages=2))
    m.kvm.install_spte(0, P0, True, "ksmd")
    m.log.clear()
    m.fp.clear()
    m.kvm.repoint_leaf(0, P1, "ksmd")
    assert m.kvm.sptes == {0: Spte(P1, False, m.frames[P1].generation)}
    assert m.log == ["spte gfn 0x0 -> pfn 0x101 RO (was pfn 0x100 W)"]
    access = m.drain_footprint()
    assert ("spte", 0) in access.writes and ("frame", P1) in access.reads


def test_repoint_leaf_writable_is_what_a_broken_callback_would_do() -> None:
    m = locked(Model.build(npages=2))
    m.kvm.install_spte(0, P0, False, "ksmd")
    m.kvm.repoint_leaf(0, P1, "ksmd", writable=True)
    assert m.kvm.sptes[0].writable and m.log[-1] == "spte gfn 0x0 -> pfn 0x101 W (was pfn 0x100 RO)"


def test_repoint_leaf_refuses_a_huge_leaf() -> None:
    m = locked(Model.build(npages=4, nframes=8))
    m.kvm.install_spte(0, P0, True, "ksmd", page_size=4 * PAGE_SIZE)
    with pytest.raises(AssertionError, match=r"^repoint of the huge leaf at gfn 0x0: zap it$"):
        m.kvm.repoint_leaf(0, P1, "ksmd")


# ---- the oracles' window ----


def _switched(m: Model) -> None:
    """What replace_page leaves while it still holds the page-table lock: the host pte
    switched to another frame, read-only, and KVM's leaf still on the old one, writable."""
    m.kvm.mmu_lock.acquire("vcpu0")
    m.kvm.install_spte(0, P0, True, "vcpu0")
    m.kvm.mmu_lock.release("vcpu0")
    m.mm.mmap_lock.acquire("ksmd", write=False)
    m.mm.zap_pte(HVA, "ksmd")  # the old frame keeps the reference the pte had: not freed
    m.mm.set_pte(HVA, m.frames.alloc_page(), False, "ksmd")
    m.mm.mmap_lock.release("ksmd", write=False)


def test_leaves_are_not_compared_with_ptes_while_a_host_holds_the_page_table_lock() -> None:
    m = Model.build(npages=1, era=Era.Y2011)
    m.mm.ptl.acquire("ksmd")
    _switched(m)
    assert in_window(m)
    assert (divergence(m), writable_spte(m)) == (None, None)
    m.mm.ptl.release("ksmd")  # the callback returned without touching the leaf
    assert not in_window(m)
    assert divergence(m) is not None and writable_spte(m) is not None


def test_a_stale_leaf_is_judged_inside_the_window_too() -> None:
    m = Model.build(npages=1, era=Era.Y2011)
    m.mm.ptl.acquire("ksmd")
    _switched(m)
    m.frames.put_page(P0)  # the host lets the old page go before KVM heard of the switch
    violation = stale_spte(m)
    assert violation is not None and violation.message.startswith("spte gfn 0x0 -> pfn 0x100, but pfn 0x100 was freed")


def test_an_invalidation_in_progress_is_a_window_as_before() -> None:
    m = Model.build()
    m.kvm.mmu_lock.acquire("qemu")
    m.kvm.invalidate_begin("qemu")
    assert in_window(m) and m.mm.ptl.owner is None


def test_host_pte_values_compare_by_frame_and_write_bit() -> None:
    """replace_page's pte_same is ``HostPte`` equality: a COW copy or a re-protection differs."""
    assert HostPte(P0, False) == HostPte(P0, False)
    assert HostPte(P0, False) not in (HostPte(P0, True), HostPte(P2, False))
