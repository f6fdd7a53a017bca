"""Unit tests of the synchronous page-table model: frames, locks, host mm, KVM, oracles.

Each test builds a small state by hand, does one thing and checks what it did,
including the message of every rule the model enforces (its lockdep and
``BUG_ON``s), since those messages end up in traces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import pytest

from mmu import (
    ORACLES,
    PAGE_SIZE,
    Access,
    Footprint,
    Frame,
    FrameTable,
    HostMm,
    HostPte,
    Kvm,
    LockError,
    Memslot,
    Model,
    RwSem,
    SpinLock,
    Spte,
    Violation,
    Vma,
    corruption,
    divergence,
    stale_spte,
)
from mmu.model import FIRST_PFN, GUEST_RAM_HVA
from mmu.tlb import TlbEntry

if TYPE_CHECKING:
    from collections.abc import Callable

HVA = GUEST_RAM_HVA
P0, P1, P2, P3 = FIRST_PFN, FIRST_PFN + 1, FIRST_PFN + 2, FIRST_PFN + 3


def frame_table(count: int = 4) -> FrameTable:
    return FrameTable.with_frames(FIRST_PFN, count, [])


# ---- FrameTable and friends ----


def test_with_frames_builds_free_frames_in_pfn_order() -> None:
    frames = frame_table(3)
    assert frames.free_list() == (P0, P1, P2)
    for pfn in (P0, P1, P2):
        f = frames[pfn]
        assert (f.pfn, f.refcount, f.generation, f.free) == (pfn, 0, 0, True)


def test_free_list_built_from_a_dict_holds_only_free_frames_sorted() -> None:
    frames = FrameTable({7: Frame(7), 5: Frame(5, refcount=1, generation=1, free=False), 3: Frame(3)}, [])
    assert frames.free_list() == (3, 7)


def test_alloc_page_takes_the_head_with_one_reference() -> None:
    frames = frame_table(2)
    assert frames.alloc_page() == P0
    f = frames[P0]
    assert (f.refcount, f.generation, f.free) == (1, 1, False)
    assert frames.free_list() == (P1,)
    assert frames.log == ["alloc_page -> pfn 0x100 gen 1"]


def test_alloc_page_when_out_of_frames_raises_memory_error() -> None:
    frames = frame_table(1)
    frames.alloc_page()
    with pytest.raises(MemoryError, match=r"^out of page frames: give the scenario more frames$"):
        frames.alloc_page()


def test_get_page_takes_a_reference() -> None:
    frames = frame_table()
    pfn = frames.alloc_page()
    frames.get_page(pfn)
    frames.get_page(pfn)
    assert frames[pfn].refcount == 3
    assert frames.log[1:] == ["get_page pfn 0x100: ref 1->2", "get_page pfn 0x100: ref 2->3"]


def test_get_page_on_a_free_frame_raises() -> None:
    frames = frame_table()
    with pytest.raises(AssertionError, match=r"^get_page on free pfn 0x100$"):
        frames.get_page(P0)
    assert frames[P0].refcount == 0


def test_put_page_drops_a_reference_without_freeing() -> None:
    frames = frame_table()
    pfn = frames.alloc_page()
    frames.get_page(pfn)
    frames.put_page(pfn)
    assert (frames[pfn].refcount, frames[pfn].free) == (1, False)
    assert pfn not in frames.free_list()
    assert frames.log[-1] == "put_page pfn 0x100: ref 2->1"


def test_last_put_page_frees_the_frame_to_the_tail_of_the_free_list() -> None:
    frames = frame_table(3)
    pfn = frames.alloc_page()
    frames.put_page(pfn)
    f = frames[pfn]
    assert (f.refcount, f.free, f.generation) == (0, True, 1)
    assert frames.free_list() == (P1, P2, P0)
    assert frames.log[-1] == "put_page pfn 0x100: ref 1->0, frame freed"


def test_put_page_on_a_free_frame_raises() -> None:
    frames = frame_table()
    with pytest.raises(AssertionError, match=r"^put_page on pfn 0x100 with refcount 0$"):
        frames.put_page(P0)
    pfn = frames.alloc_page()
    frames.put_page(pfn)
    with pytest.raises(AssertionError, match=r"^put_page on pfn 0x100 with refcount 0$"):
        frames.put_page(pfn)
    assert frames[pfn].refcount == 0
    assert frames.free_list().count(pfn) == 1


def test_free_list_is_fifo() -> None:
    frames = frame_table(4)
    a, b, c = frames.alloc_page(), frames.alloc_page(), frames.alloc_page()
    frames.put_page(b)
    frames.put_page(a)
    assert frames.free_list() == (P3, b, a)
    assert [frames.alloc_page() for _ in range(3)] == [P3, b, a]
    frames.put_page(c)
    assert frames.free_list() == (c,)


def test_generation_is_bumped_on_each_reuse() -> None:
    frames = frame_table(1)
    for gen in (1, 2, 3):
        pfn = frames.alloc_page()
        assert (pfn, frames[pfn].generation) == (P0, gen)
        frames.put_page(pfn)
        assert frames[pfn].generation == gen  # freeing does not bump it


def test_is_current_tells_the_allocation_apart_from_a_reuse() -> None:
    frames = frame_table(1)
    pfn = frames.alloc_page()
    assert frames.is_current(pfn, 1)
    frames.put_page(pfn)
    assert not frames.is_current(pfn, 1)
    frames.alloc_page()
    assert not frames.is_current(pfn, 1)
    assert frames.is_current(pfn, 2)


def test_describe_a_live_frame() -> None:
    frames = frame_table()
    pfn = frames.alloc_page()
    frames.get_page(pfn)
    assert frames.describe(pfn, 1) == "pfn 0x100 is live (refcount 2)"


def test_describe_a_freed_frame() -> None:
    frames = frame_table()
    pfn = frames.alloc_page()
    frames.put_page(pfn)
    assert frames.describe(pfn, 1) == "pfn 0x100 was freed (refcount 0, on the free list)"


def test_describe_a_reused_frame() -> None:
    frames = frame_table(1)
    frames.put_page(frames.alloc_page())
    pfn = frames.alloc_page()
    assert frames.describe(pfn, 1) == "pfn 0x100 was freed and reused (gen 1 -> 2)"
    frames.put_page(pfn)  # reused, then freed again: the reuse is what matters
    assert frames.describe(pfn, 1) == "pfn 0x100 was freed and reused (gen 1 -> 2)"
    assert frames.describe(pfn, 2) == "pfn 0x100 was freed (refcount 0, on the free list)"


# ---- SpinLock ----


def test_lock_error_is_an_assertion_error() -> None:
    assert issubclass(LockError, AssertionError)


def test_spinlock_acquire_and_release() -> None:
    lock = SpinLock("mmu_lock")
    assert lock.can_acquire("a")
    assert lock.can_acquire("b")
    lock.acquire("a")
    assert lock.held_by("a")
    assert not lock.held_by("b")
    assert not lock.can_acquire("a")
    assert not lock.can_acquire("b")
    lock.release("a")
    assert lock.owner is None
    assert lock.can_acquire("b")


def test_spinlock_acquire_when_held_raises() -> None:
    lock = SpinLock("mmu_lock")
    lock.acquire("a")
    with pytest.raises(LockError, match=r"^b took mmu_lock held by a$"):
        lock.acquire("b")
    with pytest.raises(LockError, match=r"^a took mmu_lock held by a$"):
        lock.acquire("a")
    assert lock.owner == "a"


def test_spinlock_release_by_non_owner_raises() -> None:
    lock = SpinLock("mmu_lock")
    with pytest.raises(LockError, match=r"^a released mmu_lock held by \(free\)$"):
        lock.release("a")
    lock.acquire("a")
    with pytest.raises(LockError, match=r"^b released mmu_lock held by a$"):
        lock.release("b")
    assert lock.owner == "a"


# ---- RwSem ----


def test_rwsem_readers_share() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("a", write=False)
    assert sem.can_acquire("b", write=False)
    sem.acquire("b", write=False)
    assert sem.readers == ["a", "b"]
    assert sem.held_by("a")
    assert sem.held_by("a", write=False)
    assert not sem.held_by("a", write=True)
    sem.release("a", write=False)
    assert sem.readers == ["b"]
    assert not sem.held_by("a")


def test_rwsem_writer_excludes_readers_and_writers() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("w", write=True)
    assert sem.held_by("w")
    assert sem.held_by("w", write=True)
    assert not sem.held_by("w", write=False)
    for who in ("w", "r"):
        assert not sem.can_acquire(who, write=False)
        assert not sem.can_acquire(who, write=True)
    with pytest.raises(LockError, match=r"^r took mmap_lock while it is held \(writer w\)$"):
        sem.acquire("r", write=False)
    with pytest.raises(LockError, match=r"^v took mmap_lock while it is held \(writer w\)$"):
        sem.acquire("v", write=True)
    assert (sem.writer, sem.readers) == ("w", [])


def test_rwsem_readers_exclude_a_writer() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("a", write=False)
    sem.acquire("b", write=False)
    assert not sem.can_acquire("w", write=True)
    assert not sem.can_acquire("a", write=True)  # no upgrade
    with pytest.raises(LockError, match=r"^w took mmap_lock while it is held \(readers a, b\)$"):
        sem.acquire("w", write=True)
    assert sem.writer is None


def test_rwsem_release_by_non_owner_raises() -> None:
    sem = RwSem("mmap_lock")
    with pytest.raises(LockError, match=r"^a released mmap_lock for write, held by \(free\)$"):
        sem.release("a", write=True)
    with pytest.raises(LockError, match=r"^a released mmap_lock for read, held by \(free\)$"):
        sem.release("a", write=False)
    sem.acquire("a", write=True)
    with pytest.raises(LockError, match=r"^b released mmap_lock for write, held by \(writer a\)$"):
        sem.release("b", write=True)
    with pytest.raises(LockError, match=r"^a released mmap_lock for read, held by \(writer a\)$"):
        sem.release("a", write=False)  # wrong mode
    sem.release("a", write=True)
    sem.acquire("a", write=False)
    with pytest.raises(LockError, match=r"^b released mmap_lock for read, held by \(readers a\)$"):
        sem.release("b", write=False)
    with pytest.raises(LockError, match=r"^a released mmap_lock for write, held by \(readers a\)$"):
        sem.release("a", write=True)  # wrong mode
    assert sem.readers == ["a"]


def test_rwsem_is_free_again_after_all_release() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("a", write=False)
    sem.release("a", write=False)
    assert sem.can_acquire("w", write=True)
    sem.acquire("w", write=True)
    sem.release("w", write=True)
    assert (sem.writer, sem.readers) == (None, [])


# ---- RwSem: the wait list (kernel/locking/rwsem.c) ----


def test_rwsem_a_reader_queues_behind_a_waiting_writer() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("r1", write=False)
    assert not sem.can_acquire("w", write=True)
    sem.enqueue("w", write=True)
    # rwsem_down_read_slowpath: readers hold it and somebody waits: queue
    assert not sem.can_acquire("r2", write=False)
    assert not sem.can_acquire("r1", write=False), "not even the reader that holds it"
    sem.enqueue("r2", write=False)
    assert sem.waiting("r2") == "mmap_lock for read (held by readers r1, queued behind w (write))"
    assert sem.waiting("w") == "mmap_lock for write (held by readers r1)"


def test_rwsem_a_recursive_read_waits_for_ever_behind_a_queued_writer() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("v", write=False)
    sem.enqueue("q", write=True)
    sem.enqueue("v", write=False)  # down_read again: the slowpath queues it
    assert not sem.may_take("q"), "the writer waits for v's first read"
    assert sem.queued("v"), "and v waits behind the writer: nobody can go"
    assert sem.readers == ["v"] and [w.who for w in sem.waiters] == ["q", "v"]


def test_rwsem_without_waiters_readers_share_and_read_again() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("v", write=False)
    assert sem.can_acquire("v", write=False)
    sem.acquire("v", write=False)
    assert sem.readers == ["v", "v"]
    sem.release("v", write=False)
    assert sem.held_by("v", write=False)


def test_rwsem_a_free_lock_may_be_stolen_past_the_queue() -> None:
    """Optimistic lock stealing, allowed until the first waiter sets RWSEM_FLAG_HANDOFF:
    the model has no clock and always allows it."""
    sem = RwSem("mmap_lock")
    sem.acquire("a", write=True)
    sem.enqueue("w1", write=True)
    sem.release("a", write=True)
    assert sem.may_take("w1")
    assert sem.can_acquire("w2", write=True) and sem.can_acquire("r", write=False)
    sem.acquire("w2", write=True)
    assert not sem.may_take("w1")
    sem.release("w2", write=True)
    sem.acquire("w1", write=True)
    assert (sem.writer, sem.waiters) == ("w1", [])


def test_rwsem_only_the_first_queued_writer_is_woken() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("a", write=True)
    sem.enqueue("w1", write=True)
    sem.enqueue("w2", write=True)
    sem.release("a", write=True)
    assert sem.may_take("w1") and not sem.may_take("w2")
    with pytest.raises(LockError, match=r"^w2 took mmap_lock while it is held \(free\)$"):
        sem.acquire("w2", write=True)


def test_rwsem_release_grants_every_queued_reader_when_a_reader_is_first() -> None:
    """rwsem_mark_wake: the readers go in together, writers keep their place."""
    sem = RwSem("mmap_lock")
    sem.acquire("w", write=True)
    for who, write in (("r1", False), ("w2", True), ("r2", False)):
        sem.enqueue(who, write=write)
    sem.release("w", write=True)
    assert sem.readers == ["r1", "r2"]
    assert [w.who for w in sem.waiters] == ["w2"]
    assert sem.waiting("r1") == "mmap_lock (granted)"


def test_rwsem_a_queued_reader_is_granted_it_and_never_takes_it() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("w", write=True)
    sem.enqueue("r", write=False)
    with pytest.raises(LockError, match=r"^r took mmap_lock for read while queued: a reader is granted it$"):
        sem.acquire("r", write=False)


def test_rwsem_a_writer_first_in_the_queue_is_not_granted_on_release() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("r", write=False)
    sem.enqueue("w", write=True)
    sem.enqueue("r2", write=False)
    sem.release("r", write=False)
    assert (sem.readers, [w.who for w in sem.waiters]) == ([], ["w", "r2"])
    assert sem.may_take("w")
    assert sem.can_acquire("x", write=False), "a free lock may be stolen, even by a reader"


def test_rwsem_downgrade_keeps_it_for_read_and_lets_queued_readers_in() -> None:
    """downgrade_write -> rwsem_downgrade_wake: readers at the head are granted."""
    sem = RwSem("mmap_lock")
    sem.acquire("q", write=True)
    sem.enqueue("v", write=False)
    sem.downgrade("q")
    assert (sem.writer, sem.readers, sem.waiters) == (None, ["q", "v"], [])
    assert sem.can_acquire("v2", write=False) and not sem.can_acquire("w", write=True)
    with pytest.raises(LockError, match=r"^v downgraded mmap_lock, held by \(readers q, v\)$"):
        sem.downgrade("v")


def test_rwsem_downgrade_wakes_no_writer() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("q", write=True)
    sem.enqueue("w", write=True)
    sem.enqueue("v", write=False)
    sem.downgrade("q")
    assert sem.readers == ["q"] and [w.who for w in sem.waiters] == ["w", "v"]
    assert not sem.may_take("w")


def test_rwsem_queueing_twice_is_refused() -> None:
    sem = RwSem("mmap_lock")
    sem.acquire("a", write=True)
    sem.enqueue("b", write=False)
    with pytest.raises(LockError, match=r"^b queued for mmap_lock twice$"):
        sem.enqueue("b", write=True)


def test_rwsem_queue_changes_are_writes_of_the_lock() -> None:
    fp = Footprint()
    sem = RwSem("mmap_lock", fp=fp)
    sem.acquire("a", write=True)
    fp.drain()
    sem.enqueue("b", write=False)
    assert fp.drain().writes == {("lock", "mmap_lock")}


# ---- Vma ----


@pytest.mark.parametrize("end", [0x2000, 0x1000])
def test_vma_end_must_be_after_start(end: int) -> None:
    with pytest.raises(ValueError, match=rf"^'end' must be > start 0x2000 \(got {end:#x}\)$"):
        Vma(0x2000, end)


@pytest.mark.parametrize("prot", ["x", "w", "", "rwx"])
def test_vma_prot_must_be_r_or_rw(prot: str) -> None:
    with pytest.raises(ValueError, match=r"'prot' must be in") as excinfo:
        Vma(0x1000, 0x2000, prot)
    # attrs' in_ validator passes (msg, attribute, options, value): str() of it is the tuple
    assert excinfo.value.args[0] == f"'prot' must be in ('r', 'rw') (got {prot!r})"


def test_vma_accepts_r_and_rw_and_defaults_to_rw() -> None:
    assert Vma(0x1000, 0x2000).prot == "rw"
    assert Vma(0x1000, 0x2000, "r").prot == "r"
    assert Vma(0x1000, 0x2000).page_size == PAGE_SIZE


def test_vma_is_frozen_and_validated_on_evolve() -> None:
    vma = Vma(0x1000, 0x2000)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        vma.end = 0x3000  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"^'end' must be > start 0x1000 \(got 0x1000\)$"):
        attrs.evolve(vma, end=0x1000)


def test_vma_contains_is_half_open() -> None:
    vma = Vma(0x1000, 0x3000)
    assert [vma.contains(a) for a in (0xFFF, 0x1000, 0x2FFF, 0x3000)] == [False, True, True, False]


# ---- HostMm ----


def host_mm() -> HostMm:
    frames = frame_table()
    return HostMm(frames, frames.log)


def populated_mm(who: str = "setup") -> HostMm:
    """A mm with one rw VMA of 2 pages at HVA and the first page mapped to P0."""
    mm = host_mm()
    mm.mmap_lock.acquire(who, write=True)
    mm.insert_vma(Vma(HVA, HVA + 2 * PAGE_SIZE), who)
    mm.set_pte(HVA, mm.frames.alloc_page(), True, who)
    mm.mmap_lock.release(who, write=True)
    mm.log.clear()
    return mm


MM_CALLS: dict[str, tuple[bool, Callable[[HostMm, str], object]]] = {
    # name: (needs write, call)
    "find_vma": (False, lambda mm, who: mm.find_vma(HVA, who)),
    "follow_pte": (False, lambda mm, who: mm.follow_pte(HVA, who)),
    "set_pte": (False, lambda mm, who: mm.set_pte(HVA + PAGE_SIZE, P0, False, who)),
    "clear_pte": (True, lambda mm, who: mm.clear_pte(HVA, who)),
    "insert_vma": (True, lambda mm, who: mm.insert_vma(Vma(0x1000, 0x2000), who)),
    "remove_vma": (True, lambda mm, who: mm.remove_vma(Vma(HVA, HVA + 2 * PAGE_SIZE), who)),
    "detach_vma": (True, lambda mm, who: mm.detach_vma(Vma(HVA, HVA + 2 * PAGE_SIZE), who)),
}


@pytest.mark.parametrize("name", sorted(MM_CALLS))
def test_hostmm_methods_need_mmap_lock(name: str) -> None:
    write, call = MM_CALLS[name]
    mm = populated_mm()
    mode = "write" if write else "read"
    with pytest.raises(LockError, match=rf"^x must hold mmap_lock for {mode}$"):
        call(mm, "x")
    mm.mmap_lock.acquire("other", write=True)  # somebody else's lock does not count
    with pytest.raises(LockError, match=rf"^x must hold mmap_lock for {mode}$"):
        call(mm, "x")
    assert mm.log == []


@pytest.mark.parametrize("name", sorted(n for n, (write, _) in MM_CALLS.items() if write))
def test_hostmm_write_methods_refuse_a_read_lock(name: str) -> None:
    _, call = MM_CALLS[name]
    mm = populated_mm()
    mm.mmap_lock.acquire("x", write=False)
    with pytest.raises(LockError, match=r"^x must hold mmap_lock for write$"):
        call(mm, "x")
    assert HVA in mm.ptes
    assert len(mm.vmas) == 1


@pytest.mark.parametrize("name", sorted(n for n, (write, _) in MM_CALLS.items() if not write))
@pytest.mark.parametrize("write", [False, True])
def test_hostmm_read_methods_accept_either_mode(name: str, write: bool) -> None:
    _, call = MM_CALLS[name]
    mm = populated_mm()
    mm.mmap_lock.acquire("x", write=write)
    call(mm, "x")


def test_set_pte_under_read_lock_takes_over_the_reference() -> None:
    mm = populated_mm()
    mm.mmap_lock.acquire("fault", write=False)
    pfn = mm.frames.alloc_page()
    mm.set_pte(HVA + PAGE_SIZE, pfn, False, "fault")
    assert mm.ptes[HVA + PAGE_SIZE] == HostPte(pfn, False)
    assert mm.frames[pfn].refcount == 1
    assert mm.follow_pte(HVA + PAGE_SIZE, "fault") == HostPte(pfn, False)
    assert mm.log[-1] == "pte hva 0x40001000 -> pfn 0x101 RO"


def test_set_pte_over_a_present_pte_raises() -> None:
    mm = populated_mm()
    mm.mmap_lock.acquire("x", write=True)
    with pytest.raises(AssertionError, match=r"^set_pte over a present pte at hva 0x40000000$"):
        mm.set_pte(HVA, mm.frames.alloc_page(), True, "x")
    assert mm.ptes[HVA].pfn == P0


def test_set_pte_to_a_free_frame_raises() -> None:
    mm = populated_mm()
    mm.mmap_lock.acquire("x", write=True)
    with pytest.raises(AssertionError, match=r"^set_pte to free pfn 0x101$"):
        mm.set_pte(HVA + PAGE_SIZE, P1, True, "x")
    assert HVA + PAGE_SIZE not in mm.ptes


def test_clear_pte_hands_the_reference_to_the_caller() -> None:
    mm = populated_mm()
    mm.mmap_lock.acquire("x", write=True)
    assert mm.clear_pte(HVA, "x") == HostPte(P0, True)
    assert HVA not in mm.ptes
    assert (mm.frames[P0].refcount, mm.frames[P0].free) == (1, False)  # not dropped yet
    assert mm.follow_pte(HVA, "x") is None
    assert mm.log == ["pte hva 0x40000000 -> pfn 0x100 cleared"]


def test_insert_vma_keeps_vmas_sorted_and_refuses_overlap() -> None:
    mm = host_mm()
    mm.mmap_lock.acquire("x", write=True)
    mm.insert_vma(Vma(0x5000, 0x6000), "x")
    mm.insert_vma(Vma(0x1000, 0x2000, "r"), "x")
    mm.insert_vma(Vma(0x2000, 0x5000), "x")  # adjacent on both sides is fine
    assert [(v.start, v.end) for v in mm.vmas] == [(0x1000, 0x2000), (0x2000, 0x5000), (0x5000, 0x6000)]
    with pytest.raises(AssertionError, match=r"^vma 0x1fff-0x2001 overlaps an existing vma$"):
        mm.insert_vma(Vma(0x1FFF, 0x2001), "x")
    assert len(mm.vmas) == 3
    assert mm.log[1] == "vma 0x1000-0x2000 r inserted"


def test_find_vma_finds_the_containing_vma() -> None:
    mm = host_mm()
    mm.mmap_lock.acquire("x", write=True)
    a, b = Vma(0x1000, 0x2000), Vma(0x3000, 0x4000)
    mm.insert_vma(b, "x")
    mm.insert_vma(a, "x")
    found = {hva: mm.find_vma(hva, "x") for hva in (0xFFF, 0x1000, 0x1FFF, 0x2000, 0x3FFF, 0x4000)}
    assert found == {0xFFF: None, 0x1000: a, 0x1FFF: a, 0x2000: None, 0x3FFF: b, 0x4000: None}


def test_remove_vma_refuses_while_ptes_are_present() -> None:
    mm = populated_mm()
    vma = mm.vmas[0]
    mm.mmap_lock.acquire("x", write=True)
    with pytest.raises(AssertionError, match=r"^vma 0x40000000-0x40002000 removed with ptes present$"):
        mm.remove_vma(vma, "x")
    mm.frames.put_page(mm.clear_pte(HVA, "x").pfn)
    mm.remove_vma(vma, "x")
    assert mm.vmas == []
    assert mm.log[-1] == "vma 0x40000000-0x40002000 removed"


def test_detach_vma_leaves_the_ptes_for_the_zap() -> None:
    """munmap since v4.20: the VMA leaves the tree under the write lock, the ptes
    are zapped after the downgrade."""
    mm = populated_mm()
    mm.mmap_lock.acquire("x", write=True)
    mm.fp.drain()
    mm.detach_vma(mm.vmas[0], "x")
    assert (mm.vmas, mm.ptes[HVA]) == ([], HostPte(P0, True))
    assert mm.fp.drain().writes == {("vmas",)}
    mm.mmap_lock.downgrade("x")
    assert mm.find_vma(HVA, "x") is None
    assert mm.zap_pte(HVA, "x") == HostPte(P0, True)
    assert mm.log == ["vma 0x40000000-0x40002000 detached", "pte hva 0x40000000 -> pfn 0x100 cleared"]


def test_gup_fast_sees_present_ptes_with_no_lock_and_no_vma() -> None:
    mm = populated_mm()
    mm.fp.drain()
    assert mm.gup_fast_pte(HVA) == HostPte(P0, True)
    assert mm.gup_fast_pte(HVA + PAGE_SIZE) is None
    assert mm.fp.drain() == Access(frozenset({("pte", HVA), ("pte", HVA + PAGE_SIZE)}), frozenset())
    mm.mmap_lock.acquire("x", write=True)
    mm.detach_vma(mm.vmas[0], "x")
    assert mm.gup_fast_pte(HVA) == HostPte(P0, True), "a detached VMA's ptes are still there"
    assert mm.log == ["vma 0x40000000-0x40002000 detached"]


def test_gup_fast_conflicts_with_every_change_of_its_pte() -> None:
    """Partial-order reduction must never take a lockless pte read and a pte change
    as independent."""
    mm = populated_mm()
    mm.fp.drain()
    mm.gup_fast_pte(HVA)
    walk = mm.fp.drain()
    mm.mmap_lock.acquire("x", write=True)
    changes = {
        "clear_pte": lambda: mm.clear_pte(HVA, "x"),
        "wrprotect_pte": lambda: mm.wrprotect_pte(HVA, "x"),
    }
    for name, change in changes.items():
        snapshot = dict(mm.ptes)
        mm.fp.drain()
        change()
        assert walk.conflicts(mm.fp.drain()), name
        mm.ptes = snapshot
    mm.fp.drain()
    mm.insert_vma(Vma(0x1000, 0x2000), "x")
    assert not walk.conflicts(mm.fp.drain()), "the walk never reads a VMA"


def test_gup_fast_does_not_see_a_migration_entry() -> None:
    mm = populated_mm()
    mm.rmap_lock.acquire("kcompactd", write=False)
    mm.set_migration_entry(HVA, "kcompactd")
    assert mm.gup_fast_pte(HVA) is None


# ---- Memslot ----


def test_memslot_needs_pages() -> None:
    with pytest.raises(ValueError, match=r"^'npages' must be > 0: 0$"):
        Memslot(0, 0, HVA)


def test_gfn_to_hva_maps_each_page_of_the_slot() -> None:
    slot = Memslot(0x10, 4, HVA)
    assert [slot.gfn_to_hva(g) for g in range(0x10, 0x14)] == [HVA + i * PAGE_SIZE for i in range(4)]


@pytest.mark.parametrize("gfn", [0x0, 0xF, 0x14, 0x100])
def test_gfn_to_hva_outside_the_slot_raises(gfn: int) -> None:
    with pytest.raises(ValueError, match=rf"^gfn {gfn:#x} outside memslot$"):
        Memslot(0x10, 4, HVA).gfn_to_hva(gfn)


@pytest.mark.parametrize(
    ("start", "end", "gfns"),
    [
        (HVA, HVA + 4 * PAGE_SIZE, range(0x10, 0x14)),  # the whole slot
        (0, 2**48, range(0x10, 0x14)),  # clamped to the slot
        (HVA + PAGE_SIZE, HVA + 3 * PAGE_SIZE, range(0x11, 0x13)),  # page aligned inside
        (HVA + PAGE_SIZE, HVA + PAGE_SIZE + 1, range(0x11, 0x12)),  # one byte: its page
        (HVA + 2 * PAGE_SIZE - 1, HVA + 2 * PAGE_SIZE, range(0x11, 0x12)),  # last byte of a page
        (HVA + PAGE_SIZE - 1, HVA + PAGE_SIZE + 1, range(0x10, 0x12)),  # straddles two pages
        (HVA - PAGE_SIZE, HVA + 1, range(0x10, 0x11)),  # starts before the slot
        (HVA + 3 * PAGE_SIZE + 1, HVA + 9 * PAGE_SIZE, range(0x13, 0x14)),  # ends after the slot
        (HVA - PAGE_SIZE, HVA, range(0)),  # ends where the slot starts
        (HVA + 4 * PAGE_SIZE, HVA + 5 * PAGE_SIZE, range(0)),  # starts where the slot ends
        (HVA + PAGE_SIZE, HVA + PAGE_SIZE, range(0)),  # empty range
        (HVA + 2 * PAGE_SIZE, HVA + PAGE_SIZE, range(0)),  # backwards range
    ],
)
def test_gfns_in(start: int, end: int, gfns: range) -> None:
    assert list(Memslot(0x10, 4, HVA).gfns_in(start, end)) == list(gfns)


# ---- Kvm ----


def make_kvm(npages: int = 4, nframes: int = 4) -> Kvm:
    frames = frame_table(nframes)
    return Kvm(frames, frames.log, Memslot(0, npages, HVA))


def locked_kvm(who: str = "kvm", **kwargs: int) -> Kvm:
    kvm = make_kvm(**kwargs)
    kvm.mmu_lock.acquire(who)
    return kvm


KVM_CALLS: dict[str, Callable[[Kvm, str], object]] = {
    "invalidate_begin": lambda kvm, who: kvm.invalidate_begin(who),
    "invalidate_end": lambda kvm, who: kvm.invalidate_end(who),
    "unmap_hva_range": lambda kvm, who: kvm.unmap_hva_range(HVA, HVA + PAGE_SIZE, who),
    "retry": lambda kvm, who: kvm.retry(0, who),
    "inc_seq": lambda kvm, who: kvm.inc_seq(who),
    "dec_in_progress": lambda kvm, who: kvm.dec_in_progress(who),
    "check_in_progress": lambda kvm, who: kvm.check_in_progress(who),
    "check_seq": lambda kvm, who: kvm.check_seq(0, who),
    "install_spte": lambda kvm, who: kvm.install_spte(0, P0, True, who),
    "wrprotect_gfn": lambda kvm, who: kvm.wrprotect_gfn(0, who),
    "flush_remote_tlbs_range": lambda kvm, who: kvm.flush_remote_tlbs_range(range(0, 1), who),
}


@pytest.mark.parametrize("name", sorted(KVM_CALLS))
def test_kvm_methods_need_mmu_lock(name: str) -> None:
    kvm = make_kvm()
    with pytest.raises(LockError, match=r"^vcpu must hold mmu_lock$"):
        KVM_CALLS[name](kvm, "vcpu")
    kvm.mmu_lock.acquire("notifier")
    with pytest.raises(LockError, match=r"^vcpu must hold mmu_lock$"):
        KVM_CALLS[name](kvm, "vcpu")
    assert (kvm.seq, kvm.in_progress, kvm.sptes, kvm.log) == (0, 0, {}, [])


def test_invalidate_begin_counts_up_without_touching_seq() -> None:
    kvm = locked_kvm()
    kvm.invalidate_begin("kvm")
    kvm.invalidate_begin("kvm")
    assert (kvm.in_progress, kvm.seq) == (2, 0)
    assert kvm.log == ["in_progress 0->1", "in_progress 1->2"]


def test_invalidate_end_bumps_seq_then_counts_down() -> None:
    kvm = locked_kvm()
    kvm.invalidate_begin("kvm")
    kvm.invalidate_begin("kvm")
    kvm.invalidate_end("kvm")
    assert (kvm.in_progress, kvm.seq) == (1, 1)
    kvm.invalidate_end("kvm")
    assert (kvm.in_progress, kvm.seq) == (0, 2)
    assert kvm.log[2:] == ["seq 0->1", "in_progress 2->1", "seq 1->2", "in_progress 1->0"]


def test_the_stores_of_end_one_at_a_time() -> None:
    """seq++ and in_progress-- as separate operations, for designs that order them otherwise."""
    kvm = locked_kvm()
    kvm.invalidate_begin("kvm")
    kvm.fp.clear()
    kvm.dec_in_progress("kvm")
    assert kvm.fp.drain() == Access(frozenset(), frozenset({("kvm", "in_progress")}))
    kvm.inc_seq("kvm")
    assert kvm.fp.drain() == Access(frozenset(), frozenset({("kvm", "seq")}))
    assert (kvm.in_progress, kvm.seq) == (0, 1)
    assert kvm.log[1:] == ["in_progress 1->0", "seq 0->1"]
    with pytest.raises(AssertionError, match=r"^invalidate_range_end without start \(in_progress < 0\)$"):
        kvm.dec_in_progress("kvm")


def test_the_two_checks_of_retry_one_at_a_time() -> None:
    kvm = locked_kvm()
    snapshot = kvm.snapshot_seq()
    kvm.fp.clear()
    assert kvm.check_in_progress("kvm") is False
    assert kvm.check_seq(snapshot, "kvm") is False
    assert kvm.fp.drain() == Access(frozenset({("kvm", "in_progress"), ("kvm", "seq")}), frozenset())
    kvm.invalidate_begin("kvm")
    assert kvm.check_in_progress("kvm") is True
    kvm.invalidate_end("kvm")
    assert kvm.check_in_progress("kvm") is False
    assert kvm.check_seq(snapshot, "kvm") is True
    assert kvm.log[1:3] == ["in_progress 0", "seq 0 vs 0"]
    assert kvm.log[-2:] == ["in_progress 0", "seq 1 vs 0 -> retry"]


def test_invalidate_end_without_start_raises() -> None:
    kvm = locked_kvm()
    with pytest.raises(AssertionError, match=r"^invalidate_range_end without start \(in_progress < 0\)$"):
        kvm.invalidate_end("kvm")
    kvm.invalidate_begin("kvm")
    kvm.invalidate_end("kvm")
    with pytest.raises(AssertionError, match=r"^invalidate_range_end without start \(in_progress < 0\)$"):
        kvm.invalidate_end("kvm")
    assert (kvm.in_progress, kvm.seq) == (0, 1)


def test_retry_is_false_for_a_fresh_snapshot() -> None:
    kvm = locked_kvm()
    assert kvm.retry(kvm.seq, "kvm") is False
    assert kvm.log == ["mmu_invalidate_retry: in_progress 0, seq 0 vs 0 -> ok"]


def test_retry_while_an_invalidation_is_in_progress() -> None:
    kvm = locked_kvm()
    snapshot = kvm.seq
    kvm.invalidate_begin("kvm")
    assert kvm.retry(snapshot, "kvm") is True
    assert kvm.log[-1] == "mmu_invalidate_retry: in_progress 1, seq 0 vs 0 -> retry"


def test_retry_once_seq_has_moved() -> None:
    kvm = locked_kvm()
    snapshot = kvm.seq
    kvm.invalidate_begin("kvm")
    kvm.invalidate_end("kvm")  # in_progress is back to 0, but a whole invalidation ran
    assert kvm.retry(snapshot, "kvm") is True
    assert kvm.log[-1] == "mmu_invalidate_retry: in_progress 0, seq 1 vs 0 -> retry"
    assert kvm.retry(kvm.seq, "kvm") is False


def test_install_spte_records_the_frame_generation() -> None:
    kvm = locked_kvm(nframes=1)
    kvm.frames.put_page(kvm.frames.alloc_page())
    pfn = kvm.frames.alloc_page()
    kvm.install_spte(2, pfn, False, "kvm")
    assert kvm.sptes == {2: Spte(P0, False, 2)}
    assert kvm.log[-1] == "spte gfn 0x2 -> pfn 0x100 RO"
    kvm.install_spte(2, pfn, True, "kvm")  # replaces
    assert kvm.sptes == {2: Spte(P0, True, 2)}
    assert kvm.log[-1] == "spte gfn 0x2 -> pfn 0x100 W"


def test_unmap_hva_range_zaps_only_the_sptes_in_range() -> None:
    kvm = locked_kvm(npages=4)
    for gfn in range(4):
        kvm.install_spte(gfn, FIRST_PFN + gfn, True, "kvm")
    kvm.log.clear()
    assert kvm.unmap_hva_range(HVA + PAGE_SIZE, HVA + 3 * PAGE_SIZE, "kvm") == 2
    assert sorted(kvm.sptes) == [0, 3]
    assert kvm.log == ["zap spte gfn 0x1 -> pfn 0x101", "zap spte gfn 0x2 -> pfn 0x102"]
    assert (kvm.seq, kvm.in_progress) == (0, 0)  # zapping is not an invalidation


def test_unmap_hva_range_uses_the_memslot_translation() -> None:
    frames = frame_table()
    kvm = Kvm(frames, frames.log, Memslot(0x10, 2, HVA))
    kvm.mmu_lock.acquire("kvm")
    kvm.install_spte(0x10, P0, True, "kvm")
    kvm.install_spte(0x11, P1, True, "kvm")
    kvm.log.clear()
    # one byte of the second page zaps exactly that page's spte
    assert kvm.unmap_hva_range(HVA + PAGE_SIZE + 10, HVA + PAGE_SIZE + 11, "kvm") == 1
    assert list(kvm.sptes) == [0x10]
    assert kvm.log == ["zap spte gfn 0x11 -> pfn 0x101"]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (HVA - PAGE_SIZE, HVA),  # just before the slot
        (HVA + 4 * PAGE_SIZE, HVA + 8 * PAGE_SIZE),  # just after the slot
        (HVA + 3 * PAGE_SIZE, HVA + 4 * PAGE_SIZE),  # in the slot, no spte there
    ],
)
def test_unmap_hva_range_with_nothing_to_zap(start: int, end: int) -> None:
    kvm = locked_kvm(npages=4)
    kvm.install_spte(0, P0, True, "kvm")
    kvm.log.clear()
    assert kvm.unmap_hva_range(start, end, "kvm") == 0
    assert list(kvm.sptes) == [0]
    assert kvm.log == ["no spte in range"]


def test_guest_access_without_an_spte_faults() -> None:
    kvm = make_kvm()
    assert kvm.guest_access("vcpu0", 0, write=False) is None
    assert kvm.log == ["no spte: exit to kvm_mmu_page_fault"]
    assert kvm.bad_accesses == []


def test_guest_write_through_a_read_only_spte_faults() -> None:
    kvm = locked_kvm()
    kvm.install_spte(0, kvm.frames.alloc_page(), False, "kvm")
    kvm.mmu_lock.release("kvm")
    kvm.log.clear()
    assert kvm.guest_access("vcpu0", 0, write=True) is None
    assert kvm.guest_access("vcpu0", 0, write=False) == TlbEntry(P0, False, 1)
    assert kvm.log == ["read-only spte: exit to kvm_mmu_page_fault", "through spte -> pfn 0x100"]


def test_guest_access_needs_no_lock_and_is_fine_on_a_live_frame() -> None:
    kvm = locked_kvm()
    kvm.install_spte(0, kvm.frames.alloc_page(), True, "kvm")
    kvm.mmu_lock.release("kvm")
    assert kvm.guest_access("vcpu0", 0, write=True) == TlbEntry(P0, True, 1)
    assert kvm.bad_accesses == []


def test_guest_access_through_a_freed_frame_is_recorded() -> None:
    kvm = locked_kvm()
    kvm.install_spte(0, kvm.frames.alloc_page(), True, "kvm")
    kvm.frames.put_page(P0)
    assert kvm.guest_access("vcpu0", 0, write=True) == TlbEntry(P0, True, 1)  # the hardware does not know
    assert kvm.bad_accesses == [
        "guest write of gfn 0x0 went through a stale spte: pfn 0x100 was freed (refcount 0, on the free list)"
    ]


def test_guest_access_through_a_reused_frame_is_recorded() -> None:
    kvm = locked_kvm(nframes=1)
    kvm.install_spte(3, kvm.frames.alloc_page(), True, "kvm")
    kvm.frames.put_page(P0)
    assert kvm.frames.alloc_page() == P0
    kvm.guest_access("vcpu0", 3, write=False)
    kvm.guest_access("vcpu0", 3, write=True)
    assert kvm.bad_accesses == [  # the write found the translation the read cached
        f"guest {kind} of gfn 0x3 went through a stale {path}: pfn 0x100 was freed and reused (gen 1 -> 2)"
        for kind, path in (("read", "spte"), ("write", "TLB entry"))
    ]


# ---- Model ----


def test_model_build_maps_guest_ram() -> None:
    m = Model.build(npages=3, nframes=5)
    assert m.log == []
    assert m.mm.vmas == [Vma(HVA, HVA + 3 * PAGE_SIZE, "rw")]
    assert m.mm.ptes == {HVA + i * PAGE_SIZE: HostPte(FIRST_PFN + i, True) for i in range(3)}
    assert [m.frames[FIRST_PFN + i].refcount for i in range(5)] == [1, 1, 1, 0, 0]
    assert m.frames.free_list() == (FIRST_PFN + 3, FIRST_PFN + 4)
    assert m.kvm.memslot == Memslot(0, 3, HVA)
    assert (m.kvm.sptes, m.kvm.seq, m.kvm.in_progress, m.kvm.bad_accesses) == ({}, 0, 0, [])
    assert m.mm.mmap_lock.writer is None
    assert m.mm.mmap_lock.readers == []
    assert m.kvm.mmu_lock.owner is None


def test_model_components_share_one_log_and_drain_it() -> None:
    m = Model.build()
    assert m.frames.log is m.log
    assert m.mm.log is m.log
    assert m.kvm.log is m.log
    assert m.frames is m.mm.frames is m.kvm.frames
    m.frames.get_page(FIRST_PFN)
    m.kvm.guest_access("vcpu0", 0, write=False)
    assert m.drain_log() == ("get_page pfn 0x100: ref 1->2", "no spte: exit to kvm_mmu_page_fault")
    assert m.log == []
    assert m.drain_log() == ()


def test_model_build_without_enough_frames_raises() -> None:
    with pytest.raises(MemoryError):
        Model.build(npages=3, nframes=2)


# ---- oracles ----


def fault_in(m: Model, gfn: int = 0, who: str = "vcpu") -> None:
    """Install the spte of ``gfn`` for whatever its host pte maps, as a correct fault would."""
    hva = m.kvm.memslot.gfn_to_hva(gfn)
    m.kvm.mmu_lock.acquire(who)
    pte = m.mm.ptes[hva]
    m.kvm.install_spte(gfn, pte.pfn, pte.writable, who)
    m.kvm.mmu_lock.release(who)


def unmap_without_notifier(m: Model, gfn: int = 0, who: str = "qemu") -> int:
    """Clear the host pte of ``gfn`` and drop its page, with no invalidation at all."""
    hva = m.kvm.memslot.gfn_to_hva(gfn)
    m.mm.mmap_lock.acquire(who, write=True)
    pfn = m.mm.clear_pte(hva, who).pfn
    m.frames.put_page(pfn)
    m.mm.mmap_lock.release(who, write=True)
    return pfn


def all_oracles(m: Model) -> dict[str, Violation | None]:
    return {name: oracle(m) for name, oracle in ORACLES.items()}


def test_oracles_registry_order() -> None:
    assert list(ORACLES) == [
        "vrma_psize", "huge_spte", "stale_spte", "corruption", "divergence", "writable_spte",
        "spurious_efault", "leaked_refs", "pinned_pages", "lost_dirty", "ksm_write", "ksm_undone",
        "deleted_memslot", "invalidate_leak",
    ]
    assert (ORACLES["stale_spte"], ORACLES["corruption"], ORACLES["divergence"]) == (stale_spte, corruption, divergence)


@pytest.mark.parametrize("npages", [1, 4])
def test_oracles_are_silent_on_a_fresh_model(npages: int) -> None:
    assert all_oracles(Model.build(npages=npages)) == dict.fromkeys(ORACLES)


def test_oracles_are_silent_with_coherent_sptes_and_guest_accesses() -> None:
    m = Model.build(npages=2)
    fault_in(m, 0)
    fault_in(m, 1)
    assert m.kvm.guest_access("vcpu0", 0, write=True) is not None
    assert m.kvm.guest_access("vcpu0", 1, write=False) is not None
    assert all_oracles(m) == dict.fromkeys(ORACLES)


def test_oracles_are_silent_after_the_notifier_protocol() -> None:
    m = Model.build()
    fault_in(m)
    m.mm.mmap_lock.acquire("qemu", write=True)
    m.kvm.mmu_lock.acquire("notifier")
    m.kvm.invalidate_begin("notifier")
    assert m.kvm.unmap_hva_range(HVA, HVA + PAGE_SIZE, "notifier") == 1
    m.kvm.mmu_lock.release("notifier")
    m.frames.put_page(m.mm.clear_pte(HVA, "qemu").pfn)
    assert all_oracles(m) == dict.fromkeys(ORACLES)
    m.kvm.mmu_lock.acquire("notifier")
    m.kvm.invalidate_end("notifier")
    m.kvm.mmu_lock.release("notifier")
    assert all_oracles(m) == dict.fromkeys(ORACLES)


def test_stale_spte_fires_on_a_freed_frame() -> None:
    m = Model.build()
    fault_in(m)
    unmap_without_notifier(m)
    assert stale_spte(m) == Violation(
        "stale_spte", "spte gfn 0x0 -> pfn 0x100, but pfn 0x100 was freed (refcount 0, on the free list)"
    )


def test_stale_spte_fires_on_a_reused_frame() -> None:
    m = Model.build(nframes=1)
    fault_in(m)
    unmap_without_notifier(m)
    assert m.frames.alloc_page() == P0
    assert stale_spte(m) == Violation(
        "stale_spte", "spte gfn 0x0 -> pfn 0x100, but pfn 0x100 was freed and reused (gen 1 -> 2)"
    )


def test_stale_spte_reports_the_lowest_gfn_first() -> None:
    m = Model.build(npages=3)
    for gfn in (2, 1, 0):
        fault_in(m, gfn)
    unmap_without_notifier(m, 2)
    unmap_without_notifier(m, 1)
    v = stale_spte(m)
    assert v is not None
    assert v.message.startswith("spte gfn 0x1 -> pfn 0x101, ")


def test_stale_spte_is_silent_while_the_host_still_holds_the_frame() -> None:
    """KVM holds no reference (R6): an spte is stale only once the frame is freed."""
    m = Model.build()
    fault_in(m)
    m.frames.get_page(P0)  # somebody else (e.g. gup) holds the frame
    unmap_without_notifier(m)
    assert stale_spte(m) is None
    assert divergence(m) is not None  # but the spte no longer matches the host


def test_corruption_fires_once_the_guest_touches_a_stale_spte() -> None:
    m = Model.build()
    fault_in(m)
    unmap_without_notifier(m)
    assert corruption(m) is None  # stale, but not touched yet
    m.kvm.guest_access("vcpu0", 0, write=True)
    v = corruption(m)
    assert v == Violation(
        "corruption",
        "guest write of gfn 0x0 went through a stale spte:"
        " pfn 0x100 was freed (refcount 0, on the free list)",
    )


def test_corruption_reports_the_first_bad_access() -> None:
    m = Model.build()
    m.kvm.bad_accesses.extend(["first", "second"])
    assert corruption(m) == Violation("corruption", "first")


def test_divergence_fires_when_the_host_pte_is_gone() -> None:
    m = Model.build()
    fault_in(m)
    m.mm.mmap_lock.acquire("qemu", write=True)
    m.mm.clear_pte(HVA, "qemu")  # reference still held: no stale spte, only divergence
    assert stale_spte(m) is None
    assert divergence(m) == Violation(
        "divergence",
        "spte gfn 0x0 -> pfn 0x100, but host pte of hva 0x40000000 is not present"
        " and no invalidation is in progress",
    )


def test_divergence_fires_when_the_host_pte_maps_another_frame() -> None:
    m = Model.build()
    fault_in(m)
    m.mm.mmap_lock.acquire("qemu", write=True)
    old = m.mm.clear_pte(HVA, "qemu")
    m.mm.set_pte(HVA, m.frames.alloc_page(), True, "qemu")
    assert divergence(m) == Violation(
        "divergence",
        "spte gfn 0x0 -> pfn 0x100, but host pte of hva 0x40000000 is -> pfn 0x101"
        " and no invalidation is in progress",
    )
    m.frames.put_page(old.pfn)
    assert stale_spte(m) is not None


def test_divergence_is_silent_while_an_invalidation_is_in_progress() -> None:
    m = Model.build()
    fault_in(m)
    m.kvm.mmu_lock.acquire("notifier")
    m.kvm.invalidate_begin("notifier")  # begun, but the zap has not happened yet
    m.kvm.mmu_lock.release("notifier")
    m.mm.mmap_lock.acquire("qemu", write=True)
    m.mm.clear_pte(HVA, "qemu")
    assert divergence(m) is None
    m.kvm.mmu_lock.acquire("notifier")
    m.kvm.invalidate_end("notifier")
    assert divergence(m) is not None


def test_install_spte_outside_the_memslot_raises() -> None:
    kvm = locked_kvm()
    with pytest.raises(ValueError, match=r"^gfn 0x5 outside memslot$"):
        kvm.install_spte(5, kvm.frames.alloc_page(), True, "kvm")
