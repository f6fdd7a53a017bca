"""Unit tests of POWER7's HPT model (``mmu.hpt``) and of the KSM ledger (``mmu.merges``).

Each test builds a model by hand, takes the lock bits the kernel would hold
with the model's own ``SpinLock``s, does one thing and checks what it did:
the leaf, the HPTE's version, the footprint and the trace line, and the
message of every rule the model enforces.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mmu import PAGE_SIZE, Access, LockError, Model, SpinLock, Spte
from mmu.hpt import HPTE_LOCK, RMAP_LOCK, Hpt, lookup_linux_pte
from mmu.merges import KsmLedger, ReadBreak
from mmu.model import FIRST_PFN, GUEST_RAM_HVA
from mmu.oracles import ORACLES, ksm_undone

P0, P1 = FIRST_PFN, FIRST_PFN + 1
HVA = GUEST_RAM_HVA


def model(npages: int = 2) -> Model:
    return Model.build(npages=npages)


def locked(hpt: Hpt, gfn: int, who: str, *, rmap: bool = True) -> Hpt:
    hpt.hpte_lock(gfn).acquire(who)
    if rmap:
        hpt.rmap_lock(gfn).acquire(who)
    return hpt


# ---- lock bits ----


def test_each_page_has_its_own_lock_bits_in_two_lockdep_classes() -> None:
    hpt = model().hpt
    assert [hpt.hpte_lock(g).name for g in (0, 1)] == ["hpte[0x0]", "hpte[0x1]"]
    assert [hpt.rmap_lock(g).name for g in (0, 1)] == ["rmap[0x0]", "rmap[0x1]"]
    assert {hpt.hpte_lock(g).klass for g in (0, 1)} == {HPTE_LOCK} == {"HPTE_V_HVLOCK"}
    assert {hpt.rmap_lock(g).klass for g in (0, 1)} == {RMAP_LOCK} == {"KVMPPC_RMAP_LOCK_BIT"}
    assert hpt.hpte_lock(0) is not hpt.hpte_lock(1)


def test_a_spinlock_is_its_own_class_unless_told() -> None:
    assert SpinLock("mmu_lock").klass == "mmu_lock"
    assert SpinLock("hpte[0x3]", klass=HPTE_LOCK).klass == HPTE_LOCK


def test_lock_bits_record_their_footprint_in_the_models() -> None:
    m = model()
    m.hpt.rmap_lock(1).acquire("vcpu0")
    assert m.drain_footprint() == Access(frozenset(), frozenset({("lock", "rmap[0x1]")}))


# ---- the guest's HPTE ----


def test_no_hpte_until_the_guest_enters_one() -> None:
    m = model()
    assert m.hpt.guest_hpte(0) is None
    assert m.drain_footprint() == Access(frozenset({("hpte", 0)}), frozenset())


def test_enter_absent_needs_the_hpte_lock_and_bumps_the_version() -> None:
    m = model()
    with pytest.raises(LockError, match=r"^vcpu0 must hold hpte\[0x0\]$"):
        m.hpt.enter_absent(0, "vcpu0")
    locked(m.hpt, 0, "vcpu0", rmap=False).enter_absent(0, "vcpu0")
    assert m.hpt.guest_hpte(0) == 1 and m.kvm.sptes == {}
    assert m.log == ["HPTE gfn 0x0 absent (HPTE_V_ABSENT)"]


def test_enter_hpte_needs_both_lock_bits() -> None:
    m = model()
    m.hpt.hpte_lock(0).acquire("vcpu0")
    with pytest.raises(LockError, match=r"^vcpu0 must hold rmap\[0x0\]$"):
        m.hpt.enter_hpte(0, P0, True, "vcpu0")
    m.hpt.rmap_lock(0).acquire("qemu")
    with pytest.raises(LockError, match=r"^vcpu0 must hold rmap\[0x0\]$"):
        m.hpt.enter_hpte(0, P0, True, "vcpu0")
    assert m.kvm.sptes == {}


def test_enter_hpte_makes_the_leaf_and_chains_it() -> None:
    m = model()
    m.drain_footprint()
    locked(m.hpt, 0, "vcpu0").enter_hpte(0, P0, False, "vcpu0")
    assert m.kvm.sptes == {0: Spte(P0, False, 1)}
    assert m.hpt.versions == {0: 1}
    assert m.log == ["kvmppc_add_revmap_chain: HPTE on rmap[0x0]", "HPTE gfn 0x0 -> pfn 0x100 RO valid"]
    assert m.drain_footprint() == Access(
        frozenset({("frame", P0)}),
        frozenset({("lock", "hpte[0x0]"), ("lock", "rmap[0x0]"), ("spte", 0), ("hpte", 0)}),
    )


def test_a_write_fault_replaces_a_read_only_hpte_in_place() -> None:
    m = model()
    hpt = locked(m.hpt, 0, "vcpu0")
    hpt.enter_hpte(0, P0, False, "vcpu0")
    hpt.enter_hpte(0, P0, True, "vcpu0")
    assert m.kvm.sptes == {0: Spte(P0, True, 1)} and hpt.versions == {0: 2}
    assert m.log[-3:] == [
        "HPTE was previously valid: HPTE_V_ABSENT",
        "kvmppc_invalidate_hpte: tlbie: KVM_REQ_TLB_FLUSH, no vcpu has entered the guest",
        "HPTE gfn 0x0 -> pfn 0x100 W valid",
    ]


def test_h_enter_never_overwrites_a_valid_hpte() -> None:
    m = model()
    hpt = locked(m.hpt, 0, "vcpu0")
    hpt.enter_hpte(0, P0, True, "vcpu0")
    with pytest.raises(AssertionError, match=r"^H_ENTER over the valid HPTE of gfn 0x0$"):
        hpt.enter_absent(0, "vcpu0")


def test_read_hpte_needs_its_lock_and_an_entered_hpte() -> None:
    m = model()
    with pytest.raises(LockError, match=r"^vcpu0 must hold hpte\[0x1\]$"):
        m.hpt.read_hpte(1, "vcpu0")
    hpt = locked(m.hpt, 1, "vcpu0", rmap=False)
    with pytest.raises(AssertionError, match=r"^read of the HPTE for gfn 0x1, which the guest never entered$"):
        hpt.read_hpte(1, "vcpu0")
    hpt.enter_absent(1, "vcpu0")
    assert hpt.read_hpte(1, "vcpu0") == 1


def test_hpte_changed_compares_with_what_the_fault_read() -> None:
    m = model()
    hpt = locked(m.hpt, 0, "vcpu0")
    hpt.enter_absent(0, "vcpu0")
    seen = hpt.read_hpte(0, "vcpu0")
    assert hpt.hpte_changed(0, seen, "vcpu0") is False
    hpt.enter_hpte(0, P0, True, "vcpu0")  # another vcpu's fault, say
    assert hpt.hpte_changed(0, seen, "vcpu0") is True
    assert m.log[-1] == "HPTE has been changed under us; let the guest retry"


# ---- the rmap chain ----


def test_rmap_present_needs_the_rmap_lock_and_reads_the_leaf() -> None:
    m = model()
    with pytest.raises(LockError, match=r"^qemu must hold rmap\[0x0\]$"):
        m.hpt.rmap_present(0, "qemu")
    locked(m.hpt, 0, "vcpu0").enter_hpte(0, P0, True, "vcpu0")
    m.hpt.rmap_lock(0).release("vcpu0")
    m.hpt.rmap_lock(0).acquire("qemu")
    m.drain_footprint()
    assert m.hpt.rmap_present(0, "qemu") is True
    assert m.drain_footprint() == Access(frozenset({("spte", 0)}), frozenset())


def test_unmap_hpte_needs_both_lock_bits_and_leaves_the_hpte_absent() -> None:
    m = model()
    hpt = locked(m.hpt, 0, "vcpu0")
    hpt.enter_hpte(0, P0, True, "vcpu0")
    with pytest.raises(LockError, match=r"^qemu must hold hpte\[0x0\]$"):
        hpt.unmap_hpte(0, "qemu")
    hpt.unmap_hpte(0, "vcpu0")
    assert m.kvm.sptes == {} and hpt.guest_hpte(0) == 2
    assert m.log[-2:] == [
        "HPTE gfn 0x0 -> pfn 0x100 off rmap[0x0]: HPTE_V_ABSENT",
        "kvmppc_invalidate_hpte: tlbie: KVM_REQ_TLB_FLUSH, no vcpu has entered the guest",
    ]


def test_the_tlbie_of_an_unmap_drops_every_vcpus_translation_of_that_page_only() -> None:
    m = model()
    hpt = locked(m.hpt, 0, "vcpu0")
    hpt.enter_hpte(0, P0, True, "vcpu0")
    hpt.hpte_lock(1).acquire("vcpu0")
    hpt.rmap_lock(1).acquire("vcpu0")
    hpt.enter_hpte(1, P0 + 1, True, "vcpu0")
    for vcpu in ("vcpu0", "vcpu1"):
        for gfn in (0, 1):
            assert m.kvm.guest_access(vcpu, gfn, write=False) is not None
    hpt.unmap_hpte(0, "vcpu0")
    assert m.log[-1] == (
        "kvmppc_invalidate_hpte: tlbie: KVM_REQ_TLB_FLUSH, acked by vcpu0 (gfn 0x0), vcpu1 (gfn 0x0)"
    )
    assert [(v, g) for v, g, _ in m.kvm.tlbs.cached()] == [("vcpu0", 1), ("vcpu1", 1)]
    assert m.kvm.guest_access("vcpu1", 0, write=False) is None


# ---- mmu_notifier_retry under the rmap lock ----


@pytest.mark.parametrize(
    "check",
    [lambda hpt, who: hpt.retry_in_progress(0, who), lambda hpt, who: hpt.retry_seq(0, 0, who)],
    ids=["in_progress", "seq"],
)
def test_the_lockless_check_asserts_the_rmap_lock_not_mmu_lock(check: Callable[[Hpt, str], bool]) -> None:
    m = model()
    m.kvm.mmu_lock.acquire("vcpu0")  # the lock the writers hold does not do
    with pytest.raises(LockError, match=r"^vcpu0 must hold rmap\[0x0\]$"):
        check(m.hpt, "vcpu0")
    m.kvm.mmu_lock.release("vcpu0")
    m.hpt.rmap_lock(0).acquire("vcpu0")
    assert check(m.hpt, "vcpu0") is False


def test_the_two_reads_are_separate_operations_each_with_its_footprint() -> None:
    m = model()
    hpt = m.hpt
    hpt.rmap_lock(0).acquire("vcpu0")
    m.drain_footprint()
    assert hpt.retry_in_progress(0, "vcpu0") is False
    assert m.drain_footprint() == Access(frozenset({("kvm", "in_progress")}), frozenset())
    assert hpt.retry_seq(0, 0, "vcpu0") is False
    assert m.drain_footprint() == Access(frozenset({("kvm", "seq")}), frozenset())
    assert m.log == ["mmu_notifier_retry: in_progress 0", "smp_rmb(); seq 0 vs 0 -> ok"]


def test_the_check_sees_an_invalidation_in_progress_then_one_that_ended() -> None:
    m = model()
    kvm, hpt = m.kvm, m.hpt
    hpt.rmap_lock(0).acquire("vcpu0")
    mmu_seq = kvm.snapshot_seq()
    kvm.mmu_lock.acquire("qemu")
    kvm.invalidate_begin("qemu")
    assert hpt.retry_in_progress(0, "vcpu0") is True
    kvm.invalidate_end("qemu")
    assert hpt.retry_in_progress(0, "vcpu0") is False
    assert hpt.retry_seq(0, mmu_seq, "vcpu0") is True
    assert m.log[-3:] == ["in_progress 1->0", "mmu_notifier_retry: in_progress 0", "smp_rmb(); seq 1 vs 0 -> retry"]


def test_lookup_linux_pte_reads_the_host_pte_with_no_lock_and_no_reference() -> None:
    m = model()
    m.drain_footprint()
    pte = lookup_linux_pte(m.mm, HVA)
    assert pte is not None and (pte.pfn, pte.writable) == (P0, True)
    assert m.frames.refcount(P0) == 1
    assert lookup_linux_pte(m.mm, HVA + 2 * PAGE_SIZE) is None
    assert m.drain_footprint() == Access(
        frozenset({("pte", HVA), ("pte", HVA + 2 * PAGE_SIZE), ("frame", P0)}), frozenset()
    )


# ---- the KSM ledger and ksm_undone ----


def test_ledger_records_a_ksm_cow_break_only_inside_that_threads_read_fault() -> None:
    ledger = KsmLedger()
    ledger.cow_broken("vcpu0", HVA, P1)  # no fault in progress: a host write, ksmd's break_cow
    ledger.fault("vcpu0", HVA, write=True)
    ledger.cow_broken("vcpu0", HVA, P1)  # a write fault must break COW
    ledger.fault("vcpu0", HVA, write=False)
    ledger.cow_broken("qemu", HVA, P1)  # another thread's write, meanwhile
    ledger.cow_broken("vcpu0", HVA + PAGE_SIZE, P1)  # another page
    assert ledger.read_breaks == []
    ledger.cow_broken("vcpu0", HVA, P1)
    assert ledger.read_breaks == [ReadBreak("vcpu0", HVA, P1)]
    ledger.fault_done("vcpu0")
    assert ledger.reading == {}
    assert ledger.fp.drain() == Access(
        frozenset({("ksm", "vcpu0"), ("ksm", "qemu")}), frozenset({("ksm", "vcpu0"), ("ksm", "read_breaks")})
    )


def test_ksm_undone_names_the_thread_the_page_and_the_ksm_page() -> None:
    m = model()
    assert ksm_undone(m) is None
    m.ksm.fault("vcpu0", HVA + PAGE_SIZE, write=False)
    m.ksm.cow_broken("vcpu0", HVA + PAGE_SIZE, P1)
    v = ksm_undone(m)
    assert v is not None and v.oracle == "ksm_undone"
    assert v.message == (
        "vcpu0's read fault on gfn 0x1 broke COW: do_wp_page copied KSM page pfn 0x101 into a"
        " private page, undoing the merge for a guest that only read (no ksm for you)"
    )
    assert ORACLES["ksm_undone"] is ksm_undone
