"""Host operations as step sequences an actor awaits, in the kernel's order.

Each operation is written once, in the order of docs/model.md section 3: the lock
that keeps the VMAs stable, ``mmu_notifier_invalidate_range_start`` (the
caller blocks until KVM has zapped and flushed its sptes: R2, R4), the pte
changes, the TLB flush, the refcount drops (inside the window when the
mmu_gather batch fills, else in ``tlb_finish_mmu`` after end: KVM must be
clean at the return of start either way), ``invalidate_range_end`` (seq++
before in_progress--: R3), then the VMA changes and late frees. Scenarios
compose them; page migration, which walks the rmap instead of holding
``mmap_lock``, lives in ``actors.host.migrate``.
"""

from __future__ import annotations

from collections.abc import Callable

from mmu import PAGE_SIZE, HostPte, Vma
from mmu.constants import HPAGE_SIZE

from ..runtime.context import ActorContext
from .notifier import invalidate_end, invalidate_start

Zap = Callable[[int, str], HostPte]


async def zap_range(
    ctx: ActorContext,
    start: int,
    end: int,
    *,
    after_end: str,
    late_free: bool = False,
    zap: Zap | None = None,
) -> None:
    """``unmap_vmas``/``unmap_single_vma`` between start and end, then the puts.

    The caller holds what keeps the VMA stable. ``late_free`` puts the pages in
    ``tlb_finish_mmu`` after end, otherwise the full mmu_gather batch puts them
    inside the window (the harder case for KVM); either way the CPU TLB is
    flushed before the pages are freed (``tlb_flush_mmu``: ``tlb_flush_mmu_tlbonly``
    then ``tlb_batch_pages_flush``; v6.12's ``unmap_region`` and
    ``zap_page_range_single``). Returns in the step ``after_end``.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    clear = zap or mm.clear_pte
    await invalidate_start(ctx, start, end, resume="zap_pte_range: ptep_get_and_clear")
    cleared = [clear(h, ctx.name) for h in range(start, end, PAGE_SIZE) if h in mm.ptes]
    # a special pte (VM_PFNMAP) has no page to put: vm_normal_page() is NULL (3.14)
    cleared = [pte for pte in cleared if not pte.special]
    if not late_free:
        await ctx.point("tlb_flush_mmu: put_page")
        for pte in cleared:
            frames.put_page(pte.pfn)
        await invalidate_end(ctx, start, end, resume=after_end)
        return
    await invalidate_end(ctx, start, end, resume="tlb_finish_mmu: flush, put_page")
    for pte in cleared:
        frames.put_page(pte.pfn)
    await ctx.point(after_end)


async def munmap(ctx: ActorContext, start: int, end: int, *, late_free: bool = False) -> bool:
    """``munmap(start, end - start)`` as the host's era does it (``Model.era``; docs/model.md 3.1).

    Since v4.20 (dd2283f2605e; v6.12: ``do_vmi_align_munmap`` ->
    ``vms_gather_munmap_vmas``, ``vms_complete_munmap_vmas``): under
    ``mmap_lock`` for write, split the VMAs at the edges and detach them, then
    ``mmap_write_downgrade``; under the read lock, ``unmap_vmas`` (start, zap,
    the puts, end: ``vms_clear_ptes``), ``remove_vma``, ``mmap_read_unlock``.
    Readers run again from the downgrade on: a slow gup finds no VMA, a fast
    gup may still find the ptes until the zap. Before v4.20, as on the 2011
    host (v3.1-v3.5 ``do_munmap``: ``detach_vmas_to_be_unmapped``,
    ``unmap_region``, ``remove_vma_list``), all of it runs under the write
    lock. The first step (the write lock, the split, the detach and, since
    v4.20, the downgrade) is one: nobody can take ``mmap_lock`` before the
    downgrade, and lockless walkers do not look at VMAs.

    Returns False (nothing done) if no VMA overlaps the range.
    """
    mm = ctx.model.mm
    downgrade = ctx.model.era.munmap_downgrades
    first = (
        "do_vmi_align_munmap: mmap_write_lock, vms_gather_munmap_vmas, mmap_write_downgrade"
        if downgrade
        else "do_munmap: mmap_write_lock, detach_vmas_to_be_unmapped"
    )
    await ctx.down_write(mm.mmap_lock, first)
    hit = mm.vmas_in(start, end, ctx.name)
    if not hit:
        ctx.note(f"no vma in {start:#x}-{end:#x}: nothing to unmap")
        ctx.up_write(mm.mmap_lock)
        return False
    for vma in hit:  # vma_split at the edges, before anything is unmapped
        lo, hi = max(vma.start, start), min(vma.end, end)
        if (lo, hi) != (vma.start, vma.end):
            edges = [(vma.start, lo), (lo, hi), (hi, vma.end)]
            mm.change_vma(
                vma, tuple(vma.piece(a, b) for a, b in edges if a < b), ctx.name
            )
        mm.detach_vma(vma.piece(lo, hi), ctx.name)
    if downgrade:
        ctx.downgrade_write(mm.mmap_lock)
        ctx.note("mmap_write_downgrade: readers may run, the vmas are gone")
    ctx.note(f"unmap_region {start:#x}-{end:#x}")
    after_end = (
        "vms_complete_munmap_vmas: remove_vma, mmap_read_unlock"
        if downgrade
        else "remove_vma_list, mmap_write_unlock"
    )
    await zap_range(
        ctx,
        start,
        end,
        after_end=after_end,
        late_free=late_free,
        zap=mm.zap_pte if downgrade else mm.clear_pte,
    )
    if downgrade:
        ctx.up_read(mm.mmap_lock)
    else:
        ctx.up_write(mm.mmap_lock)
    return True


async def mmap(ctx: ActorContext, start: int, end: int, prot: str = "rw") -> None:
    """``mmap(start, ..., MAP_FIXED_NOREPLACE)`` into a hole: one step, no notifier,
    since nothing was mapped; pages are faulted in lazily."""
    mm = ctx.model.mm
    await ctx.down_write(mm.mmap_lock, "do_mmap: mmap_write_lock, mmap_region")
    mm.insert_vma(Vma(start, end, prot), ctx.name)
    ctx.up_write(mm.mmap_lock)


async def mmap_fixed(
    ctx: ActorContext,
    hva: int,
    *,
    prot: str | None = None,
    page_size: int | None = None,
) -> bool:
    """``mmap(MAP_FIXED)`` over the VMA holding ``hva``, same range, lazily populated.

    MAP_FIXED unmaps the old range inside the same ``mmap_lock`` hold, which it
    never downgrades, unlike munmap, in either era of the model (v6.12
    ``__mmap_region``: ``vms_gather_munmap_vmas``, ``vms_clean_up_area`` ->
    ``unmap_region``: start, zap, end, ``free_pgtables``, ``tlb_finish_mmu``;
    before, ``do_munmap``, which downgrades only for the munmap syscall): a slow
    gup cannot run inside the window, gup-fast can. The old frames are freed
    inside the invalidation window, as when the mmu_gather batch fills.
    ``prot`` and ``page_size`` default to the old VMA's. Returns False
    (nothing done) if no VMA holds ``hva``.
    """
    mm = ctx.model.mm
    await ctx.down_write(mm.mmap_lock, "do_mmap(MAP_FIXED): mmap_write_lock")
    old = mm.find_vma(hva, ctx.name)
    if old is None:
        ctx.note(f"no vma at {hva:#x}: nothing to remap")
        ctx.up_write(mm.mmap_lock)
        return False
    ctx.note(f"unmap vma {old.start:#x}-{old.end:#x} (do_vmi_munmap)")
    await zap_range(ctx, old.start, old.end, after_end="remove_vma")
    mm.remove_vma(old, ctx.name)
    await ctx.point("mmap_region: new vma, mmap_write_unlock")
    new = Vma(old.start, old.end, prot or old.prot, page_size or old.page_size)
    mm.insert_vma(new, ctx.name)
    ctx.up_write(mm.mmap_lock)
    return True


async def mprotect_readonly(ctx: ActorContext, start: int, end: int) -> bool:
    """``mprotect(start, end - start, PROT_READ)`` within one VMA, in v6.12's order.

    ``mprotect_fixup`` splits the VMA and clears VM_WRITE first (gup, under
    ``mmap_lock`` for read, cannot see the gap); ``change_protection`` ->
    ``change_pmd_range`` then calls start lazily, at the first present pte,
    write-protects each pte (``ptep_modify_prot_start/commit``) and calls end;
    the TLB is flushed after end (``tlb_finish_mmu`` in ``do_mprotect_pkey``
    since v6.0; ``flush_tlb_range`` at the end of ``change_protection_range``
    from v3.13, when start/end moved into ``change_pmd_range``). Before v3.13
    ``mprotect_fixup`` bracketed the whole ``change_protection``, whose
    ``flush_tlb_range`` came before end. No reference changes hands. Returns
    False if no VMA holds the whole range.
    """
    mm = ctx.model.mm
    await ctx.down_write(mm.mmap_lock, "do_mprotect_pkey: mmap_write_lock")
    vma = mm.find_vma(start, ctx.name)
    if vma is None or end > vma.end:
        ctx.note(f"{start:#x}-{end:#x} is not inside one vma: -ENOMEM")
        ctx.up_write(mm.mmap_lock)
        return False
    edges = [(vma.start, start, vma.prot), (start, end, "r"), (end, vma.end, vma.prot)]
    mm.change_vma(vma, tuple(vma.piece(a, b, p) for a, b, p in edges if a < b), ctx.name)
    present = [h for h in range(start, end, PAGE_SIZE) if mm.follow_pte(h, ctx.name) is not None]
    if not present:
        ctx.note("change_protection: no present pte, no notifier")
        ctx.up_write(mm.mmap_lock)
        return True
    await invalidate_start(
        ctx, start, end, resume="change_pte_range: ptep_modify_prot_commit"
    )
    for hva in present:
        mm.wrprotect_pte(hva, ctx.name)
    await invalidate_end(ctx, start, end, resume="tlb_finish_mmu, mmap_write_unlock")
    ctx.note("cpu tlb flushed for the range")
    ctx.up_write(mm.mmap_lock)
    return True


async def madvise_dontneed(
    ctx: ActorContext, start: int, end: int, *, late_free: bool = False
) -> None:
    """``madvise(MADV_DONTNEED)`` (``zap_page_range_single``, v6.12) under ``mmap_lock``
    for read only: ``lru_add_drain``, ``tlb_gather_mmu``, start, zap, end,
    ``tlb_finish_mmu`` (flush, then the puts). A concurrent fault may run inside the window (it holds the
    same lock for read), so only KVM's seq/in_progress check keeps it honest (R1, R2);
    the next touch of an anonymous page finds a fresh zeroed one."""
    mm = ctx.model.mm

    def zap(hva: int, who: str) -> HostPte:
        # zap_pmd_range: a huge pmd only partly in range is split first (__split_huge_pmd);
        # one the range covers is zapped whole (zap_huge_pmd, from its first address).
        # XX: the split's own nested start/end are left out: the outer start has
        # already zapped KVM's leaves over the range, a huge one whole.
        haddr = hva - hva % HPAGE_SIZE
        if mm.pmd_mapped(hva) and not (start <= haddr and haddr + HPAGE_SIZE <= end):
            mm.split_pmd(haddr, who)
        return mm.zap_pte(hva, who)

    await ctx.down_read(mm.mmap_lock, "madvise(MADV_DONTNEED): mmap_read_lock")
    ctx.note("lru_add_drain; tlb_gather_mmu")
    await zap_range(
        ctx, start, end, after_end="mmap_read_unlock", late_free=late_free, zap=zap
    )
    ctx.up_read(mm.mmap_lock)
