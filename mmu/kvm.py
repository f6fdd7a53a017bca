"""KVM's side: one memslot, the secondary page table, notifier bookkeeping.

Field names follow ``struct kvm`` (``mmu_invalidate_seq`` is ``seq``,
``mmu_invalidate_in_progress`` is ``in_progress``). Both are written only
under ``mmu_lock`` (docs/model.md 1.1), and so are sptes: the methods here
assert it (POWER7's HPT family writes its leaves under the HPTE and rmap lock
bits instead, through ``mmu.hpt``). Guest accesses need no lock: they are
the hardware, using its TLB or walking the secondary page table
(``mmu/tlb.py``); only KVM's flushes drop what a TLB cached.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .constants import PAGE_SIZE
from .dirtylog import DirtyLog
from .footprint import Footprint
from .frames import FrameTable
from .locks import LockError, SpinLock
from .memslots import Memslots, Slot, hva_range_to_gfns
from .tlb import TlbEntry, Tlbs
from .weak import WeakMemory

#: the fields a lockless check reads, weak with ``--memory weak`` (docs/model.md section 6)
WEAK_FIELDS = ("seq", "in_progress")


@attrs.frozen
class Memslot:
    """A ``kvm_memory_slot``: guest frames [base_gfn, base_gfn + npages) at ``userspace_addr``."""

    base_gfn: int
    npages: int = attrs.field(validator=attrs.validators.gt(0))
    userspace_addr: int

    def gfn_to_hva(self, gfn: int) -> int:
        if not self.base_gfn <= gfn < self.base_gfn + self.npages:
            raise ValueError(f"gfn {gfn:#x} outside memslot")
        return self.userspace_addr + (gfn - self.base_gfn) * PAGE_SIZE

    def gfns_in(self, start: int, end: int) -> range:
        """Return the gfns whose hva lies in [start, end) (``hva_to_gfn_memslot``)."""
        return hva_range_to_gfns(self.base_gfn, self.npages, self.userspace_addr, start, end)


@attrs.frozen
class Spte:
    """A present secondary pte, with the generation of the frame it was made for."""

    pfn: int
    writable: bool
    generation: int
    #: the size of the page the leaf maps (a VRMA HPTE's is the VRMA page size)
    page_size: int = PAGE_SIZE
    #: a huge leaf's frame generations after the first, one per base page it covers
    tail_generations: tuple[int, ...] = ()
    #: the serial of the memslot version it was installed under (``mmu/memslots.py``);
    #: None in a world of one memslot
    slot: int | None = None


@attrs.define(eq=False)
class Kvm:
    """A ``struct kvm`` reduced to what the coherence protocol touches."""

    frames: FrameTable
    log: list[str]
    memslot: Memslot
    fp: Footprint = attrs.field(factory=Footprint)
    mmu_lock: SpinLock = attrs.field(
        default=attrs.Factory(lambda self: SpinLock("mmu_lock", fp=self.fp), takes_self=True)
    )
    sptes: dict[int, Spte] = attrs.field(factory=dict)
    seq: int = 0  # mmu_invalidate_seq
    in_progress: int = 0  # mmu_invalidate_in_progress; invariant: >= 0
    #: gfn -> pfn translated once at registration (setup_time design's slot_phys[])
    slot_phys: dict[int, int] = attrs.field(factory=dict)
    #: gfn -> pfn KVM holds a reference on for as long as the VM lives (PPC970's
    #: ``slot_phys[]`` with ``KVMPPC_GOT_PAGE``, v3.1's ``ram_pginfo``); R6 says a
    #: notifier design holds none
    pinned: dict[int, int] = attrs.field(factory=dict)
    #: -EFAULTs KVM_RUN returned, each with whether the host allowed the access then
    efaults: list[tuple[int, bool, bool]] = attrs.field(factory=list)
    #: guest accesses that went through an spte whose frame is no longer the one mapped
    bad_accesses: list[str] = attrs.field(factory=list)
    #: guest writes that landed in a KSM page (through a writable spte that survived
    #: the merge): every mapping sharing the page sees them
    ksm_writes: list[str] = attrs.field(factory=list)
    dirty_log: DirtyLog = attrs.field(
        default=attrs.Factory(lambda self: DirtyLog(self.log, self.fp), takes_self=True)
    )
    #: every vcpu's TLB: the translations guest accesses cached from ``sptes``
    tlbs: Tlbs = attrs.field(default=attrs.Factory(lambda self: Tlbs(self.log, self.fp), takes_self=True))
    #: the hardware's changed bit of each leaf (POWER's ``HPTE_R_C``), set by a guest store
    #: through a translation that has not recorded it; kept while dirty logging is on,
    #: the only time anything reads it (POWER7's harvest, ``mmu.hpt``)
    changed: set[int] = attrs.field(factory=set)
    #: the VRMA page size told to the hardware (``vrma_slb_v``, LPCR VRMASD) by
    #: ``kvmppc_hv_setup_htab_rma`` at first vcpu run; None until then
    vrma_psize: int | None = None
    #: with ``--memory weak``, where ``seq`` and ``in_progress`` are loaded and stored
    #: (mmu/weak.py); None: sequentially consistent, the attributes themselves
    memory: WeakMemory | None = None
    #: several memslots under SRCU (``mmu/memslots.py``); None: ``memslot`` is the only one
    memslots: Memslots | None = None
    #: the words a design adds to ``struct kvm`` (``Design.words``), by name; those it
    #: marks weak live in ``memory`` with ``--memory weak`` (docs/model.md 6.7)
    words: dict[str, int] = attrs.field(factory=dict)
    #: ``mmu_invalidate_range_start``/``_end`` (gfns), accumulated while ``in_progress``
    #: is non-zero; None is ``INVALID_GPA``. Used by ``invalidate_begin_ranged``
    range_start: int | None = None
    range_end: int | None = None
    #: with ``--memory weak`` and POWER7's HPTE dwords weak (``mmu.hpt``), the hardware's
    #: walk of the HPT (``Hpt.walk``); None: the walk of ``sptes``
    hpte_walk: Callable[[str, int], TlbEntry | None] | None = None

    def _assert_locked(self, who: str) -> None:
        if not self.mmu_lock.held_by(who):
            raise LockError(f"{who} must hold mmu_lock")

    def invalidate_begin(self, who: str) -> None:
        """``kvm_mmu_invalidate_begin``: in_progress++."""
        self._assert_locked(who)
        if self.memory is not None:
            self._weak_add("in_progress", 1, who)
            return
        self.fp.write(("kvm", "in_progress"))
        self.in_progress += 1
        self.log.append(f"in_progress {self.in_progress - 1}->{self.in_progress}")

    def invalidate_end(self, who: str) -> None:
        """``kvm_mmu_invalidate_end``: seq++; smp_wmb(); in_progress-- (R3)."""
        self._assert_locked(who)
        if self.in_progress <= 0:
            raise AssertionError("invalidate_range_end without start (in_progress < 0)")
        self.inc_seq(who)
        self.smp_wmb(who)
        self.dec_in_progress(who)

    # ---- range-based in_progress (virt/kvm/kvm_main.c, v6.8) ----

    def invalidate_begin_ranged(self, who: str) -> None:
        """``kvm_mmu_invalidate_begin`` (v6.8): in_progress++, and when it leaves zero the
        accumulated range starts afresh (``mmu_invalidate_range_start = INVALID_GPA``)."""
        self.invalidate_begin(who)
        if self.in_progress == 1:
            self.invalidate_range_reset(who)

    def invalidate_range_reset(self, who: str) -> None:
        """``mmu_invalidate_range_start = mmu_invalidate_range_end = INVALID_GPA``."""
        self._assert_locked(who)
        self.fp.write(("kvm", "range"))
        self.range_start = self.range_end = None
        self.log.append("mmu_invalidate_range = INVALID_GPA")

    def invalidate_range_add(self, start: int, end: int, who: str) -> None:
        """``kvm_mmu_invalidate_range_add`` (v6.8): widen the range in progress to cover
        gfns [start, end), under mmu_lock with in_progress raised."""
        self._assert_locked(who)
        if self.in_progress <= 0:
            raise AssertionError("kvm_mmu_invalidate_range_add without invalidate_begin")
        self.fp.write(("kvm", "range"))
        if self.range_start is None or self.range_end is None:
            self.range_start, self.range_end = start, end
        else:
            self.range_start, self.range_end = min(self.range_start, start), max(self.range_end, end)
        self.log.append(f"mmu_invalidate_range = gfn {self.range_start:#x}-{self.range_end:#x}")

    def retry_gfn(self, mmu_seq: int, gfn: int, who: str) -> bool:
        """``mmu_invalidate_retry_gfn`` (include/linux/kvm_host.h, v6.8; before it
        ``mmu_invalidate_retry_hva``, on hvas): retry if an invalidation in progress
        covers ``gfn`` (or has no range yet: a KVM bug, WARN and retry), or seq moved."""
        self._assert_locked(who)
        self.fp.read(("kvm", "seq"))
        self.fp.read(("kvm", "in_progress"))
        self.fp.read(("kvm", "range"))
        covered = self.in_progress != 0 and (
            self.range_start is None or self.range_end is None or self.range_start <= gfn < self.range_end
        )
        stale = covered or self.seq != mmu_seq
        where = (
            "" if not self.in_progress or self.range_start is None or self.range_end is None
            else f" over gfn {self.range_start:#x}-{self.range_end:#x}"
        )
        self.log.append(
            f"mmu_invalidate_retry_gfn gfn {gfn:#x}: in_progress {self.in_progress}{where},"
            f" seq {self.seq} vs {mmu_seq}" + (" -> retry" if stale else " -> ok")
        )
        return stale

    def inc_seq(self, who: str) -> None:
        """``kvm->mmu_invalidate_seq++``, under mmu_lock."""
        self._assert_locked(who)
        if self.memory is not None:
            self._weak_add("seq", 1, who)
            return
        self.fp.write(("kvm", "seq"))
        self.seq += 1
        self.log.append(f"seq {self.seq - 1}->{self.seq}")

    def dec_in_progress(self, who: str) -> None:
        """``kvm->mmu_invalidate_in_progress--``, under mmu_lock; below zero is a bug."""
        self._assert_locked(who)
        if self.memory is not None:
            self._weak_add("in_progress", -1, who)
            return
        if self.in_progress <= 0:
            raise AssertionError("invalidate_range_end without start (in_progress < 0)")
        self.fp.write(("kvm", "in_progress"))
        self.in_progress -= 1
        self.log.append(f"in_progress {self.in_progress + 1}->{self.in_progress}")

    def check_in_progress(self, who: str) -> bool:
        """``if (kvm->mmu_invalidate_in_progress)``, under mmu_lock: is an invalidation running?"""
        self._assert_locked(who)
        in_progress = self._load("in_progress", who)
        self.log.append(f"in_progress {in_progress}" + (" -> retry" if in_progress else ""))
        return in_progress != 0

    def check_seq(self, mmu_seq: int, who: str) -> bool:
        """``if (kvm->mmu_invalidate_seq != mmu_seq)``, under mmu_lock: did one end since the snapshot?"""
        self._assert_locked(who)
        seq = self._load("seq", who)
        moved = seq != mmu_seq
        self.log.append(f"seq {seq} vs {mmu_seq}" + (" -> retry" if moved else ""))
        return moved

    def unmap_hva_range(self, start: int, end: int, who: str) -> int:
        """``kvm_unmap_gfn_range`` in one go: zap every spte for [start, end); return how many."""
        zapped = self.leaves_in(start, end, who)
        for gfn in zapped:
            self.zap_leaf(gfn, who)
        return len(zapped)

    def leaves_in(self, start: int, end: int, who: str) -> list[int]:
        """The gfns of the leaves mapping any of [start, end), in order; a huge leaf
        counts if any page under it is in range (x86 zaps the 2M spte whole).
        Says so when there is none."""
        return self.leaves_in_gfns(self.memslot.gfns_in(start, end), who)

    def leaves_in_gfns(self, in_range: range, who: str) -> list[int]:
        """The gfns of the leaves mapping any of the gfns ``in_range``, in order (``leaves_in``)."""
        self._assert_locked(who)
        for gfn in in_range:  # absent ones too: a later install there depends on this zap
            self.fp.write(("spte", gfn))
        leaves = [gfn for gfn in sorted(self.sptes) if set(self.covered(gfn)) & set(in_range)]
        if not leaves:
            self.log.append("no spte in range")
        return leaves

    def zap_leaf(self, gfn: int, who: str) -> None:
        """Drop the leaf at ``gfn`` (``tdp_mmu_zap_leafs``/``kvm_zap_rmap`` for one leaf)."""
        self._assert_locked(who)
        for g in self.covered(gfn):  # a huge leaf goes whole: an access to any page of it depends on this
            self.fp.write(("spte", g))
        spte = self.sptes.pop(gfn)
        self.log.append(f"zap spte gfn {gfn:#x} -> pfn {spte.pfn:#x}")

    def repoint_leaf(self, gfn: int, pfn: int, who: str, *, writable: bool = False) -> None:
        """Point the base leaf at ``gfn`` to ``pfn``, read-only unless ``writable``, under
        mmu_lock: x86 ``kvm_set_pte_rmapp`` for one spte (new pfn, ``PT_WRITABLE_MASK``
        and ``SPTE_HOST_WRITEABLE`` cleared), from ``->change_pte`` on a 2011 host."""
        self._assert_locked(who)
        old = self.sptes[gfn]
        if old.page_size != PAGE_SIZE:
            raise AssertionError(f"repoint of the huge leaf at gfn {gfn:#x}: zap it")
        self.fp.write(("spte", gfn))
        self.fp.read(("frame", pfn))
        self.sptes[gfn] = Spte(pfn, writable, self.frames[pfn].generation)
        was = f"pfn {old.pfn:#x}{' W' if old.writable else ' RO'}"
        self.log.append(f"spte gfn {gfn:#x} -> pfn {pfn:#x}{' W' if writable else ' RO'} (was {was})")

    def covered(self, gfn: int, page_size: int | None = None) -> range:
        """The gfns of the memslot the leaf at ``gfn`` maps (one, unless it is huge);
        ``page_size`` is a leaf's about to be made, else the present leaf's."""
        if page_size is None:
            page_size = self.sptes[gfn].page_size if gfn in self.sptes else PAGE_SIZE
        end = self.memslot.base_gfn + self.memslot.npages
        if self.memslots is not None:  # the end of the slot the leaf was installed under
            spte = self.sptes.get(gfn)
            if spte is not None and spte.slot is not None:
                slot: Slot | None = self.memslots.version(spte.slot)
            else:
                slot = self.memslots.find(gfn)
            end = gfn + 1 if slot is None else slot.base_gfn + slot.npages
        return range(gfn, min(gfn + page_size // PAGE_SIZE, end))

    def leaf_hva(self, gfn: int, slot: int | None) -> int:
        """The hva a leaf (or TLB entry) of ``gfn`` installed under memslot version ``slot``
        translates: judged against the slot it was made for, not what ``gfn`` means now."""
        if slot is None or self.memslots is None:
            return self.memslot.gfn_to_hva(gfn)
        return self.memslots.version(slot).gfn_to_hva(gfn)

    def retry(self, mmu_seq: int, who: str) -> bool:
        """``mmu_invalidate_retry``: must the fault retry? (R2: under mmu_lock)."""
        self._assert_locked(who)
        seq = self._load("seq", who)
        in_progress = self._load("in_progress", who)
        stale = in_progress != 0 or seq != mmu_seq
        self.log.append(
            f"mmu_invalidate_retry: in_progress {in_progress}, seq {seq} vs {mmu_seq}"
            + (" -> retry" if stale else " -> ok")
        )
        return stale

    def install_spte(
        self, gfn: int, pfn: int, writable: bool, who: str, *, page_size: int = PAGE_SIZE,
        slot: Slot | None = None,
    ) -> range:
        """Map ``gfn`` to ``pfn`` in the secondary page table, under mmu_lock; return the
        gfns whose cached translations the change made stale (empty: no flush needed).

        Making a leaf present needs no flush: no TLB can hold what was not there.
        Changing a present one does, as x86 ``mmu_set_spte`` flushes
        (``kvm_flush_remote_tlbs_gfn``) when it replaces a leaf with another pfn,
        makes a writable leaf read-only (``mmu_spte_update``), or puts a huge leaf
        over the table of base leaves under it, or a base leaf in a huge one's place
        (the TDP MMU likewise); a read-only leaf made writable needs none (a write
        through the old entry faults, and the fault drops it). The caller flushes.

        A writable leaf made while dirty logging is on marks its page dirty
        (F7: x86 ``make_spte``, PPC ``kvmppc_update_dirty_map``), so a write
        through it is always in the bitmap.

        With several memslots, ``slot`` is the one the fault found (the leaf
        records it, ``Spte.slot``).
        """
        self._assert_locked(who)
        (slot or self.memslot).gfn_to_hva(gfn)  # raises for a gfn outside the memslot
        # no check that the frame is live: installing a stale pfn is the bug oracles catch
        self.fp.write(("spte", gfn))
        self.fp.read(("frame", pfn))
        old = self.sptes.get(gfn)
        changed = old is not None and (
            old.pfn != pfn or (old.writable and not writable) or old.page_size != page_size
        )
        tails = self.covered(gfn, page_size)[1:]  # a huge leaf maps these too
        for g in tails:
            self.fp.write(("spte", g))
            self.fp.read(("frame", pfn + g - gfn))
            if self.sptes.pop(g, None) is not None:  # it replaces the table of base leaves
                self.log.append(f"spte gfn {g:#x} replaced by the huge leaf")
                changed = True
        span = max(page_size, old.page_size) if old is not None else page_size
        stale = self.covered(gfn, span) if changed else range(0)
        gens = tuple(self.frames[pfn + g - gfn].generation for g in tails)
        serial = None if slot is None else slot.serial
        self.sptes[gfn] = Spte(pfn, writable, self.frames[pfn].generation, page_size, gens, serial)
        size = "" if page_size == PAGE_SIZE else f" {self.frames.size_name(page_size)} page"
        self.log.append(f"spte gfn {gfn:#x} -> pfn {pfn:#x}{' W' if writable else ' RO'}{size}")
        if writable and self.dirty_log.logging():
            self.dirty_log.mark_page_dirty(gfn)
        return stale

    # ---- TLB flushes ----

    def flush_remote_tlbs(self, who: str) -> None:
        """``kvm_flush_remote_tlbs``: ``kvm_make_all_cpus_request(kvm, KVM_REQ_TLB_FLUSH)``,
        waiting for every vcpu in guest mode to acknowledge; every cached translation
        of every vcpu is gone when it returns. Needs no lock (the notifier calls it
        under mmu_lock, the dirty-log ioctls after dropping it)."""
        slot = self.memslot
        gfns = range(slot.base_gfn, slot.base_gfn + slot.npages)
        self.tlbs.flush("kvm_flush_remote_tlbs", gfns if self.memslots is None else self.memslots.all_gfns())

    def flush_remote_tlbs_range(self, gfns: range, who: str) -> None:
        """``kvm_flush_remote_tlbs_gfn``/``_range`` after the fault path changed a present
        leaf (``mmu_set_spte``), under mmu_lock as there. x86 without a ranged
        hypervisor flush falls back to a full flush; the model drops only ``gfns``,
        the translations the change made stale."""
        self._assert_locked(who)
        self.tlbs.flush(f"kvm_flush_remote_tlbs_gfn gfn {gfns.start:#x}+{len(gfns)}", gfns)

    def flush_remote_tlbs_memslot(self, who: str) -> None:
        """``kvm_flush_remote_tlbs_memslot`` after dirty logging write-protected the slot,
        outside mmu_lock: ``flush_remote_tlbs`` over the memslot. The kernel asserts
        ``slots_lock``, which the model folds away (docs/model.md 1.4)."""
        slot = self.memslot
        self.tlbs.flush("kvm_flush_remote_tlbs_memslot", range(slot.base_gfn, slot.base_gfn + slot.npages))

    # ---- dirty logging (live migration) ----

    def enable_dirty_logging(self, who: str) -> None:
        """``kvm_mmu_slot_apply_flags``: the slot now logs; under mmu_lock the caller
        then write-protects every leaf of it and flushes."""
        self._assert_locked(who)
        self.dirty_log.enable()

    def get_dirty_log(self, who: str) -> tuple[int, ...]:
        """``kvm_get_dirty_log_protect``: take and clear the bitmap, under mmu_lock;
        the caller write-protects each reported gfn in the same critical section."""
        self._assert_locked(who)
        if not self.dirty_log.logging():
            raise AssertionError("KVM_GET_DIRTY_LOG on a slot without KVM_MEM_LOG_DIRTY_PAGES")
        slot = self.memslot
        return self.dirty_log.harvest(slot.base_gfn, slot.base_gfn + slot.npages)

    def zap_gfn(self, gfn: int, who: str) -> bool:
        """Make the leaf of ``gfn`` absent (PPC ``kvmppc_unmap_hpte``: HPTE_V_ABSENT; its
        ``tlbie`` is the caller's flush); return whether there was one. The next access
        that misses in its TLB faults."""
        self._assert_locked(who)
        self.fp.write(("spte", gfn))
        spte = self.sptes.pop(gfn, None)
        if spte is not None:
            self.log.append(f"zap spte gfn {gfn:#x} -> pfn {spte.pfn:#x}")
        return spte is not None

    def wrprotect_gfn(self, gfn: int, who: str) -> bool:
        """Clear the write bit of the leaf of ``gfn`` (x86 ``kvm_mmu_write_protect_pt_masked``
        -> ``spte_write_protect``); return whether it was writable. The leaf stays: the
        next guest write faults and the fault makes it writable again. A writable
        TLB entry may outlive this until the caller's flush."""
        self._assert_locked(who)
        self.fp.write(("spte", gfn))
        spte = self.sptes.get(gfn)
        if spte is None or not spte.writable:
            return False
        self.sptes[gfn] = attrs.evolve(spte, writable=False)
        self.log.append(f"write-protect spte gfn {gfn:#x} -> pfn {spte.pfn:#x}")
        return True

    # ---- VRMA (POWER7 guest real mode) ----

    def setup_vrma(self, psize: int) -> None:
        """``kvmppc_hv_setup_htab_rma``'s end: ``vrma_slb_v``, ``kvmppc_map_vrma``,
        LPCR VRMASD, ``hpte_setup_done = 1``.

        XX: the kernel holds ``kvm->lock`` (a mutex the model does not have); only
        the first vcpu run calls this.
        """
        if self.vrma_psize is not None:
            raise AssertionError("hpte_setup_done: the VRMA is set up once")
        self.fp.write(("kvm", "vrma"))
        self.vrma_psize = psize
        name = self.frames.size_name(psize)
        self.log.append(f"VRMA page size {name}: vrma_slb_v, LPCR VRMASD, hpte_setup_done = 1")

    def vrma_page_size(self) -> int | None:
        """Return the VRMA page size the hardware uses (None before first vcpu run)."""
        self.fp.read(("kvm", "vrma"))
        return self.vrma_psize

    def snapshot_seq(self, who: str = "") -> int:
        """``mmu_seq = kvm->mmu_invalidate_seq; smp_rmb()`` (F2): no lock needed (R1)."""
        seq = self._load("seq", who)
        if self.memory is not None:
            self.memory.rmb(who)
        self.log.append(f"mmu_seq = mmu_invalidate_seq = {seq}; smp_rmb()")
        return seq

    # ---- the lockless side of seq/in_progress (docs/model.md section 6) ----

    def _load(self, loc: str, who: str) -> int:
        """``READ_ONCE(kvm->loc)``: the attribute (or a design's word), or in weak memory
        what ``who`` sees."""
        if self.memory is not None and self.memory.holds(loc):
            return self.memory.load(who, loc)
        self.fp.read(("kvm", loc))
        if loc in self.words:
            return self.words[loc]
        if loc not in WEAK_FIELDS:
            raise ValueError(f"kvm has no word {loc!r} (seq, in_progress, or a design's: {self._known()})")
        value: int = getattr(self, loc)
        return value

    def _known(self) -> str:
        return ", ".join(self.words) or "none declared"

    def write_once(self, loc: str, value: int, who: str) -> None:
        """``WRITE_ONCE(kvm->loc, value)`` of a design's own word (``Design.words``): in weak
        memory, into ``who``'s store buffer if the design marked it weak."""
        if loc not in self.words:
            raise ValueError(f"kvm has no word {loc!r} a design may write (its words: {self._known()})")
        self.log.append(f"WRITE_ONCE({loc}, {value})")
        if self.memory is not None and self.memory.holds(loc):
            self.memory.store(who, loc, value)
            return
        self.fp.write(("kvm", loc))
        self.words[loc] = value

    def smp_mb(self, who: str) -> None:
        """``smp_mb()``: nothing in SC; in weak memory, ``who``'s buffer drains and it sees
        every committed store."""
        if self.memory is not None:
            self.memory.mb(who)
            self.log.append("smp_mb()")

    def smp_store_release(self, loc: str, value: int, who: str) -> None:
        """``smp_store_release(&kvm->loc, value)``: ``smp_wmb(); WRITE_ONCE(...)`` (6.2)."""
        self.smp_wmb(who)
        self.write_once(loc, value, who)

    def smp_load_acquire(self, loc: str, who: str) -> int:
        """``smp_load_acquire(&kvm->loc)``: ``READ_ONCE(...); smp_rmb()`` (6.2)."""
        value = self.read_once(loc, who)
        self.smp_rmb(who)
        return value

    def _weak_add(self, loc: str, delta: int, who: str) -> None:
        """``kvm->loc += delta`` in weak memory: the store waits in ``who``'s store buffer."""
        assert self.memory is not None
        old = self.memory.load(who, loc)
        if loc == "in_progress" and old + delta < 0:
            raise AssertionError("invalidate_range_end without start (in_progress < 0)")
        self.memory.store(who, loc, old + delta)
        self.log.append(f"{loc} {old}->{old + delta}, in {who}'s store buffer")

    def smp_wmb(self, who: str) -> None:
        """``smp_wmb()``: nothing in SC; in weak memory, orders ``who``'s stores around it."""
        if self.memory is not None:
            self.memory.wmb(who)
            self.log.append("smp_wmb()")

    def smp_rmb(self, who: str) -> None:
        """``smp_rmb()``: nothing in SC; in weak memory, orders ``who``'s loads around it."""
        if self.memory is not None:
            self.memory.rmb(who)
            self.log.append("smp_rmb()")

    def read_count(self, who: str) -> int:
        """``kvm->mmu_invalidate_in_progress`` read with no lock held (a lockless check)."""
        return self._load("in_progress", who)

    def read_seq(self, who: str) -> int:
        """``kvm->mmu_invalidate_seq`` read with no lock held (a lockless check)."""
        return self._load("seq", who)

    def read_once(self, loc: str, who: str) -> int:
        """``READ_ONCE(kvm->mmu_invalidate_<loc>)`` (or of a design's word) with no lock held:
        a lockless check's load.

        Raises:
            ValueError: ``loc`` is neither ``seq``, ``in_progress`` nor a design's word."""
        value = self._load(loc, who)
        self.log.append(f"READ_ONCE({loc}) = {value}")
        return value

    def record_translation(self, gfn: int, pfn: int) -> None:
        """Cache ``gfn -> pfn`` in ``slot_phys[]`` (the setup_time design)."""
        self.fp.write(("slot_phys", gfn))
        self.slot_phys[gfn] = pfn
        self.log.append(f"slot_phys[gfn {gfn:#x}] = pfn {pfn:#x}")

    def keep_page(self, gfn: int, pfn: int) -> None:
        """Keep the registration's reference on ``pfn`` for ``gfn`` until the VM dies
        (v3.1 ``kvmppc_core_prepare_memory_region``: ``ram_pginfo[i].pfn``, put only
        by ``kvmppc_core_destroy_vm``). Registration runs before any vcpu, under
        ``slots_lock``, which the model does not have: no lock is asserted."""
        if gfn in self.pinned:
            raise AssertionError(f"gfn {gfn:#x} is already pinned to pfn {self.pinned[gfn]:#x}")
        self.fp.write(("pin", gfn))
        self.fp.read(("frame", pfn))
        self.pinned[gfn] = pfn
        self.log.append(f"ram_pginfo[gfn {gfn:#x}] = pfn {pfn:#x}, reference kept until the VM is destroyed")

    def cached_translation(self, gfn: int) -> int | None:
        """Return ``slot_phys[gfn]``, or None if it was never translated."""
        self.fp.read(("slot_phys", gfn))
        return self.slot_phys.get(gfn)

    def pin_page(self, gfn: int, pfn: int, who: str) -> None:
        """Keep gup's reference on ``pfn`` for ``gfn`` until the VM dies
        (``kvmppc_get_guest_page``: ``slot_phys[i] = pfn | KVMPPC_GOT_PAGE``).

        XX: PPC970 serialises this with ``slot_phys_lock``; the model uses mmu_lock.
        """
        self._assert_locked(who)
        if gfn in self.pinned:
            raise AssertionError(f"gfn {gfn:#x} is already pinned to pfn {self.pinned[gfn]:#x}")
        self.fp.write(("pin", gfn))
        self.fp.read(("frame", pfn))
        self.pinned[gfn] = pfn
        self.log.append(f"slot_phys[gfn {gfn:#x}] = pfn {pfn:#x} | KVMPPC_GOT_PAGE (pinned)")

    def pinned_pfn(self, gfn: int) -> int | None:
        """Return the pfn pinned for ``gfn``, or None if it was never given to the guest."""
        self.fp.read(("pin", gfn))
        return self.pinned.get(gfn)

    def guest_access(self, vcpu: str, gfn: int, *, write: bool) -> TlbEntry | None:
        """One hardware access of ``vcpu`` to ``gfn``; returns the translation it went
        through, or None when it faults (an exit to KVM's fault handler).

        The vcpu's TLB first: a hit is used without looking at the sptes, even if
        the leaf is gone (only a flush drops it); a write through a read-only entry
        faults and drops it. A miss walks the sptes and caches what it found.
        """
        entry = self.tlbs.lookup(vcpu, gfn)
        hit = entry is not None
        if entry is None:
            entry = self._walk(gfn) if self.hpte_walk is None else self.hpte_walk(vcpu, gfn)
        if entry is None or (write and not entry.writable):
            why = "no spte" if entry is None else "read-only TLB entry" if hit else "read-only spte"
            if hit:
                self.tlbs.drop(vcpu, gfn)
            self.log.append(f"{why}: exit to kvm_mmu_page_fault")
            return None
        pfn, generation = entry.pfn, entry.generation
        if hit:
            self.log.append(f"through TLB -> pfn {pfn:#x}")
        else:
            self.tlbs.fill(vcpu, gfn, entry)
            self.log.append(f"through spte -> pfn {pfn:#x}")
        kind = "write" if write else "read"
        if write:
            self.dirty_log.guest_wrote(gfn)
            if self.dirty_log.enabled and not entry.changed:
                entry = self._set_changed(vcpu, gfn, entry)
        if not self.frames.is_current(pfn, generation):
            self.fp.write(("kvm", "bad_accesses"))
            self.bad_accesses.append(
                f"guest {kind} of gfn {gfn:#x} went through a stale {'TLB entry' if hit else 'spte'}: "
                + self.frames.describe(pfn, generation)
            )
        elif write and self.frames.is_ksm(pfn):
            self.fp.write(("kvm", "ksm_writes"))
            self.ksm_writes.append(
                f"guest write of gfn {gfn:#x} landed in KSM page pfn {pfn:#x},"
                " shared read-only by every mapping merged into it"
            )
        return entry

    def _set_changed(self, vcpu: str, gfn: int, entry: TlbEntry) -> TlbEntry:
        """The hardware's store through a translation whose changed bit is not recorded: set
        the leaf's C bit (``HPTE_R_C``) and record it in the TLB entry, so that later stores
        through the entry set nothing until a ``tlbie`` drops it."""
        self.fp.write(("changed", gfn))
        self.changed.add(gfn)
        entry = attrs.evolve(entry, changed=True)
        self.tlbs.fill(vcpu, gfn, entry)
        return entry

    def _walk(self, gfn: int) -> TlbEntry | None:
        """The hardware's walk of the secondary page table for ``gfn``: the translation
        of its leaf (or of the huge leaf covering it), or None if it has none."""
        self.fp.read(("spte", gfn))
        spte = self.sptes.get(gfn)
        if spte is not None:
            return TlbEntry(spte.pfn, spte.writable, spte.generation, spte.slot)
        for base in sorted(g for g in self.sptes if g < gfn and gfn in self.covered(g)):
            self.fp.read(("spte", base))
            spte = self.sptes[base]
            gen = spte.tail_generations[gfn - base - 1]
            return TlbEntry(spte.pfn + gfn - base, spte.writable, gen, spte.slot)
        return None
