"""Page frames: refcounts, a free list, and a generation per reuse.

A frame whose refcount drops to 0 is freed (``put_page`` -> ``__free_pages``)
and goes to the tail of the free list; ``alloc_page`` hands out the head and
bumps the frame's generation, so "the same pfn" after a reuse is told apart
from the frame a stale spte was installed for. A compound page (a
transparent huge page) is a run of frames allocated together whose
references all live on its head, until ``split_huge_page`` gives each base
page its own.
"""

from __future__ import annotations

from collections import deque

import attrs

from .footprint import Footprint


@attrs.define(eq=False)
class Frame:
    """One page frame (``struct page``)."""

    pfn: int
    refcount: int = 0  # invariant: >= 0; 0 exactly when free
    generation: int = 0  # bumped by every alloc_page
    free: bool = True
    #: ``PageKsm``: a stable KSM page, shared read-only by every mapping merged into
    #: it; cleared when the frame is reallocated
    ksm: bool = False
    #: a compound tail's head pfn (``compound_head``): references go to the head
    head: int | None = None
    #: base pages of the compound page this frame heads (``folio_nr_pages``)
    nr_pages: int = 1
    #: device memory a driver owns and maps with ``remap_pfn_range``: its one
    #: reference is the driver's, and ``kvm_pfn_to_refcounted_page`` finds no page
    #: to take another on (``PageReserved``, or no struct page at all)
    reserved: bool = False


@attrs.define(eq=False)
class FrameTable:
    """All frames of the host, and the free list (FIFO, deterministic)."""

    frames: dict[int, Frame]
    log: list[str]
    fp: Footprint = attrs.field(factory=Footprint)
    #: bytes of the host the model stands for per byte of its own: 1, or 16 for a
    #: ppc64 host with 64K base pages, one model frame each (docs/model.md 5.6)
    scale: int = 1
    _free: deque[int] = attrs.field(init=False)
    #: heads of partially mapped folios waiting to be split (``ds_queue->split_queue``), FIFO
    deferred: list[int] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self._free = deque(pfn for pfn, f in sorted(self.frames.items()) if f.free)

    @classmethod
    def with_frames(
        cls, first_pfn: int, count: int, log: list[str], fp: Footprint | None = None
    ) -> FrameTable:
        """Build ``count`` free frames numbered from ``first_pfn``."""
        frames = {pfn: Frame(pfn) for pfn in range(first_pfn, first_pfn + count)}
        return cls(frames, log, fp if fp is not None else Footprint())

    def size_name(self, nbytes: int) -> str:
        """How a size of the model reads on the host it stands for: ``16M``, ``64K``."""
        host = nbytes * self.scale
        return f"{host >> 20}M" if host >= 1 << 20 and host % (1 << 20) == 0 else f"{host >> 10}K"

    def __getitem__(self, pfn: int) -> Frame:
        return self.frames[pfn]

    def free_list(self) -> tuple[int, ...]:
        """Return the free pfns in the order they will be handed out."""
        return tuple(self._free)

    def alloc_page(self) -> int:
        """Take the head of the free list with one reference (``alloc_pages``)."""
        if not self._free:
            raise MemoryError("out of page frames: give the scenario more frames")
        frame = self.frames[self._free.popleft()]
        self.fp.write(("freelist",))
        self.fp.write(("frame", frame.pfn))
        frame.free = False
        frame.refcount = 1
        frame.generation += 1
        frame.ksm = False
        frame.reserved = False
        self.log.append(f"alloc_page -> pfn {frame.pfn:#x} gen {frame.generation}")
        return frame.pfn

    def compound_head(self, pfn: int) -> int:
        """Return the pfn that holds ``pfn``'s references (``compound_head``)."""
        head = self.frames[pfn].head
        return pfn if head is None else head

    def get_page(self, pfn: int) -> None:
        """Take a reference on a frame in use (``get_page``; a tail's goes to its head)."""
        pfn = self.compound_head(pfn)
        frame = self.frames[pfn]
        self.fp.write(("frame", pfn))
        if frame.free:
            raise AssertionError(f"get_page on free pfn {pfn:#x}")
        frame.refcount += 1
        self.log.append(f"get_page pfn {pfn:#x}: ref {frame.refcount - 1}->{frame.refcount}")

    def put_page(self, pfn: int) -> None:
        """Drop a reference; the last one frees the frame, or the whole compound
        page it heads (``put_page``)."""
        pfn = self.compound_head(pfn)
        frame = self.frames[pfn]
        self.fp.write(("frame", pfn))
        if frame.refcount <= 0:
            raise AssertionError(f"put_page on pfn {pfn:#x} with refcount {frame.refcount}")
        frame.refcount -= 1
        if frame.refcount == 0:
            if pfn in self.deferred:  # __folio_unqueue_deferred_split on the free path
                self.fp.write(("deferred",))
                self.deferred.remove(pfn)
            for sub in range(pfn, pfn + frame.nr_pages):
                self.frames[sub].free = True
                self.frames[sub].head = None
                self._free.append(sub)
                self.fp.write(("frame", sub))
            self.fp.write(("freelist",))
            what = "frame" if frame.nr_pages == 1 else f"compound page of {frame.nr_pages}"
            frame.nr_pages = 1
            self.log.append(f"put_page pfn {pfn:#x}: ref 1->0, {what} freed")
        else:
            self.log.append(f"put_page pfn {pfn:#x}: ref {frame.refcount + 1}->{frame.refcount}")

    def alloc_compound(self, nr_pages: int) -> int:
        """Take ``nr_pages`` contiguous free frames, aligned to ``nr_pages``, as one
        compound page whose head holds the one reference (``alloc_pages(order)``,
        ``prep_compound_page``); return the head pfn. The lowest such run is taken."""
        free = set(self._free)
        head = next(
            (p for p in sorted(free) if p % nr_pages == 0 and all(p + i in free for i in range(nr_pages))),
            None,
        )
        if head is None:
            raise MemoryError(f"no {nr_pages} contiguous free frames: give the scenario more frames")
        self._free = deque(p for p in self._free if not head <= p < head + nr_pages)
        self.fp.write(("freelist",))
        for sub in range(head, head + nr_pages):
            frame = self.frames[sub]
            self.fp.write(("frame", sub))
            frame.free, frame.ksm, frame.generation = False, False, frame.generation + 1
            frame.reserved = False
            frame.refcount, frame.head = (1, None) if sub == head else (0, head)
        self.frames[head].nr_pages = nr_pages
        gen = self.frames[head].generation
        self.log.append(f"alloc_pages(compound) -> pfn {head:#x}-{head + nr_pages - 1:#x} gen {gen}")
        return head

    def alloc_device(self, nr_pages: int) -> int:
        """Hand ``nr_pages`` contiguous frames to a driver as device memory (a BAR, a
        buffer it will ``remap_pfn_range``): the first ``nr_pages`` of the free list,
        which must be contiguous, each with the driver's one reference. Returns the
        first pfn. The model gives device memory a frame of the page allocator so
        that its reuse after release is told apart (docs/model.md 3.14)."""
        run = list(self._free)[:nr_pages]
        if len(run) < nr_pages or run != list(range(run[0], run[0] + nr_pages)):
            raise MemoryError(f"no {nr_pages} contiguous frames at the head of the free list")
        for _ in run:
            self._free.popleft()
        self.fp.write(("freelist",))
        for pfn in run:
            frame = self.frames[pfn]
            self.fp.write(("frame", pfn))
            frame.free, frame.ksm, frame.reserved = False, False, True
            frame.refcount, frame.generation = 1, frame.generation + 1
        pfns = f"{run[0]:#x}" if nr_pages == 1 else f"{run[0]:#x}-{run[-1]:#x}"
        gen = self.frames[run[0]].generation
        self.log.append(f"device memory pfn {pfns} assigned to the driver gen {gen}")
        return run[0]

    def release_device(self, first: int, nr_pages: int) -> None:
        """The driver gives its device memory back (its ``vm_ops->close`` or ``release``
        once nothing maps it): from now on it belongs to whoever is assigned it next."""
        for pfn in range(first, first + nr_pages):
            frame = self.frames[pfn]
            if not frame.reserved or frame.refcount != 1:
                msg = f"release_device of pfn {pfn:#x}: not device memory the driver alone holds"
                raise AssertionError(msg)
            self.fp.write(("frame", pfn))
            frame.refcount, frame.free, frame.reserved = 0, True, False
            self._free.append(pfn)
        self.fp.write(("freelist",))
        pfns = f"{first:#x}" if nr_pages == 1 else f"{first:#x}-{first + nr_pages - 1:#x}"
        self.log.append(f"device memory pfn {pfns} released by the driver")

    def is_refcounted(self, pfn: int) -> bool:
        """Whether KVM may take a reference on ``pfn`` (``kvm_pfn_to_refcounted_page``
        finds a page that is not ``PageReserved``): False for device memory."""
        self.fp.read(("frame", pfn))
        return not self.frames[pfn].reserved

    def page_ref_add(self, pfn: int, nr: int) -> None:
        """Take ``nr`` references at once on a frame in use (``page_ref_add``)."""
        frame = self.frames[pfn]
        if frame.free or frame.head is not None:
            raise AssertionError(f"page_ref_add on pfn {pfn:#x}: free, or a tail")
        self.fp.write(("frame", pfn))
        frame.refcount += nr
        self.log.append(f"page_ref_add pfn {pfn:#x}: ref {frame.refcount - nr}->{frame.refcount}")

    def folio_nr_pages(self, pfn: int) -> int:
        """Return the base pages of the folio ``pfn`` belongs to (``folio_nr_pages``,
        ``compound_order``): 1 for a page of its own."""
        head = self.compound_head(pfn)
        self.fp.read(("frame", head))
        return self.frames[head].nr_pages

    def deferred_split_folio(self, head: int) -> None:
        """Queue a partially mapped folio for a later split (``deferred_split_folio``,
        from ``__folio_remove_rmap`` when a page of it is unmapped and others stay)."""
        if self.frames[head].nr_pages == 1 or self.frames[head].head is not None:
            raise AssertionError(f"deferred_split_folio of pfn {head:#x}: not a compound head")
        self.fp.write(("deferred",))
        if head not in self.deferred:
            self.deferred.append(head)
            self.log.append(f"deferred_split_folio pfn {head:#x}: partially mapped, queued for split")

    def deferred_split_take(self) -> int | None:
        """The THP shrinker's pick (``deferred_split_scan``): take the first queued folio
        off the queue with a reference of its own (``folio_try_get``); None if empty."""
        self.fp.write(("deferred",))
        if not self.deferred:
            return None
        head = self.deferred.pop(0)
        self.get_page(head)
        return head

    def split_folio(self, head: int) -> bool:
        """``folio_ref_freeze(folio, 1 + extra_pins)`` then ``__split_unmapped_folio``:
        with every mapping already replaced by a migration entry, only the
        splitter's reference may be left (an anonymous folio has no extra pins).
        Each base page then gets one reference, which the splitter drops once
        the ptes are restored (``free_page_and_swap_cache``); the head keeps the
        splitter's. Return whether it split; on False nothing changed (-EAGAIN).
        """
        frame = self.frames[head]
        n = frame.nr_pages
        self.fp.write(("frame", head))
        if frame.head is not None or n == 1:
            raise AssertionError(f"split_folio of pfn {head:#x}: not a compound head")
        if frame.refcount != 1:
            self.log.append(
                f"folio_ref_freeze pfn {head:#x}: refcount {frame.refcount}, expected 1: -EAGAIN"
            )
            return False
        for sub in range(head + 1, head + n):
            self.fp.write(("frame", sub))
            self.frames[sub].head = None
            self.frames[sub].refcount = 1
        frame.nr_pages = 1
        self.log.append(f"__split_unmapped_folio pfn {head:#x}: {n} base pages, ref 1 each")
        return True

    def refcount(self, pfn: int) -> int:
        """Return the frame's reference count (``folio_ref_count``)."""
        self.fp.read(("frame", pfn))
        return self.frames[pfn].refcount

    def copy_page(self, src: int, dst: int) -> None:
        """Copy the contents of ``src`` into ``dst`` (``folio_migrate_copy``, ``copy_user_highpage``)."""
        for pfn in (src, dst):
            if self.frames[pfn].free:
                raise AssertionError(f"copy_page with free pfn {pfn:#x}")
        self.fp.read(("frame", src))
        self.fp.write(("frame", dst))
        self.log.append(f"copy pfn {src:#x} -> pfn {dst:#x}")

    def set_ksm(self, pfn: int) -> None:
        """Make a frame a KSM page (``folio_set_stable_node``): from now on every pte
        mapping it is read-only and a write must break COW first."""
        frame = self.frames[pfn]
        if frame.free:
            raise AssertionError(f"set_ksm on free pfn {pfn:#x}")
        self.fp.write(("frame", pfn))
        frame.ksm = True
        self.log.append(f"pfn {pfn:#x} is now a KSM page (stable_node)")

    def is_ksm(self, pfn: int) -> bool:
        """Return whether the frame is a KSM page (``folio_test_ksm``)."""
        self.fp.read(("frame", pfn))
        return self.frames[pfn].ksm

    def is_current(self, pfn: int, generation: int) -> bool:
        """Return whether ``pfn`` is still the allocation made at ``generation``."""
        self.fp.read(("frame", pfn))
        frame = self.frames[pfn]
        return not frame.free and frame.generation == generation

    def describe(self, pfn: int, generation: int) -> str:
        """Say what became of the allocation ``pfn`` at ``generation``."""
        frame = self.frames[pfn]
        if frame.generation != generation:
            return f"pfn {pfn:#x} was freed and reused (gen {generation} -> {frame.generation})"
        if frame.free:
            return f"pfn {pfn:#x} was freed (refcount 0, on the free list)"
        return f"pfn {pfn:#x} is live (refcount {frame.refcount})"
