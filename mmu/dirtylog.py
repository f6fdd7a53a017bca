"""Dirty logging for live migration: the memslot's dirty bitmap, and what the guest wrote.

KVM side (docs/model.md 1.5, section 3's dirty-log row): with
``KVM_MEM_LOG_DIRTY_PAGES`` set, every writable leaf KVM installs marks its
page in ``memslot->dirty_bitmap`` (``mark_page_dirty_in_slot``, F7), and
``KVM_GET_DIRTY_LOG`` (``kvm_get_dirty_log_protect``) hands the bitmap to
userspace, clearing it and write-protecting the pages it reported. So every
page is either dirty in the bitmap or write-protected: a write to it faults
and is logged before it lands.

Bench side: the hardware does not log anything, so the model also keeps the
ground truth, the guest writes made since logging started and not yet
covered by pages QEMU sent after them. QEMU sends every page once after
logging is on (the bulk stage), then again each page a harvest reports,
after the ioctl returned; so a write is safe once a page sent *after* it
carried it (a late report is no loss: the page goes out again with the
write in it). A write that lands between the harvest's ``xchg`` and the
ioctl's return (through a TLB entry the ioctl's flush has not dropped yet)
is in the page QEMU sends. ``lost_dirty`` judges what is left at the end
of the run.
"""

from __future__ import annotations

import attrs

from .footprint import Footprint


@attrs.define(eq=False)
class DirtyLog:
    """``memslot->dirty_bitmap`` under ``KVM_MEM_LOG_DIRTY_PAGES``, plus the bench's record.

    The caller (``Kvm``) asserts the locks; this class only keeps the state,
    its footprint and its trace lines.
    """

    log: list[str]
    fp: Footprint = attrs.field(factory=Footprint)
    enabled: bool = False  # memslot->flags & KVM_MEM_LOG_DIRTY_PAGES
    #: memslot->dirty_bitmap: gfns marked dirty since the last harvest (iterated sorted)
    bitmap: set[int] = attrs.field(factory=set)
    #: the bitmaps KVM_GET_DIRTY_LOG returned whose pages userspace sent, in order
    harvests: list[tuple[int, ...]] = attrs.field(factory=list)
    #: gfn -> (number of the first guest write to it that no page sent after it
    #: carried, harvests sent before that write)
    unreported: dict[int, tuple[int, int]] = attrs.field(factory=dict)
    writes: int = 0  # guest writes since logging started

    def enable(self) -> None:
        """``KVM_SET_USER_MEMORY_REGION`` with ``KVM_MEM_LOG_DIRTY_PAGES``: an empty bitmap."""
        if self.enabled:
            raise AssertionError("dirty logging is already enabled")
        self.fp.write(("dirty_log", "enabled"))
        self.enabled = True
        self.log.append("memslot->flags |= KVM_MEM_LOG_DIRTY_PAGES, dirty_bitmap all clear")

    def logging(self) -> bool:
        """Return whether dirty logging is on (``kvm_slot_dirty_track_enabled``)."""
        self.fp.read(("dirty_log", "enabled"))
        return self.enabled

    def mark_page_dirty(self, gfn: int) -> None:
        """``mark_page_dirty_in_slot``: ``set_bit_le`` in the bitmap (atomic, no lock)."""
        self.fp.write(("dirty", gfn))
        self.bitmap.add(gfn)
        self.log.append(f"mark_page_dirty_in_slot gfn {gfn:#x}")

    def guest_wrote(self, gfn: int) -> None:
        """Record a guest write that reached memory (the hardware, not KVM, did it)."""
        if not self.logging():
            return
        self.fp.write(("guest_write", gfn))
        self.fp.read(("dirty_log", "sent"))
        self.writes += 1
        self.unreported.setdefault(gfn, (self.writes, len(self.harvests)))

    def harvest(self, npages_from: int, npages_to: int) -> tuple[int, ...]:
        """``xchg(&dirty_bitmap[i], 0)`` over [npages_from, npages_to): return the dirty gfns.

        Userspace learns of them when the ioctl returns, and sends them then (``send``).
        """
        for gfn in range(npages_from, npages_to):
            self.fp.write(("dirty", gfn))
        mask = tuple(sorted(self.bitmap))
        self.bitmap.clear()
        shown = ", ".join(f"{g:#x}" for g in mask) or "none"
        self.log.append(f"xchg(dirty_bitmap, 0): dirty gfns {shown}")
        return mask

    def send(self, mask: tuple[int, ...]) -> None:
        """QEMU sends the pages a harvest reported (``ram_save``), after the ioctl returned:
        every write made to them so far is in what it sends."""
        self.fp.write(("dirty_log", "sent"))
        for gfn in mask:
            self.fp.write(("guest_write", gfn))
            self.unreported.pop(gfn, None)
        self.harvests.append(mask)
        self.log.append("ram_save: send " + (", ".join(f"gfn {g:#x}" for g in mask) or "nothing"))

    def bulk_stage(self, npages_from: int, npages_to: int) -> None:
        """``ram_save_setup``, once enabling logging returned: every page is sent once, so
        every write made so far (through a TLB entry not yet flushed, say) goes out."""
        self.fp.write(("dirty_log", "sent"))
        for gfn in range(npages_from, npages_to):
            self.fp.write(("guest_write", gfn))
            self.unreported.pop(gfn, None)
        self.log.append("ram_save_setup: every page is sent once in the bulk stage")
