"""The host process's address space: VMAs and host ptes, under ``mmap_lock``.

Host ptes own one reference on their frame; ``clear_pte`` hands that
reference back to the caller, which drops it later, as ``zap_pte_range``
defers ``put_page`` to ``tlb_finish_mmu``.

A pte change needs the page-table lock, which one atomic step stands for,
plus what keeps the VMA stable: ``mmap_lock`` (munmap, mprotect, madvise,
KSM) or, for rmap walkers such as migration, ``anon_vma->rwsem``.
"""

from __future__ import annotations

import attrs

from .constants import HPAGE_PAGES, HPAGE_SIZE, PAGE_SIZE
from .footprint import Footprint
from .frames import FrameTable
from .locks import LockError, RwSem, SpinLock


@attrs.frozen
class Vma:
    """A ``vm_area_struct``: [start, end) with protections and a page size.

    ``pgoff`` set makes it a ``VM_PFNMAP`` VMA (a driver's ``->mmap`` called
    ``remap_pfn_range``, docs/model.md 3.14): ``vm_pgoff`` is the first pfn it
    maps, its ptes are ``pte_special`` and hold no reference, and gup refuses it.
    """

    start: int
    end: int = attrs.field()
    prot: str = attrs.field(default="rw", validator=attrs.validators.in_(("r", "rw")))
    page_size: int = 4096
    pgoff: int | None = None  # vm_pgoff of a VM_PFNMAP VMA; None for ordinary memory

    @property
    def pfnmap(self) -> bool:
        """``vma->vm_flags & VM_PFNMAP``."""
        return self.pgoff is not None

    @end.validator
    def _end_after_start(self, attribute: attrs.Attribute, value: int) -> None:
        if value <= self.start:
            raise ValueError(f"'end' must be > start {self.start:#x} (got {value:#x})")

    def contains(self, hva: int) -> bool:
        return self.start <= hva < self.end

    def piece(self, start: int, end: int, prot: str | None = None) -> Vma:
        """The part [start, end) of this VMA, as ``__split_vma`` leaves it: same page
        size, a VM_PFNMAP piece's ``vm_pgoff`` moved by the offset; ``prot`` if given."""
        pgoff = None if self.pgoff is None else self.pgoff + (start - self.start) // PAGE_SIZE
        return Vma(start, end, prot or self.prot, self.page_size, pgoff)


@attrs.frozen
class HostPte:
    """A present host pte.

    ``size`` is the size of the page-table entry that maps the address: a
    base pte's, or a huge leaf's (a THP's PMD, a hugetlb page) for every
    base address under it: what a page-table walk finds there.
    """

    pfn: int
    writable: bool
    size: int = PAGE_SIZE
    #: ``pte_special``: a VM_PFNMAP pte, whose pfn has no struct page reference to it
    special: bool = False


@attrs.define(eq=False)
class HostMm:
    """A ``struct mm_struct``: VMAs, ptes and the ``mmap_lock`` protecting them."""

    frames: FrameTable
    log: list[str]
    fp: Footprint = attrs.field(factory=Footprint)
    mmap_lock: RwSem = attrs.field(
        default=attrs.Factory(lambda self: RwSem("mmap_lock", fp=self.fp), takes_self=True)
    )
    #: the anon_vma lock rmap walkers (try_to_migrate, remove_migration_ptes) hold
    rmap_lock: RwSem = attrs.field(
        default=attrs.Factory(lambda self: RwSem("anon_vma->rwsem", fp=self.fp), takes_self=True)
    )
    #: the page-table lock of the pte page that maps guest RAM (``pte_lockptr``). A step
    #: that changes ptes stands for one such critical section without taking it
    #: (docs/model.md 5.13); it is taken only where the kernel holds it across a
    #: notifier call, as a 2011 host does around ``->change_pte``/``->invalidate_page``
    ptl: SpinLock = attrs.field(
        default=attrs.Factory(lambda self: SpinLock("ptl", fp=self.fp), takes_self=True)
    )
    vmas: list[Vma] = attrs.field(factory=list)  # sorted by start, disjoint
    ptes: dict[int, HostPte] = attrs.field(factory=dict)
    #: hva -> the pte a migration entry replaced: not present, a fault waits on it
    migration: dict[int, HostPte] = attrs.field(factory=dict)
    #: haddr -> head pfn of a compound page mapped by one huge leaf: a THP's PMD
    #: (``HPAGE_SIZE``) or a hugetlb page (its folio's size). The base hvas under
    #: it keep an entry in ``ptes`` (-> head + i, ``size`` the leaf's), so that
    #: whoever translates an hva sees the same thing; the leaf holds the one
    #: reference, on the head
    pmds: dict[int, int] = attrs.field(factory=dict)

    def _assert_held(self, who: str, *, write: bool) -> None:
        held = self.mmap_lock.held_by(who, write=True) or (
            not write and self.mmap_lock.held_by(who, write=False)
        )
        if not held:
            mode = "write" if write else "read"
            raise LockError(f"{who} must hold mmap_lock for {mode}")

    def find_vma(self, hva: int, who: str) -> Vma | None:
        """Return the VMA containing ``hva`` (``vma_lookup``); needs mmap_lock."""
        self._assert_held(who, write=False)
        self.fp.read(("vmas",))
        return next((v for v in self.vmas if v.contains(hva)), None)

    def vmas_in(self, start: int, end: int, who: str) -> list[Vma]:
        """Return the VMAs overlapping [start, end), in address order; needs mmap_lock."""
        self._assert_held(who, write=False)
        self.fp.read(("vmas",))
        return [v for v in self.vmas if v.start < end and start < v.end]

    def insert_vma(self, vma: Vma, who: str) -> None:
        """Add a VMA (``mmap_region``); needs mmap_lock for write."""
        self._assert_held(who, write=True)
        if any(v.start < vma.end and vma.start < v.end for v in self.vmas):
            raise AssertionError(f"vma {vma.start:#x}-{vma.end:#x} overlaps an existing vma")
        self.fp.write(("vmas",))
        self.vmas.append(vma)
        self.vmas.sort(key=lambda v: v.start)
        self.log.append(f"vma {vma.start:#x}-{vma.end:#x} {vma.prot} inserted")

    def remove_vma(self, vma: Vma, who: str) -> None:
        """Drop a VMA whose ptes are gone (``remove_vma``); needs mmap_lock for write."""
        self._assert_held(who, write=True)
        if any(vma.contains(hva) for hva in self.ptes):
            raise AssertionError(f"vma {vma.start:#x}-{vma.end:#x} removed with ptes present")
        self.fp.write(("vmas",))
        self.vmas.remove(vma)
        self.log.append(f"vma {vma.start:#x}-{vma.end:#x} removed")

    def detach_vma(self, vma: Vma, who: str) -> None:
        """Take a VMA out of the tree before its ptes are zapped, as munmap does
        (``vms_gather_munmap_vmas``: ``vma_mark_detached``, then ``vma_iter_clear_gfp``;
        ``detach_vmas_to_be_unmapped`` before v6.1): lookups no longer find it, its
        ptes stay until the zap. Needs mmap_lock for write."""
        self._assert_held(who, write=True)
        self.fp.write(("vmas",))
        self.vmas.remove(vma)
        self.log.append(f"vma {vma.start:#x}-{vma.end:#x} detached")

    def maps_device_memory(self) -> bool:
        """Whether any VMA is VM_PFNMAP now, read with no lock: the model's shortcut
        for KVM's fallback after a failed gup (docs/model.md 3.14)."""
        self.fp.read(("vmas",))
        return any(v.pfnmap for v in self.vmas)

    def remap_pfn_range(self, vma: Vma, who: str) -> None:
        """Map every page of the VM_PFNMAP ``vma`` at once, ``vm_pgoff + i``, with special
        ptes that take no reference (``remap_pfn_range`` -> ``remap_pte_range``:
        ``pte_mkspecial(pfn_pte(pfn, prot))``, v6.12); the driver's ``->mmap`` calls it
        under ``mmap_lock`` for write."""
        self._assert_held(who, write=True)
        if vma.pgoff is None or vma not in self.vmas:
            msg = f"remap_pfn_range on vma {vma.start:#x}-{vma.end:#x}: not a mapped VM_PFNMAP vma"
            raise AssertionError(msg)
        for i, hva in enumerate(range(vma.start, vma.end, PAGE_SIZE)):
            if hva in self.ptes:
                raise AssertionError(f"remap_pfn_range over a present pte at hva {hva:#x}")
            self.fp.write(("pte", hva))
            self.ptes[hva] = HostPte(vma.pgoff + i, "w" in vma.prot, special=True)
        last = vma.pgoff + (vma.end - vma.start) // PAGE_SIZE - 1
        self.log.append(
            f"remap_pfn_range hva {vma.start:#x}-{vma.end:#x} -> pfn {vma.pgoff:#x}-{last:#x} (special ptes)"
        )

    def follow_pte(self, hva: int, who: str) -> HostPte | None:
        """Return the pte mapping ``hva`` (``follow_page``); needs mmap_lock."""
        self._assert_held(who, write=False)
        self.fp.read(("pte", hva))
        return self.ptes.get(hva)

    def gup_fast_pte(self, hva: int) -> HostPte | None:
        """The present pte at ``hva`` as the lockless walk of ``gup_fast`` sees it
        (``gup_fast_pte_range``, or ``gup_fast_pmd_leaf`` under a huge PMD, whose base
        hvas keep their entries here): no lock, not even the page-table lock, and
        no VMA; a migration entry is not present. The kernel walks with interrupts
        off, so the page tables cannot be freed under it, and rechecks the pte after
        taking its reference; the model reads it in one step (docs/model.md F3).
        """
        self.fp.read(("pte", hva))
        return self.ptes.get(hva)

    def set_pte(self, hva: int, pfn: int, writable: bool, who: str) -> None:
        """Map ``hva`` to ``pfn``, taking over the caller's reference (``set_pte_at``)."""
        self._assert_held(who, write=False)
        if hva in self.ptes:
            raise AssertionError(f"set_pte over a present pte at hva {hva:#x}")
        if self.frames[pfn].free:
            raise AssertionError(f"set_pte to free pfn {pfn:#x}")
        self.fp.write(("pte", hva))
        self.fp.read(("frame", pfn))
        self.ptes[hva] = HostPte(pfn, writable)
        self.log.append(f"pte hva {hva:#x} -> pfn {pfn:#x}{' W' if writable else ' RO'}")

    def clear_pte(self, hva: int, who: str) -> HostPte:
        """Unmap ``hva`` and hand its reference to the caller (``ptep_get_and_clear``)."""
        return self._take_pte(hva, who, write=True)

    def _take_pte(self, hva: int, who: str, *, write: bool) -> HostPte:
        """Clear the pte at ``hva``. A huge leaf goes whole, from its first address
        (``zap_huge_pmd``, ``__unmap_hugepage_range``); a THP mapped only partly by
        the range must be split first (``__split_huge_pmd``). A base page of a
        folio that stays mapped elsewhere queues the folio for a deferred split
        (``__folio_remove_rmap`` -> ``deferred_split_folio``, v6.12)."""
        self._assert_held(who, write=write)
        self.fp.write(("pte", hva))
        pte = self.ptes[hva]
        if pte.size > PAGE_SIZE:
            return self._take_leaf(hva, pte)
        del self.ptes[hva]
        self.log.append(f"pte hva {hva:#x} -> pfn {pte.pfn:#x} cleared")
        head = self.frames.compound_head(pte.pfn)
        if self.frames[head].nr_pages > 1 and self._folio_mapped(head):
            self.frames.deferred_split_folio(head)
        return pte

    def _take_leaf(self, hva: int, pte: HostPte) -> HostPte:
        if hva % pte.size or self.pmds.get(hva) != pte.pfn:
            raise AssertionError(f"zap of hva {hva:#x} inside a huge leaf: split it first")
        self.fp.write(("pmd", hva))
        del self.pmds[hva]
        for sub in range(hva, hva + pte.size, PAGE_SIZE):
            self.fp.write(("pte", sub))
            del self.ptes[sub]
        size = self.frames.size_name(pte.size)
        self.log.append(f"huge leaf hva {hva:#x} -> pfn {pte.pfn:#x} ({size}) cleared")
        return pte

    def _folio_mapped(self, head: int) -> bool:
        """Whether a present pte still maps a page of the folio ``head`` (``folio_mapped``)."""
        for hva in sorted(self.ptes):
            self.fp.read(("pte", hva))
        return any(self.frames.compound_head(p.pfn) == head for p in self.ptes.values())

    def _assert_rmap(self, who: str) -> None:
        if not self.rmap_lock.held_by(who):
            raise LockError(f"{who} must hold {self.rmap_lock.name}")

    def change_vma(self, old: Vma, new: tuple[Vma, ...], who: str) -> None:
        """Replace ``old`` by pieces covering the same range (``vma_modify``: split,
        ``vm_flags_reset``); needs mmap_lock for write."""
        self._assert_held(who, write=True)
        pieces = sorted(new, key=lambda v: v.start)
        bounds = [old.start] + [b for v in pieces for b in (v.start, v.end)] + [old.end]
        if not pieces or any(bounds[i] != bounds[i + 1] for i in range(0, len(bounds), 2)):
            raise AssertionError(f"pieces do not tile vma {old.start:#x}-{old.end:#x}")
        self.fp.write(("vmas",))
        self.vmas.remove(old)
        self.vmas.extend(pieces)
        self.vmas.sort(key=lambda v: v.start)
        shown = ", ".join(f"{v.start:#x}-{v.end:#x} {v.prot}" for v in pieces)
        self.log.append(f"vma {old.start:#x}-{old.end:#x} {old.prot} -> {shown}")

    def wrprotect_pte(self, hva: int, who: str) -> None:
        """Clear the pte's write bit (``ptep_modify_prot_start/commit``, ``pte_wrprotect``).

        Needs mmap_lock (read is enough: KSM's ``write_protect_page``); keeps the frame.
        """
        self._assert_held(who, write=False)
        self.fp.write(("pte", hva))
        pte = self.ptes[hva]
        self.ptes[hva] = attrs.evolve(pte, writable=False)
        self.log.append(f"pte hva {hva:#x} -> pfn {pte.pfn:#x} write-protected")

    def mkwrite_pte(self, hva: int, who: str) -> None:
        """Set the pte's write bit on the same frame (``wp_page_reuse``:
        ``ptep_set_access_flags``); needs mmap_lock. Adding a permission needs no notifier."""
        self._assert_held(who, write=False)
        self.fp.write(("pte", hva))
        pte = self.ptes[hva]
        self.ptes[hva] = attrs.evolve(pte, writable=True)
        self.log.append(f"pte hva {hva:#x} -> pfn {pte.pfn:#x} made writable")

    def mapcount(self, pfn: int, who: str) -> int:
        """Return how many present ptes map ``pfn`` (``page_mapcount``, as the rmap
        knows it); needs mmap_lock. Migration entries are not mappings."""
        self._assert_held(who, write=False)
        for hva in sorted(self.ptes):
            self.fp.read(("pte", hva))
        return sum(pte.pfn == pfn for pte in self.ptes.values())

    def migration_entry(self, hva: int, who: str) -> HostPte | None:
        """Return the pte a migration entry at ``hva`` stands for; needs mmap_lock."""
        self._assert_held(who, write=False)
        self.fp.read(("pte", hva))
        return self.migration.get(hva)

    def rmap_pte(self, hva: int, who: str) -> HostPte | None:
        """Return the present pte at ``hva`` as an rmap walker sees it
        (``page_vma_mapped_walk``); needs the rmap lock."""
        self._assert_rmap(who)
        self.fp.read(("pte", hva))
        return self.ptes.get(hva)

    def set_migration_entry(self, hva: int, who: str) -> HostPte:
        """Replace a present pte by a migration entry (``try_to_migrate_one``:
        ``ptep_clear_flush``, ``make_*_migration_entry``); its reference goes to the
        caller, as ``page_remove_rmap`` + ``folio_put`` drop it. Needs the rmap lock."""
        self._assert_rmap(who)
        self.fp.write(("pte", hva))
        pte = self.ptes.pop(hva)
        self.migration[hva] = pte
        self.log.append(f"pte hva {hva:#x} -> pfn {pte.pfn:#x} replaced by a migration entry")
        return pte

    def remove_migration_pte(self, hva: int, pfn: int, who: str) -> None:
        """Turn the migration entry at ``hva`` into a present pte to ``pfn``, with the
        old writability and the caller's reference (``remove_migration_pte``)."""
        self._assert_rmap(who)
        if self.frames[pfn].free:
            raise AssertionError(f"remove_migration_pte to free pfn {pfn:#x}")
        self.fp.write(("pte", hva))
        self.fp.read(("frame", pfn))
        old = self.migration.pop(hva)
        self.ptes[hva] = HostPte(pfn, old.writable)
        self.log.append(f"migration entry hva {hva:#x} -> pte pfn {pfn:#x}{' W' if old.writable else ' RO'}")

    def zap_pte(self, hva: int, who: str) -> HostPte:
        """``clear_pte`` for a zap that holds mmap_lock only for read
        (``madvise(MADV_DONTNEED)`` -> ``zap_page_range_single``)."""
        return self._take_pte(hva, who, write=False)

    # ---- transparent huge pages (docs/model.md section 3, THP rows) ----

    def pmd_mapped(self, hva: int) -> bool:
        """Return whether a huge PMD maps ``hva`` (``pmd_trans_huge``)."""
        haddr = hva - hva % HPAGE_SIZE
        self.fp.read(("pmd", haddr))
        return haddr in self.pmds

    def mapping_size(self, hva: int) -> int:
        """The size the host page table maps ``hva`` with: the leaf's size, a base
        page's if nothing is mapped (x86 ``host_pfn_mapping_level``, v5.19+: a
        walk of the host page table, ``pud_leaf``/``pmd_leaf``).

        Read from the page table, never from the VMA: a THP VMA's pages are 4K
        until a PMD maps them, and a split THP is still one folio. The kernel
        walks locklessly with interrupts off, so no lock is asserted: only the
        caller knows whether the answer can still be trusted (F6).
        """
        self.fp.read(("pte", hva))
        pte = self.ptes.get(hva)
        return PAGE_SIZE if pte is None else pte.size

    def set_pmd(self, haddr: int, head: int, writable: bool, who: str) -> None:
        """Map the compound page ``head`` at ``haddr`` with one huge leaf of its size,
        taking over the caller's reference (``set_pmd_at``, ``do_huge_pmd_anonymous_page``;
        ``set_huge_pte_at`` for a hugetlb page); needs mmap_lock."""
        self._assert_held(who, write=False)
        frame = self.frames[head]
        size = frame.nr_pages * PAGE_SIZE
        if haddr % size or frame.free or frame.nr_pages == 1 or frame.head is not None:
            raise AssertionError(
                f"set_pmd at {haddr:#x}: pfn {head:#x} is no live compound page, or misaligned"
            )
        hvas = range(haddr, haddr + size, PAGE_SIZE)
        if haddr in self.pmds or any(h in self.ptes for h in hvas):
            raise AssertionError(f"set_pmd over a present mapping at {haddr:#x}")
        self.fp.write(("pmd", haddr))
        for i, hva in enumerate(hvas):
            self.fp.write(("pte", hva))
            self.ptes[hva] = HostPte(head + i, writable, size)
        self.pmds[haddr] = head
        self.log.append(f"pmd hva {haddr:#x} -> huge pfn {head:#x}{' W' if writable else ' RO'}")

    def split_pmd(self, haddr: int, who: str) -> None:
        """``__split_huge_pmd_locked`` under the pmd lock (v6.12): ``pmdp_invalidate``,
        one pte per base page (-> head + i, same writability), each holding a
        reference on the folio (``folio_ref_add(folio, HPAGE_PMD_NR - 1)``),
        ``pmd_populate``.

        Only the mapping is split: the folio stays one compound page. Every page
        is still mapped, so it is not queued for a deferred split yet; a later
        unmap of one page queues it (``_take_pte``), and ``split_huge_page``
        splits it (``actors.host.thp.split_huge_page``). Needs mmap_lock
        (callers such as madvise and mprotect hold it for read).
        """
        self._assert_held(who, write=False)
        self.fp.write(("pmd", haddr))
        head = self.pmds.pop(haddr)
        for hva in range(haddr, haddr + HPAGE_SIZE, PAGE_SIZE):
            self.fp.write(("pte", hva))
            self.ptes[hva] = attrs.evolve(self.ptes[hva], size=PAGE_SIZE)
        self.log.append(f"pmd hva {haddr:#x} -> huge pfn {head:#x} split into {HPAGE_PAGES} ptes")
        self.frames.page_ref_add(head, HPAGE_PAGES - 1)

    def collapse_flush(self, haddr: int, who: str) -> dict[int, HostPte]:
        """``pmdp_collapse_flush``: detach the pte table under ``haddr`` (no pte is
        reachable any more, gup-fast included) and flush; the ptes' references
        go to the caller. Needs mmap_lock for write (khugepaged's ``mmap_write_lock``)."""
        self._assert_held(who, write=True)
        if haddr % HPAGE_SIZE or haddr in self.pmds:
            raise AssertionError(f"collapse_flush at {haddr:#x}: misaligned or already huge")
        self.fp.write(("pmd", haddr))
        cleared = {}
        for hva in range(haddr, haddr + HPAGE_SIZE, PAGE_SIZE):
            self.fp.write(("pte", hva))
            if hva in self.ptes:
                cleared[hva] = self.ptes.pop(hva)
        self.log.append(f"pmd hva {haddr:#x}: pte table of {len(cleared)} ptes detached, tlb flushed")
        return cleared

    def collapse_abort(self, haddr: int, detached: dict[int, HostPte], who: str) -> None:
        """``pmd_populate(mm, pmd, pmd_pgtable(_pmd))`` after a failed
        ``__collapse_huge_page_isolate``: put the detached pte table back, each pte
        with its reference. Needs mmap_lock for write."""
        self._assert_held(who, write=True)
        if haddr in self.pmds:
            raise AssertionError(f"collapse_abort at {haddr:#x}: a huge pmd is mapped")
        self.fp.write(("pmd", haddr))
        for hva in sorted(detached):
            self.fp.write(("pte", hva))
            if hva in self.ptes:
                raise AssertionError(f"collapse_abort over a present pte at hva {hva:#x}")
            self.ptes[hva] = detached[hva]
        self.log.append(f"pmd hva {haddr:#x}: pte table of {len(detached)} ptes put back (pmd_populate)")

    def rmap_folio(self, head: int, who: str) -> list[int]:
        """The hvas whose present pte maps a page of the folio ``head``, in order
        (``rmap_walk`` -> ``page_vma_mapped_walk``); needs the rmap lock."""
        self._assert_rmap(who)
        for hva in sorted(self.ptes):
            self.fp.read(("pte", hva))
        return [hva for hva in sorted(self.ptes) if self.frames.compound_head(self.ptes[hva].pfn) == head]
