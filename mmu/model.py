"""The whole state raced over, and the event log every step writes to."""

from __future__ import annotations

import attrs

from .constants import PAGE_SIZE as PAGE_SIZE
from .era import Era
from .footprint import Access, Footprint
from .frames import FrameTable
from .hostmm import HostMm, Vma
from .hpt import Hpt
from .kvm import Kvm, Memslot
from .merges import KsmLedger

#: where the guest's RAM sits in the VMM's address space
GUEST_RAM_HVA = 0x40000000
#: the first pfn handed out; far from gfns so that traces never confuse the two
FIRST_PFN = 0x100


@attrs.frozen
class Region:
    """A run of guest pages in the layout ``Model.build_regions`` makes.

    ``mapped=False`` is a hole: no VMA at registration, userspace may mmap it later.
    """

    npages: int = attrs.field(validator=attrs.validators.gt(0))
    prot: str = attrs.field(default="rw", validator=attrs.validators.in_(("r", "rw")))
    mapped: bool = True
    populated: bool = True
    #: the VMA's page size (``vma_kernel_pagesize``): larger than a base page, the
    #: region is hugetlb memory, populated with compound pages of that size, each
    #: mapped by one huge leaf (``hugetlb_fault``)
    page_size: int = attrs.field(default=PAGE_SIZE, validator=attrs.validators.ge(PAGE_SIZE))
    #: device memory: a ``VM_PFNMAP`` VMA over frames a driver owns, mapped at once
    #: by ``remap_pfn_range`` with special ptes (docs/model.md 3.14)
    pfnmap: bool = False

    @page_size.validator
    def _whole_pages(self, attribute: attrs.Attribute, value: int) -> None:
        if value % PAGE_SIZE or (self.npages * PAGE_SIZE) % value:
            raise ValueError(f"'page_size' must divide the region into whole pages (got {value:#x})")


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
    #: every actor the run waits for has finished: end-of-run oracles may judge
    ended: bool = False
    #: the host kernel whose notifier protocol the host operations follow (mmu/era.py)
    era: Era = Era.TODAY
    #: POWER7's HPTEs and rmap lock bits over ``kvm`` (the ``power7_*`` designs)
    hpt: Hpt = attrs.field(default=attrs.Factory(lambda self: Hpt(self.kvm), takes_self=True))
    #: what KSM merged and what undid it (the bench's record)
    ksm: KsmLedger = attrs.field(default=attrs.Factory(lambda self: KsmLedger(self.fp), takes_self=True))

    @classmethod
    def build(cls, *, npages: int = 1, nframes: int = 8, era: Era = Era.TODAY) -> Model:
        """Guest RAM of ``npages`` at gfn 0, backed by one populated rw VMA, on a
        host of ``era``.

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
        return cls(log, frames, mm, kvm, fp, era=era)

    @classmethod
    def build_regions(cls, *regions: Region, nframes: int = 8, scale: int = 1) -> Model:
        """Guest RAM at gfn 0 laid out as ``regions``: one VMA per mapped region.

        "There is no 'the VMA'": a memslot may span several VMAs, or holes.
        ``scale`` is ``FrameTable.scale``: what a model byte stands for.
        """
        if not regions:
            raise ValueError("'regions' must not be empty")
        log: list[str] = []
        fp = Footprint()
        frames = FrameTable.with_frames(FIRST_PFN, nframes, log, fp)
        frames.scale = scale
        mm = HostMm(frames, log, fp)
        npages = sum(r.npages for r in regions)
        kvm = Kvm(frames, log, Memslot(0, npages, GUEST_RAM_HVA), fp)
        setup = "setup"
        mm.mmap_lock.acquire(setup, write=True)
        hva = GUEST_RAM_HVA
        for region in regions:
            end = hva + region.npages * PAGE_SIZE
            if region.mapped and region.pfnmap:
                vma = Vma(hva, end, region.prot, pgoff=frames.alloc_device(region.npages))
                mm.insert_vma(vma, setup)
                mm.remap_pfn_range(vma, setup)
            elif region.mapped:
                if hva % region.page_size:
                    raise ValueError(
                        f"a region of {region.page_size:#x} pages must start aligned (at {hva:#x})"
                    )
                mm.insert_vma(Vma(hva, end, region.prot, region.page_size), setup)
                for page in range(hva, end, region.page_size) if region.populated else ():
                    if region.page_size == PAGE_SIZE:
                        mm.set_pte(page, frames.alloc_page(), "w" in region.prot, setup)
                    else:
                        head = frames.alloc_compound(region.page_size // PAGE_SIZE)
                        mm.set_pmd(page, head, "w" in region.prot, setup)
            hva = end
        mm.mmap_lock.release(setup, write=True)
        log.clear()
        fp.clear()
        return cls(log, frames, mm, kvm, fp)

    def kvm_run_efault(self, gfn: int, *, write: bool) -> None:
        """KVM_RUN returns -EFAULT for ``gfn``: record whether the host's VMA at that
        moment allowed the access (a design that refuses an allowed access is wrong).
        With several memslots, a gfn no memslot holds is emulated MMIO instead
        (``KVM_EXIT_MMIO``), no error."""
        memslots = self.kvm.memslots
        if memslots is not None:
            self.fp.read(("kvm", "memslots"))
            slot = memslots.find(gfn)
            if slot is None:
                self.log.append(f"KVM_RUN returns KVM_EXIT_MMIO: no memslot holds gfn {gfn:#x}")
                return
        hva = self.kvm.memslot.gfn_to_hva(gfn) if memslots is None or slot is None else slot.gfn_to_hva(gfn)
        self.fp.read(("vmas",))
        self.fp.write(("kvm", "efaults"))
        vma = next((v for v in self.mm.vmas if v.contains(hva)), None)
        allowed = vma is not None and (not write or "w" in vma.prot)
        self.kvm.efaults.append((gfn, write, allowed))
        self.log.append("KVM_RUN returns -EFAULT to userspace")

    def end_run(self) -> None:
        """Every actor the run waits for has finished: end-of-run oracles now judge.

        Called by the runtime after the last step; idempotent.
        """
        if self.ended:
            return
        self.fp.write(("run", "ended"))
        if self.kvm.memory is not None:
            self.kvm.memory.drain()
        self.ended = True
        self.log.append("end of run: every actor finished")

    def drain_footprint(self) -> Access:
        """Return and forget what was read and written since the last call."""
        return self.fp.drain()

    def drain_log(self) -> tuple[str, ...]:
        """Return and forget what happened since the last call."""
        lines = tuple(self.log)
        self.log.clear()
        return lines
