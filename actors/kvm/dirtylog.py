"""KVM's dirty-log ioctls, run in the thread that calls them (QEMU's migration thread).

    "Does this apply to kvm-internal write protection, like we do for the
    framebuffer and live migration? ... removing access for live migration
    is painful."  (Avi Kivity, 2011-11-21)

The invariant (KERNEL.md section 3, dirty-log row): every page is either
dirty in the bitmap or write-protected, so a guest write either is already
logged or faults, and the fault logs it before the write lands (F7). Both
ioctls write-protect through the design's hook, in one ``mmu_lock`` critical
section with the change of the bitmap, then flush.

XX: TLBs are not modelled, so a zap takes effect in its own step and the
flush after ``mmu_unlock`` is only a trace line. The window it leaves (a
vcpu writing through a stale TLB entry) only concerns pages the same harvest
reported, which QEMU copies after the ioctl returns: nothing is lost there.
XX: ``slots_lock`` and the memslot swap (SRCU) of KVM_SET_USER_MEMORY_REGION
are folded into the ``mmu_lock`` section: a fault reads the logging flag
under ``mmu_lock`` when it installs, as if it held the new memslot.
"""

from __future__ import annotations

from collections.abc import Callable

from ..runtime.context import ActorContext

#: a design's write protection of gfns for dirty logging, called under mmu_lock
#: (``kvm_arch_mmu_enable_log_dirty_pt_masked``); returns how many leaves changed
WriteProtect = Callable[[ActorContext, tuple[int, ...]], int]


def wp_zap(ctx: ActorContext, gfns: tuple[int, ...]) -> int:
    """POWER7 as Paul describes it: "remove access to the page, and then when we get a
    fault on the page, request write access" (``kvmppc_unmap_hpte``: HPTE absent, tlbie).

    The next guest access faults; a write fault gets a writable leaf, which
    marks the page dirty as it is installed (F7). x86 write-protects the leaf
    instead (``kvm_mmu_write_protect_pt_masked``); mainline Book3S HV HPT
    keeps its HPTEs and reads their C bits (``kvm_test_clear_dirty_npages``,
    absent + tlbie so C is stable), which the model does not have.
    """
    kvm = ctx.model.kvm
    return sum(kvm.zap_gfn(gfn, ctx.name) for gfn in gfns)


def wp_ignore(ctx: ActorContext, gfns: tuple[int, ...]) -> int:
    """Keep every leaf as it is: a writable one goes on taking guest writes that
    fault nowhere, so nothing marks their pages dirty."""
    if gfns:
        ctx.note("write protection ignored: writable leaves stay writable")
    return 0


def _slot_gfns(ctx: ActorContext) -> tuple[int, ...]:
    slot = ctx.model.kvm.memslot
    return tuple(range(slot.base_gfn, slot.base_gfn + slot.npages))


async def enable_dirty_logging(ctx: ActorContext, protect: WriteProtect) -> None:
    """``KVM_SET_USER_MEMORY_REGION`` adding ``KVM_MEM_LOG_DIRTY_PAGES`` (QEMU
    ``memory_global_dirty_log_start`` -> ``kvm_log_start``): ``kvm_commit_memory_region``
    -> ``kvm_mmu_slot_apply_flags`` write-protects the whole slot under mmu_lock,
    then ``kvm_flush_remote_tlbs_memslot``."""
    kvm = ctx.model.kvm
    await ctx.spin_lock(kvm.mmu_lock, "kvm_mmu_slot_apply_flags: mmu_lock, write-protect the slot")
    kvm.enable_dirty_logging(ctx.name)
    if protect(ctx, _slot_gfns(ctx)):
        ctx.note("kvm_flush_remote_tlbs_memslot")
    ctx.spin_unlock(kvm.mmu_lock)


async def get_dirty_log(ctx: ActorContext, protect: WriteProtect) -> tuple[int, ...]:
    """``KVM_GET_DIRTY_LOG`` (``kvm_get_dirty_log_protect``): under mmu_lock, for each
    bitmap word ``mask = xchg(word, 0)`` then ``kvm_arch_mmu_enable_log_dirty_pt_masked``;
    unlock; flush if anything was dirty; ``copy_to_user``. Returns the dirty gfns."""
    kvm = ctx.model.kvm
    await ctx.spin_lock(kvm.mmu_lock, "kvm_get_dirty_log_protect: mmu_lock, xchg, write-protect")
    mask = kvm.get_dirty_log(ctx.name)
    protect(ctx, mask)
    ctx.spin_unlock(kvm.mmu_lock)
    if mask:
        ctx.note("kvm_flush_remote_tlbs_memslot")
    ctx.note("copy_to_user(log->dirty_bitmap)")
    return mask
