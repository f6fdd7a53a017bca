"""The designs of the review thread, as variants of KVM's fault path, selectable by name.

Each is a ``Design`` (``actors.kvm.design``): what KVM does at registration,
on a fault, in its notifier callbacks and for dirty logging. Most differ
from today's KVM (``SeqRetry``) in one or two steps, and say so by
overriding just those.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from mmu import PAGE_SIZE, HostPte

from ..host.gup import get_user_page, get_user_pages, get_user_pages_locked
from ..runtime.context import ActorContext
from .design import Design, Fault, step
from .fault_path import SeqRetry
from .hugepage import HugeLeaves
from .lockless import Power7Barriers, UnsafePrecheck
from .memslot_variants import memslot_designs
from .power7 import Power7Abba, Power7Hpt
from .power7_dirty import Power7DirtyLog
from .vrma import VrmaFault


@attrs.frozen
class SetupTime(SeqRetry):
    """The patch under review: translate every page once, at registration, into
    ``slot_phys[]``; the fault maps what it says and asks the host nothing.

    As v3.1/v3.2 ``book3s_hv.c`` had it, with patch 01/11 of the series (its
    VM_PFNMAP part merged as 9d0ef5ea043d): RAM is pinned at registration,
    device memory translated from ``vm_pgoff`` with no reference, and no MMU
    notifier zaps anything (Book3S HV had none before 342d3db763f2, v3.3).
    So a remap of RAM leaves the guest on the old page, pinned until the VM
    dies (``divergence``, ``pinned_pages``: no use after free), while a remap of
    device memory leaves it on memory the driver has given back (``stale_spte``).
    """

    lock_label: ClassVar[str] = "mmu_lock: map slot_phys[gfn]"

    @step
    async def prepare(self, ctx: ActorContext) -> None:
        """``kvmppc_core_prepare_memory_region`` (v3.1/v3.2) with the reviewed patch:
        under ``mmap_lock`` for read, for each page of the slot, "the VMA" at its
        hva decides. A VM_PFNMAP VMA gives ``pfn = vma->vm_pgoff + offset``, no
        reference (the patch's passthrough slots); anything else is RAM:
        ``hva_to_page`` -> ``get_user_pages_fast(hva, 1, 1)``, whose reference
        ``ram_pginfo`` keeps until ``kvmppc_core_destroy_vm`` ("so it doesn't go
        away underneath us"). A page with no writable VMA is left untranslated.

        Nothing re-translates a page when the host remaps its hva (Avi: "There
        is no 'the VMA' ... remap it under your feet").
        """
        kvm, mm = ctx.model.kvm, ctx.model.mm
        await ctx.down_read(mm.mmap_lock, "kvmppc_core_prepare_memory_region")
        slot = kvm.memslot
        for gfn in range(slot.base_gfn, slot.base_gfn + slot.npages):
            hva = slot.gfn_to_hva(gfn)
            vma = mm.find_vma(hva, ctx.name)
            if vma is not None and vma.pgoff is not None:
                pfn = vma.pgoff + (hva - vma.start) // PAGE_SIZE
                ctx.note(f"VM_PFNMAP vma: pfn = vm_pgoff + offset = {pfn:#x}, no reference")
                kvm.record_translation(gfn, pfn)
                continue
            got = get_user_page(ctx, hva, write=True)
            if got is None:
                continue
            kvm.record_translation(gfn, got[0])
            kvm.keep_page(gfn, got[0])
        ctx.up_read(mm.mmap_lock)

    @step
    async def zap(self, ctx: ActorContext, start: int, end: int) -> int:
        """No MMU notifiers on Book3S HV before v3.3: the generic code counts the
        invalidation, but no HPTE goes."""
        ctx.note("Book3S HV v3.2: no kvm_unmap_hva, nothing zapped")
        return 0

    @step
    async def set_spte_hva(self, ctx: ActorContext, hva: int, pte: HostPte) -> int:
        """No ``change_pte`` on Book3S HV before v3.3 either: the HPTE stays."""
        ctx.note("Book3S HV v3.2: no kvm_set_spte_hva, HPTE kept")
        return 0

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """Map whatever ``slot_phys[]`` says, without asking the host again."""
        f = Fault(gfn, write, ctx.model.kvm.memslot.gfn_to_hva(gfn), attempt=1)
        if not await self.resolve(ctx, f):
            return False
        await self.lock(ctx, f)
        await self.install(ctx, f)
        await self.unlock(ctx, f)
        return True

    @step
    async def resolve(self, ctx: ActorContext, f: Fault) -> bool:
        """``slot_phys[gfn]``, trusted as writable; a page never translated is -EFAULT."""
        f.pfn, f.writable = ctx.model.kvm.cached_translation(f.gfn), True
        if f.pfn is None:
            await ctx.point("kvmppc_book3s_hv_page_fault")
            ctx.note(f"gfn {f.gfn:#x} was not translated at setup: -EFAULT")
            return False
        return True


@attrs.frozen
class NoRetry(SeqRetry):
    """get_user_pages at fault time (as Avi asked), then map under mmu_lock without
    rechecking: breaks R1/R2, an invalidation that runs between the gup and the
    install goes unnoticed."""

    lock_label: ClassVar[str] = "mmu_lock: map spte"

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """Resolve, lock, install, unlock, release: no snapshot, no recheck."""
        f = Fault(gfn, write, ctx.model.kvm.memslot.gfn_to_hva(gfn), attempt=1)
        if not await self.resolve(ctx, f):
            return False
        await self.lock(ctx, f)
        await self.install(ctx, f)
        await self.unlock(ctx, f)
        await self.release(ctx, f)
        return True


@attrs.frozen
class GupInLock(SeqRetry):
    """Take ``mmu_lock`` first, then translate and map in one critical section,
    so that no invalidation can come between gup and the install. It trades
    the race for two lock bugs: ``get_user_pages`` may sleep (it takes
    ``mmap_lock``) under a spinlock, and it nests mmap_lock inside mmu_lock
    while every host operation, through its synchronous notifier callback,
    nests mmu_lock inside mmap_lock: the ABBA deadlock lockdep warns about,
    and which a schedule that interleaves them turns into a hang.
    """

    lock_label: ClassVar[str] = "mmu_lock: then translate"

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """Lock, resolve, install, unlock, release."""
        f = Fault(gfn, write, ctx.model.kvm.memslot.gfn_to_hva(gfn), attempt=1)
        await self.lock(ctx, f)
        if not await self.resolve(ctx, f):
            await self.unlock(ctx, f)
            return False
        await self.install(ctx, f)
        await self.unlock(ctx, f)
        await self.release(ctx, f)
        return True


@attrs.frozen
class MmapLocked(SeqRetry):
    """Hold ``mmap_lock`` for read from before gup until the leaf is installed, and
    check nothing else: no seq snapshot, no recheck. It trusts the lock to keep
    every host change out of the window, which it does not: gup-fast takes the
    page without ``mmap_lock`` (``resolve_fast``), and munmap since v4.20 zaps under
    the read lock it shares (dd2283f2605e), so a fast gup between munmap's
    downgrade and its zap returns a page that is freed once the fault drops its
    reference, behind a leaf nobody zaps. Before v4.20 munmap held the write lock
    throughout and this design was safe against it; against mmap(MAP_FIXED),
    which never downgrades, it still is. (arm64's ``user_mem_abort`` takes
    ``mmap_read_lock`` for its VMA lookup too, but reads ``mmu_invalidate_seq``
    under it and drops it before gup.)
    """

    lock_label: ClassVar[str] = "mmu_lock: map spte"

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """``mmap_read_lock``, resolve, lock, install, unlock both, release: no snapshot,
        no recheck."""
        mm = ctx.model.mm
        f = Fault(gfn, write, ctx.model.kvm.memslot.gfn_to_hva(gfn), attempt=1)
        await ctx.down_read(mm.mmap_lock, "mmap_read_lock")
        if not await self.resolve(ctx, f):
            ctx.up_read(mm.mmap_lock)
            return False
        await self.lock(ctx, f)
        await self.install(ctx, f)
        await self.unlock(ctx, f)
        ctx.up_read(mm.mmap_lock)
        await self.release(ctx, f)
        return True

    @step
    async def resolve_slow(self, ctx: ActorContext, f: Fault) -> bool:
        """The slow path under the ``mmap_lock`` the fault already holds
        (``get_user_pages_remote`` with ``locked``, ``__get_user_pages_locked``):
        taking it again here (``get_user_pages_unlocked``) would be a recursive
        ``down_read``, which a writer queued in between turns into a deadlock."""
        await ctx.point("get_user_pages")
        got = await get_user_pages_locked(ctx, f.hva, f.write)
        if got is None:
            return False
        f.pfn, f.writable = got
        return True


@attrs.frozen
class Pin(SeqRetry):
    """PPC970 ``kvmppc_get_guest_page`` on the first H_ENTER of a page: gup for
    write, keep the reference in ``slot_phys[]`` (KVMPPC_GOT_PAGE) and map it
    for good. It breaks R6 on purpose: with no way to take access back, the
    pin is what keeps the frame from being freed under the guest. Its notifier
    callbacks zap nothing (``kvm->arch.using_mmu_notifiers == 0``), so a remap
    leaves the guest on the old frame (divergence) and the pinned frame is
    freed only when the VM is destroyed.
    """

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """The pinned page, pinned now if this is its first fault; mapped writable."""
        kvm = ctx.model.kvm
        f = Fault(gfn, True, kvm.memslot.gfn_to_hva(gfn), attempt=1)
        f.pfn = kvm.pinned_pfn(gfn)
        if f.pfn is None:
            got = await get_user_pages(ctx, f.hva, True)
            if got is None:
                return False
            f.pfn = got[0]
            await ctx.spin_lock(kvm.mmu_lock, "slot_phys_lock: pin, kvmppc_h_enter")
            kvm.pin_page(gfn, f.pfn, ctx.name)
        else:
            await ctx.spin_lock(kvm.mmu_lock, "kvmppc_h_enter: map slot_phys[gfn]")
        f.writable = True
        await self.install(ctx, f)
        await self.unlock(ctx, f)
        return True

    @step
    async def zap(self, ctx: ActorContext, start: int, end: int) -> int:
        """``kvm_unmap_hva_range_hv`` does nothing without MMU notifiers: the generic
        code still counts the invalidation, but no leaf goes."""
        ctx.note("kvm_unmap_hva_range: !using_mmu_notifiers (PPC970), nothing zapped")
        return 0

    @step
    async def set_spte_hva(self, ctx: ActorContext, hva: int, pte: HostPte) -> int:
        """A 2011 host's ``change_pte``: ``kvm_set_spte_hva`` returns at once without
        MMU notifiers (book3s_64_mmu_hv.c, v3.3); the pinned leaf stays."""
        ctx.note("kvm_set_spte_hva: !using_mmu_notifiers (PPC970), leaf kept")
        return 0


@attrs.frozen
class WriteProtectIgnored(SeqRetry):
    """Dirty logging that keeps every leaf as it is."""

    @step
    async def write_protect(self, ctx: ActorContext, gfns: tuple[int, ...]) -> int:
        """A writable leaf goes on taking guest writes that fault nowhere, so nothing
        marks their pages dirty."""
        if gfns:
            ctx.note("write protection ignored: writable leaves stay writable")
        return 0


@attrs.frozen
class WriteProtectReadOnly(SeqRetry):
    """Dirty logging as x86 does it: leaves stay, made read-only; a write faults and
    the fault makes the leaf writable again, marking the page dirty (F7)."""

    @step
    async def write_protect(self, ctx: ActorContext, gfns: tuple[int, ...]) -> int:
        """``kvm_mmu_write_protect_pt_masked`` -> ``spte_write_protect``: clear the write
        bit of each leaf; vcpus may keep writable TLB entries until the ioctl's flush."""
        kvm = ctx.model.kvm
        return sum(kvm.wrprotect_gfn(gfn, ctx.name) for gfn in gfns)


#: every design by name, in the order the thread discusses them
DESIGNS: dict[str, Design] = {
    d.name: d
    for d in (
        SetupTime(
            "setup_time",
            "the patch under review: translate once at registration, pinning RAM,"
            " device memory from vm_pgoff; no notifier",
        ),
        NoRetry("no_retry", "get_user_pages per page at fault time, no seq/in_progress recheck"),
        SeqRetry("seq_retry", "per page at fault time, seq snapshot + recheck under mmu_lock (KVM today)"),
        GupInLock(
            "gup_in_lock",
            "get_user_pages and map under mmu_lock: no window, but a sleeping call in atomic"
            " context and an ABBA lock order",
        ),
        MmapLocked(
            "mmap_locked",
            "get_user_pages and map under mmap_lock for read, no seq/in_progress recheck:"
            " trusts the lock to keep munmap out",
        ),
        Pin("pin", "PPC970: pin each page when first given to the guest, never release, ignore notifiers"),
        Power7Hpt(
            "power7_hpt",
            "POWER7 HPT: H_ENTER and the fault under HPTE and rmap lock bits, lockless"
            " mmu_notifier_retry, never mmu_lock",
        ),
        Power7Hpt(
            "always_write",
            "POWER7 HPT as merged in v3.3: every fault asks get_user_pages for write (guest"
            " reads break COW)",
            always_write=True,
        ),
        Power7Abba(
            "power7_abba",
            "POWER7 HPT whose unmap waits for the HPTE lock holding the rmap lock: ABBA"
            " with the fault path",
        ),
        VrmaFault(
            "vrma_once",
            "POWER7: VRMA page size read once at first vcpu run and trusted at fault time",
            checked=False,
        ),
        VrmaFault(
            "vrma_checked",
            "POWER7: VRMA page size from first vcpu run, re-checked against the host page"
            " at fault time (-EFAULT if larger)",
            checked=True,
        ),
        WriteProtectIgnored(
            "wp_ignore",
            "dirty logging keeps writable sptes: no write protection when logging starts or"
            " at each harvest",
        ),
        SeqRetry(
            "wp_zap_refault",
            "the thread's proposal for POWER7 (not what was merged): dirty logging drops"
            " access (HPTE absent) and re-faults with write, marking the page dirty",
        ),
        Power7DirtyLog(
            "power7_dirty",
            "POWER7 as merged in v3.6: the HPTEs' hardware C bits harvested, each HPTE made"
            " absent briefly with tlbie to clear C and valid again, no re-fault",
        ),
        WriteProtectReadOnly(
            "wp_readonly",
            "x86: dirty logging makes leaves read-only and flushes after mmu_unlock; a write"
            " fault makes the leaf writable again, marking the page dirty",
        ),
        HugeLeaves(
            "level_early",
            "huge leaves: host mapping level read when the fault starts, before the seq"
            " snapshot (breaks F6/R5)",
            locked=False,
        ),
        HugeLeaves(
            "level_locked",
            "huge leaves: host_pfn_mapping_level read under mmu_lock after the retry check"
            " (x86 today)",
            locked=True,
        ),
        # the lockless pre-check, judged in weak memory (docs/model.md 6.5)
        UnsafePrecheck(
            "unsafe_precheck",
            "x86 since v6.9: mmu_invalidate_retry_gfn_unsafe before gup, no lock and no"
            " barrier, then the check under mmu_lock",
            base="seq_retry",
        ),
        UnsafePrecheck(
            "unsafe_precheck_no_wmb",
            "unsafe_precheck whose invalidate_range_end drops the smp_wmb between seq++"
            " and in_progress--",
            wmb=False,
            base="seq_retry",
        ),
        UnsafePrecheck(
            "unsafe_precheck_swapped",
            "unsafe_precheck whose invalidate_range_end drops in_progress before it bumps seq",
            swapped=True,
            base="seq_retry",
        ),
        # POWER7's lockless mmu_notifier_retry without one of its barriers (docs/model.md 6.5)
        Power7Barriers(
            "power7_hpt_no_rmb",
            "power7_hpt whose mmu_notifier_retry drops the smp_rmb between the count and seq",
            rmb=False,
            base="power7_hpt",
        ),
        Power7Barriers(
            "power7_hpt_no_wmb",
            "power7_hpt whose invalidate_range_end drops the smp_wmb between seq++ and in_progress--",
            wmb=False,
            base="power7_hpt",
        ),
        Power7Barriers(
            "power7_hpt_swapped",
            "power7_hpt whose invalidate_range_end drops in_progress before it bumps seq",
            swapped=True,
            base="power7_hpt",
        ),
        Power7Barriers(
            "power7_hpt_no_release",
            "power7_hpt whose unlock_rmap drops its release barrier (__clear_bit, not __clear_bit_unlock)",
            release_barrier=False,
            base="power7_hpt",
        ),
        Power7Barriers(
            "power7_hpt_no_eieio",
            "power7_hpt whose H_ENTER and fault path drop the eieio between hptep[1] = r and __unlock_hpte",
            eieio=False,
            base="power7_hpt",
        ),
        *memslot_designs(),
    )
}


def design_named(design: Design | str) -> Design:
    """``design`` itself, or the catalog design of that name.

    Raises:
        KeyError: no catalog design has that name.
    """
    return design if isinstance(design, Design) else DESIGNS[design]
