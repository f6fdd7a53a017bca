"""Oracles: judges of a model state, run after every step.

Each oracle is a pure function ``Model -> Violation | None``. They read the
state the way docs/model.md's "key oracles" do (O1 stale leaf, divergence), and
read the model's record of hardware accesses for corruption. A huge leaf is
judged page by page: each base page it covers against the frame it was made
for and the host pte of that page's own address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from .constants import PAGE_SIZE
from .hostmm import HostPte
from .kvm import Spte
from .model import Model


@attrs.frozen
class Violation:
    """What an oracle found wrong."""

    oracle: str
    message: str


def _pages(model: Model, gfn: int, spte: Spte) -> Iterator[tuple[int, int, int]]:
    """(gfn, pfn, generation) of every base page the leaf at ``gfn`` maps, in order:
    one for a base leaf, each page under a huge one (``Kvm.covered``)."""
    for i, g in enumerate(model.kvm.covered(gfn)):
        yield g, spte.pfn + i, spte.generation if i == 0 else spte.tail_generations[i - 1]


def _host_pte(model: Model, hva: int) -> HostPte | None:
    """The host pte a leaf at ``hva`` is judged against: the present one, or the one a
    migration entry replaced. Until ``remove_migration_ptes`` the page is still the
    one the entry stands for: a migration that finds an extra reference (a pin)
    fails and puts it back, and one that succeeds is judged when the entry is
    replaced by the new page's pte or the old page is freed."""
    return model.mm.ptes.get(hva) or model.mm.migration.get(hva)


def in_window(model: Model) -> bool:
    """Is a host change still being told to KVM? An invalidation is in progress, or a
    2011 host holds the page-table lock around a ``->change_pte`` or
    ``->invalidate_page`` that has not returned (docs/model.md 1.3). The oracles
    that compare leaves with host ptes judge only outside such a window."""
    return model.kvm.in_progress != 0 or model.mm.ptl.owner is not None


def stale_spte(model: Model) -> Violation | None:
    """A leaf maps a frame freed or reused since it was installed (O1), any page of
    a huge leaf included, or a vcpu's TLB entry does.

    KVM holds no reference while a page is mapped (R6), so the only thing
    keeping such a frame is that every host change zaps the leaf and flushes
    the TLBs first (R4). A TLB entry is judged as its leaf is: the guest
    reaches the frame through it just the same (O1).
    """
    kvm, frames = model.kvm, model.frames
    for gfn in sorted(kvm.sptes):
        for g, pfn, generation in _pages(model, gfn, kvm.sptes[gfn]):
            if not frames.is_current(pfn, generation):
                return Violation(
                    "stale_spte",
                    f"spte gfn {g:#x} -> pfn {pfn:#x}, but " + frames.describe(pfn, generation),
                )
    return _stale_tlb_entry(model)


def corruption(model: Model) -> Violation | None:
    """A guest access went through a stale spte: somebody else's memory was touched."""
    if model.kvm.bad_accesses:
        return Violation("corruption", model.kvm.bad_accesses[0])
    return None


def divergence(model: Model) -> Violation | None:
    """With no invalidation in progress, a leaf disagrees with the host pte of its hva
    (each page of a huge leaf with the pte of its own address), or a vcpu's TLB
    entry does."""
    kvm = model.kvm
    if in_window(model):
        return None
    for gfn in sorted(kvm.sptes):
        for g, pfn, _ in _pages(model, gfn, kvm.sptes[gfn]):
            hva = kvm.leaf_hva(g, kvm.sptes[gfn].slot)
            pte = _host_pte(model, hva)
            if pte is None or pte.pfn != pfn:
                host = "not present" if pte is None else f"-> pfn {pte.pfn:#x}"
                return Violation(
                    "divergence",
                    f"spte gfn {g:#x} -> pfn {pfn:#x}, but host pte of hva {hva:#x} is {host}"
                    " and no invalidation is in progress",
                )
    return _diverged_tlb_entry(model)


def writable_spte(model: Model) -> Violation | None:
    """A writable leaf (page by page) or TLB entry over a host pte that is read-only or
    absent (O2).

    Judged outside invalidations: inside one, start() has zapped the range
    (R4) and the host may be half way through its change. A writable leaf
    that survives lets the guest write a page the host write-protected
    (mprotect, KSM, a COW or dirty-logging page).
    """
    kvm = model.kvm
    if in_window(model):
        return None
    for gfn in sorted(kvm.sptes):
        spte = kvm.sptes[gfn]
        if not spte.writable:
            continue
        for g, pfn, _ in _pages(model, gfn, spte):
            hva = kvm.leaf_hva(g, spte.slot)
            pte = _host_pte(model, hva)
            if pte is None or not pte.writable:
                host = "not present" if pte is None else f"read-only -> pfn {pte.pfn:#x}"
                return Violation(
                    "writable_spte",
                    f"spte gfn {g:#x} -> pfn {pfn:#x} is writable, but host pte of hva {hva:#x}"
                    f" is {host} and no invalidation is in progress",
                )
    return _writable_tlb_entry(model)


def spurious_efault(model: Model) -> Violation | None:
    """KVM_RUN failed with -EFAULT although the host's VMA allowed the access then.

    "There is no 'the VMA' ... or none (with the mmap() coming afterwards)":
    a design that decides once, at registration, refuses memory mapped later.
    """
    for gfn, write, allowed in model.kvm.efaults:
        if allowed:
            kind = "write" if write else "read"
            return Violation(
                "spurious_efault",
                f"guest {kind} of gfn {gfn:#x} got -EFAULT, but hva "
                f"{model.kvm.memslot.gfn_to_hva(gfn):#x} had a VMA allowing it",
            )
    return None


def leaked_refs(model: Model) -> Violation | None:
    """At the end of a run, a frame's refcount is not what host ptes and KVM pins explain (O5).

    Every transient reference (gup's, mmu_gather's, migration's isolation)
    must be dropped by then; with notifiers KVM holds none (R6), and a
    pinning design's pins are counted (``pinned_pages`` reports those).
    Device memory holds its driver's one reference and no pte's (3.14).
    """
    if not model.ended:
        return None
    expected: dict[int, int] = {}
    # the base hvas under a huge leaf are no mappings of their own: the leaf holds one reference
    # a special pte (VM_PFNMAP) holds none: its frame's one reference is the driver's
    ptes = [pte for pte in model.mm.ptes.values() if pte.size == PAGE_SIZE and not pte.special]
    for pfn in [*(pte.pfn for pte in ptes + list(model.mm.migration.values())), *model.mm.pmds.values()]:
        # a pte of a compound page holds its reference on the head
        head = model.frames[pfn].head
        pfn = pfn if head is None else head
        expected[pfn] = expected.get(pfn, 0) + 1
    for pfn in model.kvm.pinned.values():
        expected[pfn] = expected.get(pfn, 0) + 1
    for pfn in sorted(model.frames.frames):
        if model.frames[pfn].reserved and not model.frames[pfn].free:
            expected[pfn] = expected.get(pfn, 0) + 1
    for pfn in sorted(model.frames.frames):
        have, want = model.frames[pfn].refcount, expected.get(pfn, 0)
        if have != want:
            what = "leaked" if have > want else "missing"
            return Violation(
                "leaked_refs",
                f"pfn {pfn:#x} has refcount {have} at the end of the run, but host ptes and"
                f" KVM pins explain {want}: {abs(have - want)} reference(s) {what}",
            )
    return None


def pinned_pages(model: Model) -> Violation | None:
    """At the end of a run, KVM pins a frame the host no longer maps at the pinned hva.

    PPC970 keeps gup's reference for the VM's life (no R6): no use after free,
    but the frame can never be freed, migrated or merged, and the guest keeps
    using memory userspace has replaced (divergence).
    """
    if not model.ended:
        return None
    kvm, mm = model.kvm, model.mm
    for gfn in sorted(kvm.pinned):
        pfn, hva = kvm.pinned[gfn], kvm.memslot.gfn_to_hva(gfn)
        pte = mm.ptes.get(hva)
        if pte is None or pte.pfn != pfn:
            host = "not present" if pte is None else f"-> pfn {pte.pfn:#x}"
            return Violation(
                "pinned_pages",
                f"pfn {pfn:#x} stays pinned for gfn {gfn:#x} while host pte of hva {hva:#x} is"
                f" {host}: freed only when the VM is destroyed",
            )
    return None


def lost_dirty(model: Model) -> Violation | None:
    """At the end of a run, a guest write made while dirty logging was on is lost (O3).

    Lost means no page QEMU sent after the write carried it (the bulk stage,
    or a harvest's pages, sent once its ioctl returned), and the page is not
    dirty in the bitmap now either: migration never sends it again, and the
    destination runs with the old contents. Judged at the end rather than at
    each harvest because a late report is no loss (QEMU sends the page again,
    write included); a harvest that misses a write shows up here with the
    write's number. The broken designs keep a writable leaf, or a writable
    TLB entry no flush dropped, after logging starts or after a harvest, so
    the guest writes without faulting and nothing marks the page
    (docs/model.md section 3, dirty-log row).
    """
    if not model.ended:
        return None
    dirty = model.kvm.dirty_log
    for gfn in sorted(dirty.unreported):
        if gfn not in dirty.bitmap:
            write, before = dirty.unreported[gfn]
            after = len(dirty.harvests) - before
            return Violation(
                "lost_dirty",
                f"guest write #{write} to gfn {gfn:#x} (with dirty logging on) is in none of the"
                f" {after} bitmap{'' if after == 1 else 's'} harvested after it, and gfn {gfn:#x}"
                " is not dirty now: migration never sends it again",
            )
    return None


def vrma_psize(model: Model) -> Violation | None:
    """A VRMA leaf maps a larger page than the host page backing it (O4).

    POWER7 tells the hardware the VRMA page size once, at first vcpu run
    (``kvmppc_hv_setup_htab_rma``); an HPTE of that size needs host memory
    physically contiguous over the whole page. If userspace has since backed
    the address with smaller pages, the leaf also maps the frames after the
    host page: somebody else's memory. The host page is what the host page
    table maps the address with (a hugetlb leaf, or a base pte), never the
    VMA's page size alone. Judged outside invalidations, like
    ``writable_spte``, and only for VRMA leaves (none before the VRMA is set
    up); other huge leaves are ``huge_spte``'s.
    """
    kvm, mm = model.kvm, model.mm
    if in_window(model) or kvm.vrma_psize is None:
        return None
    for gfn in sorted(kvm.sptes):
        spte = kvm.sptes[gfn]
        hva = kvm.memslot.gfn_to_hva(gfn)
        host = mm.mapping_size(hva)
        if spte.page_size > host:
            return Violation(
                "vrma_psize",
                f"spte gfn {gfn:#x} -> pfn {spte.pfn:#x} maps a"
                f" {model.frames.size_name(spte.page_size)} page, but hva {hva:#x} is backed by"
                f" {model.frames.size_name(host)} pages: the leaf"
                " covers host memory that is not this page",
            )
    return None


def ksm_write(model: Model) -> Violation | None:
    """A guest write landed in a KSM page, through an spte that survived the merge.

    KSM shares one read-only frame among every mapping whose content it
    found identical (docs/model.md section 3, "KSM merge" row): a write must
    fault and break COW (``wp_page_copy``) first. The merge's
    invalidate_range_start zaps the leaf before the pte is write-protected
    (R4), and a fault that got the page before it must see seq move (R1,
    R2), else a writable leaf survives and the guest silently changes the
    memory of every other mapping of the page. ``writable_spte`` sees the
    leaf; this sees the write itself.
    """
    if model.kvm.ksm_writes:
        return Violation("ksm_write", model.kvm.ksm_writes[0])
    return None


def huge_spte(model: Model) -> Violation | None:
    """A leaf maps a larger page than the host maps its hva with (O4).

    E.g. a huge spte over a transparent huge page the host has split.

    KVM may map a huge leaf only while the host maps the whole range with one
    PMD, and must read that under mmu_lock after the retry check (F6, R5):
    after a split the base pages are unmapped one by one (madvise(DONTNEED))
    and freed when the folio is split, and a surviving huge leaf keeps the
    guest on them. The host mapping size is the host page table's
    (``HostMm.mapping_size``), not the VMA's page size nor the folio's: a
    pte-mapped THP is still one folio. Judged outside invalidations.
    """
    kvm, mm = model.kvm, model.mm
    if in_window(model):
        return None
    for gfn in sorted(kvm.sptes):
        spte = kvm.sptes[gfn]
        if spte.page_size == PAGE_SIZE:
            continue
        hva = kvm.memslot.gfn_to_hva(gfn)
        host = mm.mapping_size(hva)
        if spte.page_size > host:
            gone = [pfn for _, pfn, _ in _pages(model, gfn, spte) if model.frames[pfn].free]
            freed = f"; pfn {', '.join(f'{p:#x}' for p in gone)} under it freed" if gone else ""
            return Violation(
                "huge_spte",
                f"spte gfn {gfn:#x} -> pfn {spte.pfn:#x} maps a {model.frames.size_name(spte.page_size)}"
                f" page, but the host maps hva {hva:#x} with {model.frames.size_name(host)}{freed}",
            )
    return None


# ---- the same judgements of what the vcpus' TLBs cached (docs/model.md 5.1) ----


def _tlb_entry(vcpu: str, gfn: int, pfn: int, model: Model) -> str:
    """How a violation names a TLB entry, saying when no leaf maps that any more."""
    kvm = model.kvm
    leaves = [(g, s) for g, s in sorted(kvm.sptes.items()) if gfn in kvm.covered(g)]
    mapped = any(s.pfn + gfn - g == pfn for g, s in leaves)
    gone = "" if mapped else " (its leaf is gone: zapped, not flushed)"
    return f"{vcpu} TLB entry gfn {gfn:#x} -> pfn {pfn:#x}{gone}"


def _stale_tlb_entry(model: Model) -> Violation | None:
    for vcpu, gfn, entry in model.kvm.tlbs.cached():
        if not model.frames.is_current(entry.pfn, entry.generation):
            return Violation(
                "stale_spte",
                f"{_tlb_entry(vcpu, gfn, entry.pfn, model)}, but "
                + model.frames.describe(entry.pfn, entry.generation),
            )
    return None


def _diverged_tlb_entry(model: Model) -> Violation | None:
    kvm = model.kvm
    for vcpu, gfn, entry in kvm.tlbs.cached():
        hva = kvm.leaf_hva(gfn, entry.slot)
        pte = _host_pte(model, hva)
        if pte is None or pte.pfn != entry.pfn:
            host = "not present" if pte is None else f"-> pfn {pte.pfn:#x}"
            return Violation(
                "divergence",
                f"{_tlb_entry(vcpu, gfn, entry.pfn, model)}, but host pte of hva {hva:#x} is {host}"
                " and no invalidation is in progress",
            )
    return None


def _writable_tlb_entry(model: Model) -> Violation | None:
    kvm = model.kvm
    for vcpu, gfn, entry in kvm.tlbs.cached():
        hva = kvm.leaf_hva(gfn, entry.slot)
        pte = _host_pte(model, hva)
        if entry.writable and (pte is None or not pte.writable):
            host = "not present" if pte is None else f"read-only -> pfn {pte.pfn:#x}"
            return Violation(
                "writable_spte",
                f"{_tlb_entry(vcpu, gfn, entry.pfn, model)} is writable, but host pte of hva"
                f" {hva:#x} is {host} and no invalidation is in progress",
            )
    return None


# ---- several memslots (mmu/memslots.py, docs/model.md section 7) ----


def deleted_memslot(model: Model) -> Violation | None:
    """A leaf or TLB entry installed under a memslot that has been freed (deleted, or
    the old place of a moved one).

    Once ``KVM_SET_USER_MEMORY_REGION`` returns, userspace may unmap the memory;
    no memslot maps its hva any more, so no notifier invalidation will find the
    leaf, and the guest keeps the frame after the host frees it. A correct
    deletion zaps the slot's leaves and flushes the TLBs
    (``kvm_arch_flush_shadow_memslot``) after the INVALID slot is published and
    SRCU readers of the old one are gone, so none is left here.
    """
    memslots = model.kvm.memslots
    if memslots is None or not memslots.freed:
        return None
    kvm = model.kvm
    for gfn in sorted(kvm.sptes):
        spte = kvm.sptes[gfn]
        if spte.slot is not None and memslots.is_freed(spte.slot):
            return Violation(
                "deleted_memslot",
                f"spte gfn {gfn:#x} -> pfn {spte.pfn:#x} outlives {memslots.version(spte.slot).describe()},"
                " freed: no invalidation of its hva will find it",
            )
    for vcpu, gfn, entry in kvm.tlbs.cached():
        if entry.slot is not None and memslots.is_freed(entry.slot):
            return Violation(
                "deleted_memslot",
                f"{_tlb_entry(vcpu, gfn, entry.pfn, model)} outlives"
                f" {memslots.version(entry.slot).describe()}, freed: no invalidation of its hva will find it",
            )
    return None


def invalidate_leak(model: Model) -> Violation | None:
    """At the end of a run, an invalidation KVM counted never ended (``in_progress`` or
    ``mn_active_invalidate_count`` stays raised): every later fault in its range
    retries for ever. It happens when ``range_start`` and ``range_end`` of one
    invalidation see different memslots, so only one of them takes ``mmu_lock``
    and counts: what ``kvm_swap_active_memslots`` waiting for
    ``mn_active_invalidate_count`` prevents. Judged only with several memslots.
    """
    memslots = model.kvm.memslots
    if memslots is None or not model.ended:
        return None
    if model.kvm.in_progress or memslots.mn_active_invalidate_count:
        return Violation(
            "invalidate_leak",
            f"mmu_invalidate_in_progress {model.kvm.in_progress}, mn_active_invalidate_count"
            f" {memslots.mn_active_invalidate_count} at the end of the run: an invalidation's end"
            " did not undo its start, and faults in its range retry for ever",
        )
    return None


def ksm_undone(model: Model) -> Violation | None:
    """A guest read fault broke COW on a KSM page: the merge undone by a read.

    A guest write must break COW on a KSM page; a read must not. A design that
    asks get_user_pages for write on every fault (POWER7 as merged in v3.3,
    which could not yet map a page read-only) breaks COW on guest reads, and the
    merge is undone with nothing written: Avi Kivity's "no ksm for you"
    (``mmu.merges``). ksmd's own ``break_cow`` and host writes are not read faults.
    """
    breaks = model.ksm.read_breaks
    if not breaks:
        return None
    first = breaks[0]
    gfns = model.kvm.memslot.gfns_in(first.hva, first.hva + 1)
    page = f"gfn {gfns[0]:#x}" if gfns else f"hva {first.hva:#x}"
    return Violation(
        "ksm_undone",
        f"{first.thread}'s read fault on {page} broke COW: do_wp_page copied KSM page pfn"
        f" {first.kpage:#x} into a private page, undoing the merge for a guest that only read"
        " (no ksm for you)",
    )


Oracle = Callable[[Model], Violation | None]

#: every oracle by name, in the order they are checked. The page-size oracles
#: come first: a leaf larger than the host's page is the cause, and the stale,
#: diverging or writable pages under it are its consequences.
ORACLES: dict[str, Oracle] = {
    "vrma_psize": vrma_psize,
    "huge_spte": huge_spte,
    "stale_spte": stale_spte,
    "corruption": corruption,
    "divergence": divergence,
    "writable_spte": writable_spte,
    "spurious_efault": spurious_efault,
    "leaked_refs": leaked_refs,
    "pinned_pages": pinned_pages,
    "lost_dirty": lost_dirty,
    "ksm_write": ksm_write,
    "ksm_undone": ksm_undone,
    "deleted_memslot": deleted_memslot,
    "invalidate_leak": invalidate_leak,
}
