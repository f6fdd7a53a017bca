"""Several memslots, published under SRCU, and what keeps a memslot update and an
invalidation apart (docs/model.md section 7).

``kvm->memslots[as_id]`` is an array readers find under ``srcu_read_lock(&kvm->srcu)``:
the vcpu's fault path (``kvm_vcpu_srcu_read_lock`` around the exit handling) and
KVM's notifier callbacks (``__kvm_handle_hva_range``). An update
(``KVM_SET_USER_MEMORY_REGION``) never changes a published array: it publishes a
new one (``kvm_swap_active_memslots``) and waits for every reader that may still
see the old one (``synchronize_srcu_expedited``) before it frees what only the old
one had. A slot being deleted or moved is first published again with
``KVM_MEMSLOT_INVALID`` set, so that no fault installs a leaf for it while its
leaves are zapped (``kvm_invalidate_memslot``).

Each published version of a slot has a ``serial``: a leaf records the serial of
the slot it was installed under (``Spte.slot``), and the oracles judge it
against that slot, not against whatever the gfn means now. The INVALID copy of
a slot keeps its serial (it maps the same memory); a moved slot gets a new one.

``mn_active_invalidate_count`` (virt/kvm/kvm_main.c, 52ac8b358b0c, v5.15) counts the
notifier invalidations between their ``range_start`` and ``range_end``; a swap
waits for it to be zero, so that both callbacks of one invalidation see the same
memslots and so take ``mmu_lock`` (and count ``mmu_invalidate_in_progress``) alike.

Nothing here asserts a lock: ``slots_lock`` (one updater at a time) and
``mn_invalidate_lock`` (a spinlock around the count) are folded into the steps
that use them; SRCU is its own record of readers.
"""

from __future__ import annotations

import attrs

from .constants import PAGE_SIZE
from .footprint import Footprint

#: the footprint key of the published array (``kvm->memslots``)
ACTIVE = ("kvm", "memslots")
#: the footprint key of SRCU's readers
SRCU = ("kvm", "srcu")
#: the footprint key of ``mn_active_invalidate_count``
MN_ACTIVE = ("kvm", "mn_active_invalidate_count")


def hva_range_to_gfns(base_gfn: int, npages: int, userspace_addr: int, start: int, end: int) -> range:
    """The gfns of a slot whose hva lies in [start, end) (``hva_to_gfn_memslot``)."""
    first = max(start, userspace_addr)
    last = min(end, userspace_addr + npages * PAGE_SIZE)
    if first >= last:
        return range(0)
    lo = base_gfn + (first - userspace_addr) // PAGE_SIZE
    hi = base_gfn + (last - userspace_addr + PAGE_SIZE - 1) // PAGE_SIZE
    return range(lo, hi)


@attrs.frozen
class Slot:
    """One published version of a ``kvm_memory_slot``: slot ``id`` maps guest frames
    [base_gfn, base_gfn + npages) to ``userspace_addr``; ``invalid`` is
    ``KVM_MEMSLOT_INVALID``."""

    id: int
    base_gfn: int
    npages: int = attrs.field(validator=attrs.validators.gt(0))
    userspace_addr: int
    #: which published version this is: what a leaf installed under it records
    serial: int
    invalid: bool = False

    @property
    def gfns(self) -> range:
        return range(self.base_gfn, self.base_gfn + self.npages)

    def gfn_to_hva(self, gfn: int) -> int:
        if gfn not in self.gfns:
            raise ValueError(f"gfn {gfn:#x} outside memslot {self.id}")
        return self.userspace_addr + (gfn - self.base_gfn) * PAGE_SIZE

    def gfns_in(self, start: int, end: int) -> range:
        """The gfns whose hva lies in [start, end) (``hva_to_gfn_memslot``)."""
        return hva_range_to_gfns(self.base_gfn, self.npages, self.userspace_addr, start, end)

    def describe(self) -> str:
        flag = " INVALID" if self.invalid else ""
        where = f"gfn {self.base_gfn:#x}+{self.npages} at hva {self.userspace_addr:#x}"
        return f"memslot {self.id} ({where}{flag})"


@attrs.define(eq=False)
class Memslots:
    """``kvm->memslots[0]`` with its SRCU readers and ``mn_active_invalidate_count``."""

    log: list[str]
    fp: Footprint = attrs.field(factory=Footprint)
    #: the published array, by slot id
    active: dict[int, Slot] = attrs.field(factory=dict)
    #: +1 at each publication (``kvm_swap_active_memslots``: ``slots->generation``)
    generation: int = 0
    #: every version ever published, by serial: what a leaf is judged against
    versions: dict[int, Slot] = attrs.field(factory=dict)
    #: serials of the versions freed (``kvm_free_memslot``): a leaf under one is an orphan
    freed: list[int] = attrs.field(factory=list)
    #: SRCU readers: who -> the generation published when it took ``srcu_read_lock``
    readers: dict[str, int] = attrs.field(factory=dict)
    mn_active_invalidate_count: int = 0  # invariant: >= 0

    @classmethod
    def of(cls, log: list[str], fp: Footprint, *slots: tuple[int, int, int, int]) -> Memslots:
        """Memslots published at VM creation from ``(id, base_gfn, npages, hva)``; not a step."""
        memslots = cls(log, fp)
        for id_, base, npages, hva in slots:
            slot = Slot(id_, base, npages, hva, memslots._next_serial())
            memslots.versions[slot.serial] = slot
            memslots.active[id_] = slot
        return memslots

    def _next_serial(self) -> int:
        return len(self.versions)

    # ---- readers ----

    def srcu_read_lock(self, who: str) -> None:
        """``idx = srcu_read_lock(&kvm->srcu)``: from now on a synchronize waits for ``who``."""
        if who in self.readers:
            raise AssertionError(f"{who} already holds kvm->srcu for read")
        self.fp.write(SRCU)
        self.readers[who] = self.generation
        self.log.append("srcu_read_lock(&kvm->srcu)")

    def srcu_read_unlock(self, who: str) -> None:
        """``srcu_read_unlock(&kvm->srcu, idx)``."""
        if who not in self.readers:
            raise AssertionError(f"{who} does not hold kvm->srcu for read")
        self.fp.write(SRCU)
        del self.readers[who]
        self.log.append("srcu_read_unlock(&kvm->srcu)")

    def _assert_reader(self, who: str) -> None:
        if who not in self.readers:
            raise AssertionError(f"{who} must hold kvm->srcu for read to look at memslots")

    def lookup(self, gfn: int, who: str) -> Slot | None:
        """``kvm_vcpu_gfn_to_memslot`` (``srcu_dereference``): the published slot holding
        ``gfn``, INVALID or not, or None."""
        self._assert_reader(who)
        self.fp.read(ACTIVE)
        slot = self.find(gfn)
        self.log.append(f"gfn {gfn:#x} -> " + (slot.describe() if slot else "no memslot"))
        return slot

    def find(self, gfn: int) -> Slot | None:
        """The published slot holding ``gfn`` (no trace: for guards and oracles)."""
        return next((s for s in self.sorted() if gfn in s.gfns), None)

    def in_hva_range(self, start: int, end: int, who: str) -> list[Slot]:
        """``kvm_for_each_memslot_in_hva_range``: the published slots mapping any of [start, end)."""
        self._assert_reader(who)
        self.fp.read(ACTIVE)
        return [s for s in self.sorted() if s.gfns_in(start, end)]

    def sorted(self) -> list[Slot]:
        return [self.active[i] for i in sorted(self.active)]

    # ---- updates (under slots_lock, which the model folds away) ----

    def invalid_copy(self, slot_id: int) -> Slot:
        """``invalid_slot = *old; invalid_slot->flags |= KVM_MEMSLOT_INVALID``: not yet published."""
        return attrs.evolve(self.active[slot_id], invalid=True)

    def new_slot(self, slot_id: int, base_gfn: int, npages: int, hva: int) -> Slot:
        """The slot ``KVM_MR_CREATE`` publishes: not yet published."""
        if slot_id in self.active:
            raise ValueError(f"memslot {slot_id} exists: 'slot_id' must be free (got {slot_id})")
        return Slot(slot_id, base_gfn, npages, hva, self._next_serial())

    def moved_copy(self, slot_id: int, base_gfn: int) -> Slot:
        """The new version of a slot ``KVM_MR_MOVE`` publishes at ``base_gfn``."""
        moved = self.active[slot_id]
        return attrs.evolve(moved, base_gfn=base_gfn, invalid=False, serial=self._next_serial())

    def mn_invalidations_done(self) -> bool:
        """``!kvm->mn_active_invalidate_count`` (a guard: no trace)."""
        return self.mn_active_invalidate_count == 0

    def swap(self, replace: Slot | None, slot_id: int, who: str) -> None:
        """``kvm_swap_active_memslots``'s ``rcu_assign_pointer(kvm->memslots[as_id], slots)``:
        publish the array with slot ``slot_id`` replaced by ``replace`` (None deletes it);
        readers from now on see it. The caller has waited for
        ``mn_active_invalidate_count`` to drop to zero, or not."""
        self.fp.write(ACTIVE)
        self.fp.read(MN_ACTIVE)
        if replace is None:
            del self.active[slot_id]
        else:
            self.versions[replace.serial] = replace
            self.active[slot_id] = replace
        self.generation += 1
        what = f"memslot {slot_id} deleted" if replace is None else replace.describe()
        self.log.append(
            f"rcu_assign_pointer(kvm->memslots): {what}, generation {self.generation}"
            f" (mn_active_invalidate_count {self.mn_active_invalidate_count})"
        )

    def synchronized(self) -> bool:
        """Has every SRCU reader that may see an older array finished? (a guard: no trace)"""
        return all(gen >= self.generation for gen in self.readers.values())

    def synchronize_srcu(self, who: str) -> None:
        """``synchronize_srcu_expedited(&kvm->srcu)`` has returned: no reader sees an older array.

        The model waits for readers that locked before the latest publication;
        SRCU also waits for those that locked after it but before the
        synchronize, which can only see the new array anyway."""
        self.fp.read(SRCU)
        waited = "" if self.synchronized() else " while a reader still sees the old memslots"
        self.log.append(f"synchronize_srcu_expedited(&kvm->srcu) returns{waited}")

    def free(self, serial: int, who: str) -> None:
        """``kvm_free_memslot`` of the old version (``kvm_commit_memory_region``)."""
        self.fp.write(("kvm", "memslots_freed"))
        self.freed.append(serial)
        self.log.append(f"kvm_free_memslot: {self.versions[serial].describe()} freed")

    # ---- mn_active_invalidate_count (under mn_invalidate_lock) ----

    def mn_active_inc(self, who: str) -> None:
        """``kvm->mn_active_invalidate_count++`` at the start of ``invalidate_range_start``."""
        self.fp.write(MN_ACTIVE)
        self.mn_active_invalidate_count += 1
        n = self.mn_active_invalidate_count
        self.log.append(f"mn_active_invalidate_count {n - 1}->{n}")

    def mn_active_dec(self, who: str) -> None:
        """``--kvm->mn_active_invalidate_count`` at the end of ``invalidate_range_end``;
        at zero, ``rcuwait_wake_up(&kvm->mn_memslots_update_rcuwait)``."""
        if self.mn_active_invalidate_count <= 0:
            raise AssertionError("invalidate_range_end without start (mn_active_invalidate_count < 0)")
        self.fp.write(MN_ACTIVE)
        self.mn_active_invalidate_count -= 1
        n = self.mn_active_invalidate_count
        wake = "" if n else ": wake the memslot updater"
        self.log.append(f"mn_active_invalidate_count {n + 1}->{n}{wake}")

    # ---- for oracles ----

    def version(self, serial: int) -> Slot:
        return self.versions[serial]

    def is_freed(self, serial: int) -> bool:
        return serial in self.freed

    def all_gfns(self) -> range:
        """From gfn 0 to the end of the highest version ever published (what a full flush covers)."""
        return range(0, max(s.base_gfn + s.npages for s in self.versions.values()))
