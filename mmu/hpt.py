"""POWER7's hashed page table as KVM HV keeps it: HPTEs, rmap chains, their lock bits.

On POWER7 (Book3S HV with MMU notifiers, as merged in v3.3 and, for the hash
MMU, in the same shape today) the guest's leaves are HPTEs in a hashed page
table the guest fills itself with the H_ENTER hypercall, and KVM's fault
path never takes ``kvm->mmu_lock``. It serialises with the notifier's zap
through two bit spinlocks instead (docs/model.md 1.1 and 1.5), both in
arch/powerpc/include/asm/kvm_book3s_64.h:

- ``HPTE_V_HVLOCK``, a bit in the first dword of each HPTE
  (``try_lock_hpte``; released by the store that writes the HPTE back);
- ``KVMPPC_RMAP_LOCK_BIT``, a bit of each guest page's reverse-map word
  ``memslot->rmap[gfn]``, whose chain lists the valid HPTEs that map the
  page (``lock_rmap``: ``test_and_set_bit_lock`` in a spin loop).

The model keeps one HPTE per guest page, the guest's slot for it: none until
the guest enters one; then absent (``HPTE_V_ABSENT``: the guest's entry, but
KVM maps nothing, so an access faults to KVM) or valid. A valid HPTE is the
page's leaf in ``Kvm.sptes``, as for every other design, and is on the
page's rmap chain: "chain present" is "leaf present". Every store to an HPTE
bumps its version, which stands for the two dwords and ``guest_rpte`` the
fault path compares ("HPTE has been changed under us"). Each method asserts
the lock bits the kernel holds for it and records its footprint; none
asserts ``mmu_lock``.

With ``--memory weak`` and a POWER7 design, each rmap word is a weak
location (``rmap_word``; docs/model.md 6.6): the chain's ``KVMPPC_RMAP_PRESENT``
and ``KVMPPC_RMAP_CHANGED`` bits are stored into the CPU's store buffer and
loaded under the rmap lock, ordered only by the lock bits' acquires and
releases. Where two vcpus walk the HPT (``walkers``), the HPTE's two dwords
are weak locations too (``hpte_dword``): dword 0's valid bit and dword 1's
RPN, stored by H_ENTER and the fault path in the kernel's order
(``hptep[1] = r; eieio(); __unlock_hpte(hptep, v)``) and read by the
hardware's walk in the guest's access (``walk``).
"""

from __future__ import annotations

import attrs

from .hostmm import HostMm, HostPte
from .kvm import Kvm, Spte
from .locks import LockError, SpinLock
from .tlb import TlbEntry

#: the lockdep class of every HPTE lock bit
HPTE_LOCK = "HPTE_V_HVLOCK"
#: the lockdep class of every rmap lock bit
RMAP_LOCK = "KVMPPC_RMAP_LOCK_BIT"
#: ``KVMPPC_RMAP_PRESENT`` of an rmap word in weak memory: the chain is not empty
RMAP_PRESENT = 1
#: ``KVMPPC_RMAP_CHANGED`` of an rmap word in weak memory
RMAP_CHANGED = 2
#: ``HPTE_V_VALID`` of an HPTE's dword 0 in weak memory
HPTE_V_VALID = 1
#: ``HPTE_V_ABSENT`` of an HPTE's dword 0 in weak memory
HPTE_V_ABSENT = 2


def rmap_word(gfn: int) -> str:
    """The weak location of ``memslot->rmap[gfn]`` (docs/model.md 6.6)."""
    return f"rmap_{gfn:#x}"


def hpte_dword(gfn: int, n: int) -> str:
    """The weak location of dword ``n`` of the guest's HPTE for ``gfn`` (docs/model.md 6.6):
    0 holds ``HPTE_V_VALID``/``HPTE_V_ABSENT``, 1 the RPN (a leaf's number in ``Hpt``)."""
    return f"hpte{n}_{gfn:#x}"


def is_hpte_dword(loc: str) -> bool:
    """Whether the weak location ``loc`` is an HPTE dword, which only the hardware's walk
    reads (``WeakMemory.walked``)."""
    return loc.startswith("hpte") and loc[4:5] in ("0", "1")


@attrs.define(eq=False)
class Hpt:
    """The guest's HPTEs and KVM's rmap words for the memslot, with their lock bits."""

    kvm: Kvm = attrs.field(repr=False)
    #: gfn -> the version of the guest's HPTE for it; no key: the guest entered none
    versions: dict[int, int] = attrs.field(factory=dict)
    #: ``KVMPPC_RMAP_CHANGED`` of each rmap word: the C bit of an HPTE ``kvm_unmap_rmapp``
    #: took off the chain, kept for the next dirty-log harvest (v3.6)
    rmap_changed: set[int] = attrs.field(factory=set)
    _hpte_locks: dict[int, SpinLock] = attrs.field(init=False, repr=False)
    #: how many vcpus walk the HPT (a scenario says; ``race_remap -p vcpus=2``): with one,
    #: the dwords stay sequentially consistent (``weak_dwords``)
    walkers: int = 1
    #: what each RPN a dword 1 held in weak memory maps: RPN n is ``_rpns[n - 1]``; 0 is none
    _rpns: list[Spte] = attrs.field(init=False, repr=False, factory=list)
    _rmap_locks: dict[int, SpinLock] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        slot, fp = self.kvm.memslot, self.kvm.fp
        gfns = range(slot.base_gfn, slot.base_gfn + slot.npages)
        self._hpte_locks = {g: SpinLock(f"hpte[{g:#x}]", fp=fp, klass=HPTE_LOCK) for g in gfns}
        self._rmap_locks = {g: SpinLock(f"rmap[{g:#x}]", fp=fp, klass=RMAP_LOCK) for g in gfns}

    def hpte_lock(self, gfn: int) -> SpinLock:
        """The ``HPTE_V_HVLOCK`` bit of the guest's HPTE for ``gfn``."""
        return self._hpte_locks[gfn]

    def rmap_lock(self, gfn: int) -> SpinLock:
        """The ``KVMPPC_RMAP_LOCK_BIT`` of ``memslot->rmap[gfn]``."""
        return self._rmap_locks[gfn]

    def _assert_held(self, who: str, *locks: SpinLock) -> None:
        for lock in locks:
            if not lock.held_by(who):
                raise LockError(f"{who} must hold {lock.name}")

    # ---- the rmap word in weak memory (docs/model.md 6.6) ----

    def weak_cells(self) -> dict[str, int]:
        """Every rmap word as a weak location, with its value now: ``KVMPPC_RMAP_PRESENT``
        for a page with a valid HPTE, ``KVMPPC_RMAP_CHANGED`` for a harvested C bit."""
        slot, sptes, changed = self.kvm.memslot, self.kvm.sptes, self.rmap_changed
        return {
            rmap_word(g): (RMAP_PRESENT if g in sptes else 0) | (RMAP_CHANGED if g in changed else 0)
            for g in range(slot.base_gfn, slot.base_gfn + slot.npages)
        }

    def _rpn(self, spte: Spte) -> int:
        self._rpns.append(spte)
        return len(self._rpns)

    def weak_dwords(self) -> dict[str, int]:
        """Every HPTE's two dwords as weak locations, with their values now, and the
        guest's accesses walking them (``walk``) from now on; none with one walker.

        One vcpu's walk never sees its HPTE half-written: its own stores have reached
        memory before it re-enters the guest (the ``ptesync`` after the unlock), and
        the zap's before its ``tlbie``. Only another vcpu's walk can come between a
        writer's two stores, so with one the dwords stay sequentially consistent, and
        the search does not pay for store orders no walk can tell apart."""
        if self.walkers < 2:
            return {}
        slot, sptes = self.kvm.memslot, self.kvm.sptes
        cells: dict[str, int] = {}
        for g in range(slot.base_gfn, slot.base_gfn + slot.npages):
            spte = sptes.get(g)
            absent = HPTE_V_ABSENT if g in self.versions else 0
            cells[hpte_dword(g, 0)] = HPTE_V_VALID if spte is not None else absent
            cells[hpte_dword(g, 1)] = self._rpn(spte) if spte is not None else 0
        self.kvm.hpte_walk = self.walk
        return cells

    def weak_hpte(self, gfn: int) -> bool:
        """Whether the HPTE dwords of ``gfn`` are weak locations in this run."""
        memory = self.kvm.memory
        return memory is not None and memory.holds(hpte_dword(gfn, 0))

    def valid_in_flight(self, gfn: int, write: bool) -> bool:
        """With the dwords weak: whether the walk missed an HPTE that is valid (and writable
        for a write) but whose dword 0 has not reached memory yet. ``kvmppc_hpte_hv_fault``
        finds it valid and lets the guest retry the access, with no fault path."""
        if not self.weak_hpte(gfn):
            return False
        self.kvm.fp.read(("spte", gfn))
        spte = self.kvm.sptes.get(gfn)
        return spte is not None and (spte.writable or not write) and not self.valid_landed(gfn)

    def valid_landed(self, gfn: int) -> bool:
        """Whether dword 0 in memory is valid, or the HPTE is no longer valid at all: the
        retried access will not miss for the same reason."""
        assert self.kvm.memory is not None
        self.kvm.fp.read(("kvm", hpte_dword(gfn, 0)))
        self.kvm.fp.read(("spte", gfn))
        valid = bool(self.kvm.memory.value(hpte_dword(gfn, 0)) & HPTE_V_VALID)
        return valid or gfn not in self.kvm.sptes

    def _dword_store(self, gfn: int, n: int, value: int, who: str, what: str) -> None:
        """``hptep[n] = value`` in weak memory: into ``who``'s store buffer."""
        assert self.kvm.memory is not None
        self.kvm.memory.store(who, hpte_dword(gfn, n), value)
        self.kvm.log.append(f"{what}: hpte[{gfn:#x}][{n}] = {value}, in {who}'s store buffer")

    def _invalidate(self, gfn: int, who: str) -> None:
        """``kvmppc_invalidate_hpte``: ``ptesync; tlbie; eieio; tlbsync; ptesync``. In weak
        memory the CPU's stores drain first (the ``ptesync``: an ``smp_mb``), so no walk
        finds the HPTE valid once the ``tlbie`` has dropped the TLBs' entries."""
        if self.weak_hpte(gfn):
            assert self.kvm.memory is not None
            self.kvm.memory.mb(who)
        self.kvm.tlbs.flush("kvmppc_invalidate_hpte: tlbie", range(gfn, gfn + 1))

    def walk(self, vcpu: str, gfn: int) -> TlbEntry | None:
        """The hardware's search of the HPT for ``gfn`` in ``vcpu``'s access, with the dwords
        weak: dword 0 as it is in memory, never from ``vcpu``'s store buffer (a walk does
        not snoop the store queue); if ``HPTE_V_VALID``, dword 1, read *after* it.

        Assumed: the walk's two reads are ordered, as if a read barrier stood between
        them, so dword 1 is no older than the stores that committed before dword 0's
        value. The kernel relies on it: the writers order only their own side, "Write
        the first HPTE dword, unlocking the HPTE and making it valid" after ``eieio()``
        (``kvmppc_do_h_enter``; ``hptep[1] = r; eieio(); __unlock_hpte`` in
        ``kvmppc_book3s_hv_page_fault``), which would order nothing if the walk could
        read dword 1 stale after a new dword 0. So a stale RPN is seen only when dword
        0 committed before dword 1: a writer without the ``eieio``. Also assumed,
        more strongly than POWER promises: a committed dword is seen by every CPU's
        walk at once (no per-CPU view), which can hide a bug that needs a walk to see
        an old dword 0 (docs/model.md 6.6)."""
        memory = self.kvm.memory
        assert memory is not None
        self.kvm.fp.read(("spte", gfn))
        if not memory.walk_load(vcpu, hpte_dword(gfn, 0)) & HPTE_V_VALID:
            return None
        rpn = memory.walk_load(vcpu, hpte_dword(gfn, 1))
        if rpn == 0:
            self.kvm.fp.write(("kvm", "bad_accesses"))
            self.kvm.bad_accesses.append(
                f"{vcpu}'s walk found the HPTE of gfn {gfn:#x} valid before its RPN was written"
            )
            return None
        spte = self._rpns[rpn - 1]
        return TlbEntry(spte.pfn, spte.writable, spte.generation, spte.slot)

    def _weak(self, gfn: int) -> bool:
        memory = self.kvm.memory
        return memory is not None and memory.holds(rmap_word(gfn))

    def _rmap_load(self, gfn: int, who: str) -> int:
        """``*rmapp`` in weak memory: ``who``'s own store, else what it sees."""
        assert self.kvm.memory is not None
        return self.kvm.memory.load(who, rmap_word(gfn))

    def _rmap_store(self, gfn: int, word: int, who: str, what: str) -> None:
        """``*rmapp = word`` in weak memory: into ``who``'s store buffer."""
        assert self.kvm.memory is not None
        self.kvm.memory.store(who, rmap_word(gfn), word)
        self.kvm.log.append(f"{what}: rmap[{gfn:#x}] = {word}, in {who}'s store buffer")

    def _store(self, gfn: int) -> None:
        self.kvm.fp.write(("hpte", gfn))
        self.versions[gfn] = self.versions.get(gfn, 0) + 1

    # ---- the guest's HPTE ----

    def guest_hpte(self, gfn: int) -> int | None:
        """What the hardware's HPT search found for ``gfn`` at the access that left
        the guest (``kvmppc_hpte_hv_fault`` saves it in ``pgfault_hpte``): the
        HPTE's version, or None if the guest has no HPTE for the page (a fault
        the guest's own hash-fault handler takes, ending in H_ENTER).

        No lock asserted: the real-mode search takes and drops the lock bit
        within the one step of the access."""
        self.kvm.fp.read(("hpte", gfn))
        return self.versions.get(gfn)

    def read_hpte(self, gfn: int, who: str) -> int:
        """``kvmppc_book3s_hv_page_fault`` (v3.3): ``hpte[0] = hptep[0]; hpte[1] = hptep[1];
        hpte[2] = rev->guest_rpte``, under the HPTE lock: the version of the HPTE, which
        the guest must have entered."""
        self._assert_held(who, self.hpte_lock(gfn))
        self.kvm.fp.read(("hpte", gfn))
        if gfn not in self.versions:
            raise AssertionError(f"read of the HPTE for gfn {gfn:#x}, which the guest never entered")
        return self.versions[gfn]

    def hpte_changed(self, gfn: int, seen: int, who: str) -> bool:
        """``kvmppc_book3s_hv_page_fault`` (v3.3): ``if (hptep[0] != hpte[0] || hptep[1] !=
        hpte[1] || rev->guest_rpte != hpte[2])``, under the HPTE lock: has the HPTE
        changed since the fault read it as ``seen``?"""
        now = self.read_hpte(gfn, who)
        if now != seen:
            self.kvm.log.append("HPTE has been changed under us; let the guest retry")
        return now != seen

    def enter_hpte(self, gfn: int, pfn: int, writable: bool, who: str, *, eieio: bool = True) -> None:
        """Make the HPTE for ``gfn`` valid, mapping ``pfn``: ``kvmppc_add_revmap_chain`` then
        the HPTE stores (v3.3: the fault path's ``hptep[1] = r; hptep[0] = hpte[0]``,
        ``kvmppc_h_enter``'s ``hpte[0] = pteh``), under the HPTE lock and the rmap lock.
        A valid HPTE it replaces (a write fault on a read-only one) is made absent and
        flushed first (``kvmppc_invalidate_hpte``: a ``tlbie`` that every vcpu's TLB has
        completed when it returns), and stays on the chain.

        With the dwords weak: ``hptep[1] = r``, ``eieio()`` (an ``smp_wmb``; none without
        ``eieio``), then dword 0 valid, each into ``who``'s store buffer."""
        kvm = self.kvm
        self._assert_held(who, self.hpte_lock(gfn), self.rmap_lock(gfn))
        kvm.memslot.gfn_to_hva(gfn)  # raises for a gfn outside the memslot
        # no check that the frame is live: entering a stale pfn is the bug oracles catch
        kvm.fp.write(("spte", gfn))
        kvm.fp.read(("frame", pfn))
        if kvm.sptes.pop(gfn, None) is not None:
            kvm.log.append("HPTE was previously valid: HPTE_V_ABSENT")
            if self.weak_hpte(gfn):
                self._dword_store(gfn, 0, HPTE_V_ABSENT, who, "hptep[0] |= HPTE_V_ABSENT")
            self._invalidate(gfn, who)
        elif self._weak(gfn):  # *rmap = index | KVMPPC_RMAP_PRESENT, a plain store
            self._rmap_store(gfn, self._rmap_load(gfn, who) | RMAP_PRESENT, who, "kvmppc_add_revmap_chain")
        else:
            kvm.log.append(f"kvmppc_add_revmap_chain: HPTE on rmap[{gfn:#x}]")
        spte = kvm.sptes[gfn] = Spte(pfn, writable, kvm.frames[pfn].generation)
        self._store(gfn)
        kvm.log.append(f"HPTE gfn {gfn:#x} -> pfn {pfn:#x}{' W' if writable else ' RO'} valid")
        if self.weak_hpte(gfn):
            assert kvm.memory is not None
            self._dword_store(gfn, 1, self._rpn(spte), who, f"hptep[1] = RPN of pfn {pfn:#x}")
            if eieio:
                kvm.memory.wmb(who)
                kvm.log.append(f"eieio: {who}'s earlier stores leave its buffer first")
            self._dword_store(gfn, 0, HPTE_V_VALID, who, "hptep[0] = HPTE_V_VALID")

    def enter_absent(self, gfn: int, who: str) -> None:
        """``kvmppc_h_enter``'s ``pteh |= HPTE_V_ABSENT`` (v3.3), under the HPTE lock: the guest's entry with
        nothing mapped, so that its next access faults to ``kvmppc_book3s_hv_page_fault``."""
        self._assert_held(who, self.hpte_lock(gfn))
        self.kvm.fp.read(("spte", gfn))
        if gfn in self.kvm.sptes:
            raise AssertionError(f"H_ENTER over the valid HPTE of gfn {gfn:#x}")
        self._store(gfn)
        self.kvm.log.append(f"HPTE gfn {gfn:#x} absent (HPTE_V_ABSENT)")
        if self.weak_hpte(gfn):
            self._dword_store(gfn, 0, HPTE_V_ABSENT, who, "hptep[0] = pteh | HPTE_V_ABSENT")

    # ---- the rmap chain ----

    def rmap_present(self, gfn: int, who: str) -> bool:
        """``kvm_unmap_rmapp``'s ``*rmapp & KVMPPC_RMAP_PRESENT`` (v3.3), under the rmap lock:
        is a valid HPTE on the chain?"""
        self._assert_held(who, self.rmap_lock(gfn))
        if self._weak(gfn):
            word = self._rmap_load(gfn, who)
            chain = "present" if word & RMAP_PRESENT else "no HPTE"
            self.kvm.log.append(f"rmap[{gfn:#x}] = {word}: {chain}")
            return bool(word & RMAP_PRESENT)
        self.kvm.fp.read(("spte", gfn))
        return gfn in self.kvm.sptes

    def unmap_hpte(self, gfn: int, who: str) -> None:
        """``kvm_unmap_rmapp``'s body for one HPTE (split out as ``kvmppc_unmap_hpte`` later): take it
        off the chain, ``HPTE_V_ABSENT``, ``kvmppc_invalidate_hpte`` (a ``tlbie`` every vcpu's
        TLB has completed when it returns, so no flush is left to the caller), harvest
        C into the rmap word (v3.6: ``KVMPPC_RMAP_CHANGED``, which the next dirty-log
        harvest reports; R is not modelled). "Must be called with both HPTE and rmap
        locked"."""
        kvm = self.kvm
        self._assert_held(who, self.hpte_lock(gfn), self.rmap_lock(gfn))
        kvm.fp.write(("spte", gfn))
        spte = kvm.sptes.pop(gfn)
        self._store(gfn)
        kvm.log.append(f"HPTE gfn {gfn:#x} -> pfn {spte.pfn:#x} off rmap[{gfn:#x}]: HPTE_V_ABSENT")
        if self.weak_hpte(gfn):
            self._dword_store(gfn, 0, HPTE_V_ABSENT, who, "hptep[0] |= HPTE_V_ABSENT")
        self._invalidate(gfn, who)
        kvm.fp.read(("changed", gfn))
        harvest = gfn in kvm.changed
        if harvest:
            kvm.fp.write(("changed", gfn))
            kvm.changed.discard(gfn)
        if self._weak(gfn):  # kvmppc_remove_revmap_chain, and the harvest, in one store
            word = self._rmap_load(gfn, who) & ~RMAP_PRESENT | (RMAP_CHANGED if harvest else 0)
            self._rmap_store(gfn, word, who, "off the chain" + (", harvest C" if harvest else ""))
        elif harvest:
            # v3.6: "Harvest R and C": *rmapp |= rcbits << KVMPPC_RMAP_RC_SHIFT
            kvm.fp.write(("rmap_changed", gfn))
            self.rmap_changed.add(gfn)
            kvm.log.append(f"harvest C: rmap[{gfn:#x}] |= KVMPPC_RMAP_CHANGED")

    # ---- dirty logging: the C bits (v3.6 kvm_test_clear_dirty) ----

    def take_rmap_changed(self, gfn: int, who: str) -> bool:
        """``kvm_test_clear_dirty`` (v3.6): ``if (*rmapp & KVMPPC_RMAP_CHANGED) { *rmapp &=
        ~KVMPPC_RMAP_CHANGED; ret = 1; }``, under the rmap lock: was a changed HPTE
        unmapped since the last harvest?"""
        self._assert_held(who, self.rmap_lock(gfn))
        if self._weak(gfn):
            word = self._rmap_load(gfn, who)
            if not word & RMAP_CHANGED:
                return False
            self._rmap_store(gfn, word & ~RMAP_CHANGED, who, "KVMPPC_RMAP_CHANGED: dirty, cleared")
            return True
        self.kvm.fp.write(("rmap_changed", gfn))
        if gfn not in self.rmap_changed:
            return False
        self.rmap_changed.discard(gfn)
        self.kvm.log.append(f"rmap[{gfn:#x}] & KVMPPC_RMAP_CHANGED: dirty, cleared")
        return True

    def hpte_c(self, gfn: int, who: str) -> bool:
        """``kvm_test_clear_dirty`` (v3.6): the chained HPTE's ``hptep[1] & HPTE_R_C``, read
        under the rmap lock without its own lock (the HPTE is on the chain: valid)."""
        self._assert_held(who, self.rmap_lock(gfn))
        if self._weak(gfn) and not self._rmap_load(gfn, who) & RMAP_PRESENT:
            return False  # if (!(*rmapp & KVMPPC_RMAP_PRESENT)): the chain is empty
        self.kvm.fp.read(("spte", gfn))
        self.kvm.fp.read(("changed", gfn))
        return gfn in self.kvm.sptes and gfn in self.kvm.changed

    def make_absent(self, gfn: int, who: str) -> Spte:
        """``hptep[0] |= HPTE_V_ABSENT`` of a valid HPTE (v3.6 ``kvm_test_clear_dirty``: "need
        to make it temporarily absent to clear C"), under both lock bits: the hardware's
        search no longer finds it; it stays on the chain. Returns the leaf, to restore."""
        kvm = self.kvm
        self._assert_held(who, self.hpte_lock(gfn), self.rmap_lock(gfn))
        kvm.fp.write(("spte", gfn))
        spte = kvm.sptes.pop(gfn)
        kvm.log.append(f"HPTE gfn {gfn:#x} -> pfn {spte.pfn:#x}: HPTE_V_ABSENT, to clear C")
        if self.weak_hpte(gfn):
            self._dword_store(gfn, 0, HPTE_V_ABSENT, who, "hptep[0] |= HPTE_V_ABSENT")
        return spte

    def tlbie(self, gfn: int, who: str) -> None:
        """``kvmppc_invalidate_hpte``: ``tlbie`` of the HPTE's translation, complete on every
        vcpu when it returns (a store in flight has set C by then), under the HPTE lock."""
        self._assert_held(who, self.hpte_lock(gfn))
        self._invalidate(gfn, who)

    def clear_c(self, gfn: int, who: str) -> None:
        """``hptep[1] &= ~HPTE_R_C`` (v3.6), under the HPTE lock; ``rev->guest_rpte |= HPTE_R_C``
        keeps it in the guest's view, which the model does not hold."""
        self._assert_held(who, self.hpte_lock(gfn))
        self.kvm.fp.write(("changed", gfn))
        self.kvm.changed.discard(gfn)
        self.kvm.log.append(f"HPTE gfn {gfn:#x}: clear HPTE_R_C")

    def make_valid(self, gfn: int, spte: Spte, who: str) -> None:
        """``eieio(); hptep[0] = (hptep[0] & ~HPTE_V_ABSENT) | HPTE_V_VALID`` (v3.6): the same
        translation again, with no fault and no rmap change, under both lock bits."""
        kvm = self.kvm
        self._assert_held(who, self.hpte_lock(gfn), self.rmap_lock(gfn))
        kvm.fp.write(("spte", gfn))
        if gfn in kvm.sptes:
            raise AssertionError(f"the HPTE of gfn {gfn:#x} became valid while absent and locked")
        kvm.sptes[gfn] = spte
        self._store(gfn)
        kvm.log.append(f"HPTE gfn {gfn:#x} -> pfn {spte.pfn:#x} valid again")
        if self.weak_hpte(gfn):
            assert kvm.memory is not None
            kvm.memory.wmb(who)  # the eieio before it
            self._dword_store(gfn, 0, HPTE_V_VALID, who, "eieio; hptep[0] = HPTE_V_VALID")

    # ---- mmu_notifier_retry without mmu_lock ----

    def retry_in_progress(self, gfn: int, who: str) -> bool:
        """``mmu_notifier_retry``'s first read (v3.3 include/linux/kvm_host.h, a355aa54f1d2;
        ``mmu_invalidate_retry`` today): ``if (kvm->mmu_notifier_count) return 1``.

        Asserted: the rmap lock of ``gfn``, not ``mmu_lock``, which the writers of the
        count hold: "PowerPC Book3s HV KVM calls this under a per-page lock rather
        than under kvm->mmu_lock, for scalability". The ``smp_rmb()`` that orders this
        read before ``retry_seq``'s goes between the two calls; it pairs with the
        ``smp_wmb()`` between ``seq++`` and the count's decrement at
        invalidate_range_end (R3). In SC (5.10) the order cannot fail; in weak
        memory (section 6) the read is what ``who`` sees, and the barriers order it."""
        kvm = self.kvm
        self._assert_held(who, self.rmap_lock(gfn))
        in_progress = kvm.read_count(who)
        kvm.log.append(
            f"mmu_notifier_retry: in_progress {in_progress}" + (" -> retry" if in_progress else "")
        )
        return in_progress != 0

    def retry_seq(self, gfn: int, mmu_seq: int, who: str, *, rmb: bool = True) -> bool:
        """``mmu_notifier_retry``'s second read, after ``smp_rmb()`` (unless ``rmb`` is False:
        a design that drops it): ``if (kvm->mmu_notifier_seq != mmu_seq) return 1``, under
        the rmap lock of ``gfn``."""
        kvm = self.kvm
        self._assert_held(who, self.rmap_lock(gfn))
        if rmb and kvm.memory is not None:
            kvm.memory.rmb(who)
        seq = kvm.read_seq(who)
        moved = seq != mmu_seq
        barrier = "smp_rmb(); " if rmb else ""
        kvm.log.append(f"{barrier}seq {seq} vs {mmu_seq}" + (" -> retry" if moved else " -> ok"))
        return moved


def lookup_linux_pte(mm: HostMm, hva: int) -> HostPte | None:
    """H_ENTER's ``lookup_linux_pte`` (v3.3 arch/powerpc/kvm/book3s_hv_rm_mmu.c): the host pte
    of ``hva``, read in real mode with no lock and no page reference
    (``find_linux_pte_or_hugepte``, ``kvmppc_read_update_linux_pte``); None unless present.

    A pte change is one step in the model (docs/model.md 5.13), so this sees it
    before or after, never half done; only the retry check under the rmap lock
    makes what it read safe to map."""
    mm.fp.read(("pte", hva))
    return mm.ptes.get(hva)
