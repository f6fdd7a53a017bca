"""Each vcpu's TLB: the translations the hardware caches from the secondary page table.

A guest access looks in its vcpu's TLB first. A hit is used as it is,
without walking the sptes, so a translation whose leaf KVM has zapped stays
usable until a flush drops it: a zap without its flush leaves a stale
translation (docs/model.md 5.1). A miss walks the sptes and caches what it
found. Nothing empties a TLB but the hardware's own fault on a write through
a read-only entry, and KVM's flushes: ``kvm_flush_remote_tlbs``, which makes
``KVM_REQ_TLB_FLUSH`` of every vcpu and waits for each one running the guest
to acknowledge it (``kvm_make_all_cpus_request``), and its ranged forms.

The flush is one step: after the requester's ``kvm_make_all_cpus_request``
returns, no vcpu can use an entry cached before it (a vcpu in guest mode
has taken the IPI and will flush before it enters again; one outside guest
mode flushes before it enters), and the requester does nothing until then.
An access the real hardware made before the acknowledgement is, in the
model, an access before the flush step.

Entries are per base page (``gfn``): an access through a huge leaf caches
the page it touched, as hardware may ("some processors may cache multiple
smaller-page TLB entries" for a large page). The caller (``Kvm``) asserts
the locks; this class keeps the state, its footprint and its trace lines.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from .footprint import Footprint


@attrs.frozen
class TlbEntry:
    """A cached translation of one guest frame, as its leaf was when it was cached."""

    pfn: int
    writable: bool
    #: the generation of the frame when the leaf was made (``Spte.generation``)
    generation: int
    #: the memslot version the leaf was installed under (``Spte.slot``)
    slot: int | None = None
    #: the entry has recorded that its leaf's changed bit is set (POWER's HPTE C bit):
    #: a store through it sets nothing, so a harvest that clears C must flush it first
    changed: bool = False


@attrs.define(eq=False)
class Tlbs:
    """Every vcpu's TLB; a vcpu is known from its first guest access (its first ``KVM_RUN``)."""

    log: list[str]
    fp: Footprint = attrs.field(factory=Footprint)
    #: vcpu -> gfn -> entry
    entries: dict[str, dict[int, TlbEntry]] = attrs.field(factory=dict)

    def lookup(self, vcpu: str, gfn: int) -> TlbEntry | None:
        """The entry ``vcpu`` has cached for ``gfn``, if any (the hardware's TLB lookup)."""
        if vcpu not in self.entries:
            self.fp.write(("kvm", "vcpus"))  # a flush from now on also reaches this vcpu
            self.entries[vcpu] = {}
        self.fp.read(("tlb", vcpu, gfn))
        return self.entries[vcpu].get(gfn)

    def fill(self, vcpu: str, gfn: int, entry: TlbEntry) -> None:
        """Cache what a walk of the sptes found for ``gfn``."""
        self.fp.write(("tlb", vcpu, gfn))
        self.entries[vcpu][gfn] = entry

    def drop(self, vcpu: str, gfn: int) -> None:
        """The hardware drops the entry it faulted on (an EPT violation invalidates the
        translations of the faulting address)."""
        self.fp.write(("tlb", vcpu, gfn))
        self.entries[vcpu].pop(gfn, None)

    def flush(self, what: str, gfns: range) -> None:
        """``what`` (a flush of KVM's): ``KVM_REQ_TLB_FLUSH`` to every vcpu, each acknowledges,
        and every entry for ``gfns`` is gone before the requester goes on."""
        self.fp.read(("kvm", "vcpus"))
        acks = []
        for vcpu in sorted(self.entries):
            for gfn in gfns:
                self.fp.write(("tlb", vcpu, gfn))
            tlb = self.entries[vcpu]
            dropped = [gfn for gfn in sorted(tlb) if gfn in gfns]
            for gfn in dropped:
                del tlb[gfn]
            shown = ", ".join(f"gfn {g:#x}" for g in dropped) or "nothing cached"
            acks.append(f"{vcpu} ({shown})")
        self.log.append(
            f"{what}: KVM_REQ_TLB_FLUSH, "
            + (f"acked by {', '.join(acks)}" if acks else "no vcpu has entered the guest")
        )

    def cached(self) -> Iterator[tuple[str, int, TlbEntry]]:
        """Every entry, as (vcpu, gfn, entry), in a fixed order (for oracles)."""
        for vcpu in sorted(self.entries):
            tlb = self.entries[vcpu]
            for gfn in sorted(tlb):
                yield vcpu, gfn, tlb[gfn]
