"""The whole state raced over, and the event log every step writes to."""

from __future__ import annotations

import attrs

from .constants import PAGE_SIZE as PAGE_SIZE
from .footprint import Access, Footprint
from .frames import FrameTable
from .hostmm import HostMm, Vma
from .kvm import Kvm, Memslot

#: where the guest's RAM sits in the VMM's address space
GUEST_RAM_HVA = 0x40000000
#: the first pfn handed out; far from gfns so that traces never confuse the two
FIRST_PFN = 0x100


@attrs.define(eq=False)
class Model:
    """Frames, the host mm and KVM, sharing one event log.

    Every mutating method appends a line to ``log``; the runtime takes those
    lines as the description of the step that made them.
    """

    log: list[str]
    frames: FrameTable
    mm: HostMm
    kvm: Kvm
    fp: Footprint = attrs.field(factory=Footprint)

    @classmethod
    def build(cls, *, npages: int = 1, nframes: int = 8) -> Model:
        """Guest RAM of ``npages`` at gfn 0, backed by one populated rw VMA.

        The setup is not a step: the log starts empty.
        """
        log: list[str] = []
        fp = Footprint()
        frames = FrameTable.with_frames(FIRST_PFN, nframes, log, fp)
        mm = HostMm(frames, log, fp)
        kvm = Kvm(frames, log, Memslot(0, npages, GUEST_RAM_HVA), fp)
        setup = "setup"
        mm.mmap_lock.acquire(setup, write=True)
        mm.insert_vma(Vma(GUEST_RAM_HVA, GUEST_RAM_HVA + npages * PAGE_SIZE, "rw"), setup)
        for i in range(npages):
            mm.set_pte(GUEST_RAM_HVA + i * PAGE_SIZE, frames.alloc_page(), True, setup)
        mm.mmap_lock.release(setup, write=True)
        log.clear()
        fp.clear()
        return cls(log, frames, mm, kvm, fp)

    def drain_footprint(self) -> Access:
        """Return and forget what was read and written since the last call."""
        return self.fp.drain()

    def drain_log(self) -> tuple[str, ...]:
        """Return and forget what happened since the last call."""
        lines = tuple(self.log)
        self.log.clear()
        return lines
