"""The KSM merges a guest's reads undo: the bench's record, no kernel field.

KSM saves memory only while the pages it merged stay merged. A guest write
must break COW (``do_wp_page`` copies the KSM page into a private one:
docs/model.md 3.9), but a guest read must not: a design that asks
get_user_pages for write on a read fault breaks COW all the same, and the
merge is undone by a guest that only reads (POWER7 as merged in v3.3; Avi
Kivity: "Ok, so no ksm for you"). The vcpu says which guest fault it is in,
per kernel thread, and the COW break says which thread copied a KSM page;
``ksm_undone`` reports a copy made inside a read fault.
"""

from __future__ import annotations

import attrs

from .footprint import Footprint


@attrs.frozen
class ReadBreak:
    """A KSM page copied away from an address inside a guest read fault."""

    thread: str
    hva: int
    kpage: int


@attrs.define(eq=False)
class KsmLedger:
    """Guest faults in progress, per thread, and the KSM COW breaks made inside a read one.

    Callers: the vcpu (``fault``, ``fault_done``) and the COW break
    (``cow_broken``); each records the key ``("ksm", thread)`` it touches.
    """

    fp: Footprint = attrs.field(factory=Footprint)
    #: thread -> the hva of the guest read fault it is handling
    reading: dict[str, int] = attrs.field(factory=dict)
    #: every KSM page copied away inside a read fault, in order
    read_breaks: list[ReadBreak] = attrs.field(factory=list)

    def fault(self, thread: str, hva: int, *, write: bool) -> None:
        """The vcpu ``thread`` exits to KVM's fault handler for an access to ``hva``."""
        self.fp.write(("ksm", thread))
        if write:
            self.reading.pop(thread, None)
        else:
            self.reading[thread] = hva

    def fault_done(self, thread: str) -> None:
        """The fault handler returned (the guest retries the access, or KVM_RUN fails)."""
        self.fp.write(("ksm", thread))
        self.reading.pop(thread, None)

    def cow_broken(self, thread: str, hva: int, kpage: int) -> None:
        """``do_wp_page`` in ``thread`` switched ``hva`` from the KSM page ``kpage`` to a copy."""
        self.fp.read(("ksm", thread))
        if self.reading.get(thread) == hva:
            self.fp.write(("ksm", "read_breaks"))
            self.read_breaks.append(ReadBreak(thread, hva, kpage))
