"""Hypothesis properties of the page-table model.

``Protocol`` plays random interleavings of host and KVM operations
that each follow the kernel's rules: host ptes change only inside an
invalidation that has already zapped their sptes (R4), and vcpu faults
snapshot ``seq`` before gup and recheck under ``mmu_lock`` (R1, R2). After
every step it checks the model's own invariants (refcounts, free list,
generations, ``in_progress``) and that no oracle fires. Two broken variants
show that the same checks do catch a missing zap or a missing retry.

Every test is derandomized: the same examples run every time.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import TYPE_CHECKING

import pytest
from hypothesis import Phase, given, note, settings, strategies as st

from mmu import (
    PAGE_SIZE,
    FrameTable,
    LockError,
    Memslot,
    Model,
    RwSem,
    SpinLock,
    corruption,
    divergence,
    stale_spte,
)
from mmu.model import FIRST_PFN, GUEST_RAM_HVA

if TYPE_CHECKING:
    from collections.abc import Callable

SETTINGS = settings(derandomize=True, max_examples=200, deadline=None, database=None)
#: the broken variants only need to be caught, not shrunk
CATCH = settings(SETTINGS, phases=(Phase.explicit, Phase.generate))

NPAGES = 4
NFRAMES = 6
QEMU, VCPU, NOTIFIER = "qemu", "vcpu", "notifier"

#: one operation of the protocol below: a method name and its arguments
Op = tuple[object, ...]


def hva_of(gfn: int) -> int:
    return GUEST_RAM_HVA + gfn * PAGE_SIZE


def overlaps_page(start: int, end: int, hva: int) -> bool:
    """Return whether [start, end) shares a byte with the page at ``hva``."""
    return start < end and start < hva + PAGE_SIZE and hva < end


# ---- the notifier protocol, driven by lists of operations ----


class Protocol:
    """Host remaps, vcpu faults and notifier invalidations, one atomic operation at a time.

    Each public method is one operation, taking the locks it needs and
    releasing them; arguments that pick among what exists are reduced modulo
    its size, and an operation with nothing to act on does nothing. Every
    reference on a frame is accounted for: host ptes, ``held`` (taken by the
    test, like a driver's ``get_page``), ``deferred`` (handed back by
    ``clear_pte`` and not yet put, as in ``tlb_finish_mmu``) and ``faults``
    (gup's reference of a vcpu fault in flight).
    """

    def __init__(self) -> None:
        self.m = Model.build(npages=NPAGES, nframes=NFRAMES)
        self.held: list[int] = []
        self.deferred: list[int] = []
        #: gfn -> (mmu_seq snapshot, pfn, writable) of a fault between gup and map
        self.faults: dict[int, tuple[int, int, bool]] = {}
        #: [start, end) of every invalidation begun and not yet ended
        self.invalidations: list[tuple[int, int]] = []
        self.generations = {pfn: f.generation for pfn, f in self.m.frames.frames.items()}
        self.installed = self.retried = 0  # to show that runs are not vacuous

    # -- frames --

    def alloc(self) -> None:
        if self.m.frames.free_list():
            self.held.append(self.m.frames.alloc_page())

    def get(self, i: int) -> None:
        live = sorted(pfn for pfn, f in self.m.frames.frames.items() if not f.free)
        if live:
            pfn = live[i % len(live)]
            self.m.frames.get_page(pfn)
            self.held.append(pfn)

    def put(self, i: int) -> None:
        if self.held:
            self.m.frames.put_page(self.held.pop(i % len(self.held)))

    def tlb_finish_mmu(self) -> None:
        while self.deferred:
            self.m.frames.put_page(self.deferred.pop(0))

    # -- host ptes --

    def map_pte(self, gfn: int, i: int, writable: bool, write_lock: bool) -> None:
        """Populate an empty pte with a held reference (a host fault: no invalidation needed)."""
        mm = self.m.mm
        if hva_of(gfn) in mm.ptes or not self.held:
            return
        mm.mmap_lock.acquire(QEMU, write=write_lock)
        mm.set_pte(hva_of(gfn), self.held.pop(i % len(self.held)), writable, QEMU)
        mm.mmap_lock.release(QEMU, write=write_lock)

    def clearable(self) -> list[int]:
        """The hvas of present ptes that an invalidation in progress covers."""
        return sorted(
            hva for hva in self.m.mm.ptes if any(overlaps_page(s, e, hva) for s, e in self.invalidations)
        )

    def clear_pte(self, i: int, put_now: bool) -> None:
        """``zap_pte_range`` inside an invalidation; the page is put now or at ``tlb_finish_mmu``."""
        hvas = self.clearable()
        if not hvas:
            return
        mm = self.m.mm
        mm.mmap_lock.acquire(QEMU, write=True)
        pfn = mm.clear_pte(hvas[i % len(hvas)], QEMU).pfn
        mm.mmap_lock.release(QEMU, write=True)
        if put_now:
            self.m.frames.put_page(pfn)
        else:
            self.deferred.append(pfn)

    # -- notifier --

    def invalidate_start(self, gfn: int, npages: int, offset: int) -> None:
        """``invalidate_range_start``: in_progress++, zap and flush, in one mmu_lock section."""
        start = hva_of(gfn) + offset
        end = start + max(npages * PAGE_SIZE, 1)
        kvm = self.m.kvm
        kvm.mmu_lock.acquire(NOTIFIER)
        kvm.invalidate_begin(NOTIFIER)
        self.unmap(start, end)
        kvm.mmu_lock.release(NOTIFIER)
        self.invalidations.append((start, end))

    def unmap(self, start: int, end: int) -> None:
        """``kvm_unmap_gfn_range``, then ``kvm_flush_remote_tlbs`` if it zapped anything."""
        if self.m.kvm.unmap_hva_range(start, end, NOTIFIER):
            self.m.kvm.flush_remote_tlbs(NOTIFIER)

    def invalidate_end(self, i: int) -> None:
        if not self.invalidations:
            return
        kvm = self.m.kvm
        kvm.mmu_lock.acquire(NOTIFIER)
        kvm.invalidate_end(NOTIFIER)
        kvm.mmu_lock.release(NOTIFIER)
        self.invalidations.pop(i % len(self.invalidations))

    def zap(self, gfn: int, npages: int) -> None:
        """A zap outside any invalidation (aging, a memslot flush): always safe."""
        kvm = self.m.kvm
        kvm.mmu_lock.acquire(NOTIFIER)
        self.unmap(hva_of(gfn), hva_of(gfn + npages))
        kvm.mmu_lock.release(NOTIFIER)

    # -- vcpu --

    def fault_gup(self, gfn: int) -> None:
        """F2-F3: snapshot seq, then gup the page with a reference."""
        if gfn in self.faults:
            return
        mmu_seq = self.m.kvm.seq
        mm = self.m.mm
        mm.mmap_lock.acquire(VCPU, write=False)
        pte = mm.follow_pte(hva_of(gfn), VCPU)
        if pte is not None:
            self.m.frames.get_page(pte.pfn)
            self.faults[gfn] = (mmu_seq, pte.pfn, pte.writable)
        mm.mmap_lock.release(VCPU, write=False)

    def map_spte(self, gfn: int, mmu_seq: int, pfn: int, writable: bool) -> None:
        """F5-F7: recheck under mmu_lock and install unless stale."""
        kvm = self.m.kvm
        if kvm.retry(mmu_seq, VCPU):
            self.retried += 1
        else:
            stale = kvm.install_spte(gfn, pfn, writable, VCPU)
            if stale:  # a present leaf changed: mmu_set_spte's flush
                kvm.flush_remote_tlbs_range(stale, VCPU)
            self.installed += 1

    def fault_map(self, i: int) -> None:
        """F4-F8: map the spte (or retry), then drop gup's reference."""
        if not self.faults:
            return
        gfn = sorted(self.faults)[i % len(self.faults)]
        mmu_seq, pfn, writable = self.faults.pop(gfn)
        kvm = self.m.kvm
        kvm.mmu_lock.acquire(VCPU)
        self.map_spte(gfn, mmu_seq, pfn, writable)
        kvm.mmu_lock.release(VCPU)
        self.m.frames.put_page(pfn)

    def guest_access(self, gfn: int, write: bool, vcpu: int) -> None:
        """A guest access of one of two vcpus: through its TLB, or a walk that fills it."""
        self.m.kvm.guest_access(f"vcpu{vcpu}", gfn, write=write)

    # -- invariants --

    def check(self) -> None:
        """Assert every invariant of the model and that no oracle fires."""
        frames, mm, kvm = self.m.frames, self.m.mm, self.m.kvm
        refs = Counter(pte.pfn for pte in mm.ptes.values())
        refs.update(self.held)
        refs.update(self.deferred)
        refs.update(pfn for _, pfn, _ in self.faults.values())
        for pfn, f in frames.frames.items():
            assert f.refcount >= 0, f"pfn {pfn:#x} has refcount {f.refcount}"
            assert f.refcount == refs[pfn], f"pfn {pfn:#x}: refcount {f.refcount}, {refs[pfn]} references"
            assert f.free == (f.refcount == 0), f"pfn {pfn:#x}: free={f.free} with refcount {f.refcount}"
            assert f.generation >= self.generations[pfn], f"pfn {pfn:#x}: generation went down"
            self.generations[pfn] = f.generation
        for hva, pte in mm.ptes.items():
            assert not frames[pte.pfn].free, f"hva {hva:#x} maps free pfn {pte.pfn:#x}"
        free_list = frames.free_list()
        assert len(free_list) == len(set(free_list)), f"duplicates in the free list {free_list}"
        assert set(free_list) == {pfn for pfn, f in frames.frames.items() if f.free}
        assert kvm.in_progress >= 0
        assert kvm.in_progress == len(self.invalidations)
        assert kvm.mmu_lock.owner is None
        assert (mm.mmap_lock.writer, mm.mmap_lock.readers) == (None, [])
        oracles = [stale_spte, corruption] + ([divergence] if kvm.in_progress == 0 else [])
        for oracle in oracles:
            if (v := oracle(self.m)) is not None:
                raise AssertionError(f"{v.oracle}: {v.message}")

    def run(self, ops: list[Op]) -> None:
        self.check()
        for name, *args in ops:
            getattr(self, name)(*args)
            self.check()


def digits(x: int, *radices: int) -> tuple[int, ...]:
    """Split ``x`` into mixed-radix digits, least significant first."""
    out = []
    for r in radices:
        x, d = divmod(x, r)
        out.append(d)
    return tuple(out)


#: operation -> (weight, decoder of one integer into its arguments)
OPS: dict[str, tuple[int, Callable[[int], tuple[object, ...]]]] = {
    "alloc": (1, lambda x: ()),
    "get": (1, lambda x: digits(x, 8)),
    "put": (1, lambda x: digits(x, 8)),
    "tlb_finish_mmu": (1, lambda x: ()),
    "map_pte": (2, lambda x: (*digits(x, NPAGES, 8), bool(x & 64), bool(x & 128))),
    "clear_pte": (2, lambda x: (x % 8, bool(x & 8))),
    # gfn in [-1, NPAGES], 0-3 pages, starting on or just off a page boundary
    "invalidate_start": (
        2,
        lambda x: (x % (NPAGES + 2) - 1, x // 8 % 4, (0, 1, PAGE_SIZE - 1)[x // 32 % 3]),
    ),
    "invalidate_end": (2, lambda x: digits(x, 8)),
    "zap": (1, lambda x: (x % NPAGES, 1 + x // 8 % NPAGES)),
    "fault_gup": (3, lambda x: digits(x, NPAGES)),
    "fault_map": (3, lambda x: digits(x, 8)),
    "guest_access": (2, lambda x: (x % NPAGES, bool(x & 8), x // 16 % 2)),
}
WEIGHTED = tuple(name for name, (weight, _) in OPS.items() for _ in range(weight))


def decode(x: int) -> Op:
    """One operation from one integer (cheaper for Hypothesis to draw than a tuple)."""
    name = WEIGHTED[x % len(WEIGHTED)]
    return (name, *OPS[name][1](x // len(WEIGHTED)))


protocol_ops = st.lists(st.integers(0, 2**16 - 1), min_size=25, max_size=60).map(
    lambda xs: [decode(x) for x in xs]
)


def run_noted(protocol: type[Protocol], ops: list[Op]) -> Protocol:
    note(f"operations: {ops}")
    p = protocol()
    p.run(ops)
    return p


@SETTINGS
@given(ops=protocol_ops)
def test_the_notifier_protocol_keeps_the_model_sound(ops: list[Op]) -> None:
    run_noted(Protocol, ops)


def test_the_protocol_reaches_the_remap_race_and_retries() -> None:
    """The race_remap interleaving, played with the protocol's own operations."""
    p = Protocol()
    p.run(
        [
            ("fault_gup", 0),  # gup pfn 0x100 with seq 0
            ("invalidate_start", 0, 0, 0),
            ("clear_pte", 0, True),  # gup's reference keeps the frame
            ("invalidate_end", 0),
            ("fault_map", 0),  # seq moved: retry; the put frees pfn 0x100
        ]
    )
    assert (p.installed, p.retried) == (0, 1)
    assert p.m.frames[FIRST_PFN].free
    p.run([("alloc",), ("map_pte", 0, 0, True, False), ("fault_gup", 0), ("fault_map", 0)])
    assert (p.installed, p.retried) == (1, 1)
    assert p.m.kvm.sptes[0].pfn == p.m.mm.ptes[GUEST_RAM_HVA].pfn == FIRST_PFN + NPAGES


# ---- broken variants: the same checks must catch them ----


class ClearWithoutZap(Protocol):
    """The host clears ptes and puts the page with no invalidation (no MMU notifier at all)."""

    def clear_pte(self, i: int, put_now: bool) -> None:
        hvas = sorted(self.m.mm.ptes)
        if hvas:
            mm = self.m.mm
            mm.mmap_lock.acquire(QEMU, write=True)
            self.m.frames.put_page(mm.clear_pte(hvas[i % len(hvas)], QEMU).pfn)
            mm.mmap_lock.release(QEMU, write=True)


class ZapWithoutFlush(Protocol):
    """Invalidations zap the sptes but flush no TLB: a vcpu keeps the old translation."""

    def unmap(self, start: int, end: int) -> None:
        self.m.kvm.unmap_hva_range(start, end, NOTIFIER)


class FaultWithoutRetry(Protocol):
    """Faults install what gup returned without the seq/in_progress recheck (``no_retry``)."""

    def map_spte(self, gfn: int, mmu_seq: int, pfn: int, writable: bool) -> None:
        self.m.kvm.install_spte(gfn, pfn, writable, VCPU)
        self.installed += 1


STALE_0x100 = (
    r"^stale_spte: spte gfn 0x0 -> pfn 0x100, but pfn 0x100 was freed \(refcount 0, on the free list\)$"
)


def test_a_clear_without_zap_is_caught() -> None:
    p = ClearWithoutZap()
    p.run([("fault_gup", 0), ("fault_map", 0)])
    with pytest.raises(AssertionError, match=STALE_0x100):
        p.run([("clear_pte", 0, True)])


def test_a_fault_without_retry_is_caught() -> None:
    p = FaultWithoutRetry()
    p.run([("fault_gup", 0), ("invalidate_start", 0, 0, 0), ("clear_pte", 0, True), ("invalidate_end", 0)])
    with pytest.raises(AssertionError, match=STALE_0x100):
        p.run([("fault_map", 0)])


#: vcpu1 caches gfn 0, then an invalidation zaps it
CACHED_THEN_ZAPPED: list[Op] = [
    ("fault_gup", 0), ("fault_map", 0), ("guest_access", 0, True, 1), ("invalidate_start", 0, 0, 0)
]


def test_a_zap_without_flush_is_caught() -> None:
    p = ZapWithoutFlush()
    p.run(CACHED_THEN_ZAPPED)
    assert not p.m.kvm.sptes and p.m.kvm.tlbs.entries["vcpu1"], "zapped, still cached"
    with pytest.raises(AssertionError, match=r"^stale_spte: vcpu1 TLB entry gfn 0x0 -> pfn 0x100 \(its leaf"):
        p.run([("clear_pte", 0, True)])


def test_a_zap_with_its_flush_lets_the_host_free_the_page() -> None:
    p = Protocol()
    p.run([*CACHED_THEN_ZAPPED, ("clear_pte", 0, True)])
    assert p.m.frames[FIRST_PFN].free and p.m.kvm.tlbs.entries["vcpu1"] == {}


@pytest.mark.parametrize(
    ("protocol", "what", "examples"),
    [
        (ClearWithoutZap, "spte", 200),
        (FaultWithoutRetry, "spte", 200),
        # needs a fault, an access, then a zap and a host change of that page: rarer
        (ZapWithoutFlush, r"vcpu\d TLB entry", 400),
    ],
)
def test_random_operations_find_the_broken_protocols(protocol: type[Protocol], what: str, examples: int) -> None:
    @settings(CATCH, max_examples=examples)
    @given(ops=protocol_ops)
    def hunt(ops: list[Op]) -> None:
        run_noted(protocol, ops)

    with pytest.raises(AssertionError, match=rf"^(stale_spte|divergence): {what} gfn "):
        hunt()


# ---- frames against a reference model ----

FRAME_OPS = ("alloc", "get", "put", "alloc", "get", "put", "get_free", "put_free")
frame_ops = st.lists(st.integers(0, 2**12), max_size=60).map(
    lambda xs: [(FRAME_OPS[x % len(FRAME_OPS)], x // len(FRAME_OPS)) for x in xs]
)


@SETTINGS
@given(ops=frame_ops, nframes=st.integers(1, 6))
def test_frame_table_matches_a_reference_model(ops: list[tuple[str, int]], nframes: int) -> None:
    """alloc/get/put against a FIFO free list, refcounts and generations kept by hand."""
    frames = FrameTable.with_frames(FIRST_PFN, nframes, [])
    free = deque(range(FIRST_PFN, FIRST_PFN + nframes))
    ref = dict.fromkeys(free, 0)
    gen = dict.fromkeys(free, 0)
    for op, i in ops:
        live = sorted(pfn for pfn, n in ref.items() if n)
        if op == "alloc" and free:
            pfn = free.popleft()
            assert frames.alloc_page() == pfn
            ref[pfn], gen[pfn] = 1, gen[pfn] + 1
        elif op == "alloc":
            with pytest.raises(MemoryError):
                frames.alloc_page()
        elif op == "get" and live:
            pfn = live[i % len(live)]
            frames.get_page(pfn)
            ref[pfn] += 1
        elif op == "put" and live:
            pfn = live[i % len(live)]
            frames.put_page(pfn)
            ref[pfn] -= 1
            if ref[pfn] == 0:
                free.append(pfn)
        elif op in ("get_free", "put_free") and free:  # refused, and nothing changes
            pfn = sorted(free)[i % len(free)]
            with pytest.raises(AssertionError, match=r"^(get|put)_page on (free )?pfn "):
                (frames.get_page if op == "get_free" else frames.put_page)(pfn)
        assert frames.free_list() == tuple(free)
        for pfn in ref:
            f = frames[pfn]
            assert (f.refcount, f.generation, f.free) == (ref[pfn], gen[pfn], ref[pfn] == 0)
            assert frames.is_current(pfn, gen[pfn]) == (ref[pfn] > 0)


# ---- Memslot.gfns_in against brute force ----


@SETTINGS
@given(
    base_gfn=st.integers(0, 64),
    npages=st.integers(1, 8),
    page=st.integers(0, 16),
    start=st.integers(-3 * PAGE_SIZE, 12 * PAGE_SIZE),
    length=st.integers(-PAGE_SIZE, 12 * PAGE_SIZE),
)
def test_gfns_in_is_every_gfn_whose_page_overlaps_the_range(
    base_gfn: int, npages: int, page: int, start: int, length: int
) -> None:
    addr = page * PAGE_SIZE
    slot = Memslot(base_gfn, npages, addr)
    start += addr
    expected = [
        base_gfn + i for i in range(npages) if overlaps_page(start, start + length, addr + i * PAGE_SIZE)
    ]
    assert list(slot.gfns_in(start, start + length)) == expected
    for gfn in expected:
        assert overlaps_page(start, start + length, slot.gfn_to_hva(gfn))


# ---- locks against a reference model ----

lock_ops = st.lists(st.integers(0, 11), max_size=40).map(
    lambda xs: [(("acquire", "release")[x % 2], "abc"[x // 2 % 3], x >= 6) for x in xs]
)


@SETTINGS
@given(ops=lock_ops)
def test_rwsem_matches_a_reference_model(ops: list[tuple[str, str, bool]]) -> None:
    sem = RwSem("mmap_lock")
    writer: str | None = None
    readers: Counter[str] = Counter()
    for op, who, write in ops:
        if op == "acquire":
            ok = writer is None and not (write and +readers)
            assert sem.can_acquire(who, write=write) == ok
        else:
            ok = writer == who if write else readers[who] > 0
        if not ok:
            with pytest.raises(LockError):
                (sem.acquire if op == "acquire" else sem.release)(who, write=write)
        elif op == "acquire":
            sem.acquire(who, write=write)
            if write:
                writer = who
            else:
                readers[who] += 1
        else:
            sem.release(who, write=write)
            if write:
                writer = None
            else:
                readers[who] -= 1
        assert sem.writer == writer
        assert Counter(sem.readers) == +readers
        assert not (sem.writer is not None and sem.readers), "a writer and readers at once"
        for x in "abc":
            assert sem.held_by(x, write=True) == (writer == x)
            assert sem.held_by(x, write=False) == (readers[x] > 0)


@SETTINGS
@given(ops=lock_ops)
def test_spinlock_matches_a_reference_model(ops: list[tuple[str, str, bool]]) -> None:
    lock = SpinLock("mmu_lock")
    owner: str | None = None
    for op, who, _ in ops:
        ok = owner is None if op == "acquire" else owner == who
        if op == "acquire":
            assert lock.can_acquire(who) == ok
        if not ok:
            with pytest.raises(LockError):
                (lock.acquire if op == "acquire" else lock.release)(who)
        else:
            (lock.acquire if op == "acquire" else lock.release)(who)
            owner = who if op == "acquire" else None
        assert lock.owner == owner
        assert all(lock.held_by(x) == (owner == x) for x in "abc")
