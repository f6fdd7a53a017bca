"""KVM with several memslots: the ``memslot_retry`` design (x86, v6.8 and later).

Three mechanisms a single-slot world does not need, each a named step a
variant may replace (docs/model.md section 7):

- The fault path runs inside ``srcu_read_lock(&kvm->srcu)`` (x86
  ``vcpu_run`` holds it from the VM exit until it enters the guest again), looks
  the gfn's memslot up, retries when that slot is ``KVM_MEMSLOT_INVALID``
  (``kvm_faultin_pfn``), and rechecks with the range-based
  ``mmu_invalidate_retry_gfn`` (``is_page_fault_stale``): only an invalidation
  whose accumulated gfn range covers the faulting gfn, or a moved seq, sends it
  back.
- KVM's notifier callbacks count themselves in ``mn_active_invalidate_count``
  (52ac8b358b0c, v5.15) and take ``mmu_lock`` only when the hva range meets a
  memslot (071064f14d87, v5.15), accumulating the gfn range there
  (``kvm_mmu_invalidate_range_add``, v6.8).
- ``KVM_SET_USER_MEMORY_REGION`` deleting or moving a slot (``kvm_set_memslot``):
  publish the slot INVALID (``kvm_invalidate_memslot`` ->
  ``kvm_swap_active_memslots``, which waits for ``mn_active_invalidate_count`` to
  drop to zero, then ``synchronize_srcu_expedited``), zap its leaves and flush
  (``kvm_arch_flush_shadow_memslot``), publish the array without it (or with
  it at its new place), wait for SRCU again, free the old slot.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from mmu import Slot

from ..runtime.context import ActorContext
from . import refault
from .design import Fault, step
from .fault_path import SeqRetry


@attrs.define
class SlotFault(Fault):
    """A fault that knows which memslot version it found (``fault->slot``)."""

    slot: Slot | None = None
    #: the next attempt waits for the INVALID slot to be replaced (RET_PF_RETRY, re-fault)
    waits_slot: bool = False


@attrs.frozen
class MemslotChange:
    """``struct kvm_userspace_memory_region`` as ``kvm_set_memory_region`` classifies it:
    ``KVM_MR_DELETE`` (``npages`` 0), ``KVM_MR_MOVE`` (a new ``base_gfn``) or
    ``KVM_MR_CREATE`` (a new slot id)."""

    kind: str = attrs.field(validator=attrs.validators.in_(("delete", "move", "create")))
    slot: int
    base_gfn: int = 0
    npages: int = 1
    hva: int = 0


@attrs.frozen
class MemslotRetry(SeqRetry):
    """Several memslots under SRCU, the INVALID flag, range-based retry."""

    lock_label: ClassVar[str] = "mmu_lock: is_page_fault_stale, map"
    retry_note: ClassVar[str] = "RET_PF_RETRY: the guest re-faults"

    # ---- the fault path ----

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """``kvm_mmu_page_fault`` inside the vcpu's SRCU read section, attempt after attempt:
        the section ends with each attempt (the vcpu re-enters the guest)."""
        f = SlotFault(gfn, write, hva=0)
        while True:
            f.attempt += 1
            await self.enter(ctx, f)
            await self.srcu_lock(ctx, f)
            if not await self.lookup(ctx, f):
                await self.srcu_unlock(ctx, f)
                return False
            await self.snapshot(ctx, f)
            f.stale = await self.check_invalid(ctx, f)
            if not f.stale and await self.map_page(ctx, f) is False:
                await self.srcu_unlock(ctx, f)
                return False
            await self.srcu_unlock(ctx, f)
            if not f.stale:
                return True
            await self.retried(ctx, f)

    @step
    async def enter(self, ctx: ActorContext, f: Fault) -> None:
        """The VM exit a fault attempt starts with (``kvm_mmu_page_fault``, x86 v6.8); a
        re-fault waits for what made the last attempt retry: the invalidation in
        progress, or the INVALID slot."""
        kvm = ctx.model.kvm
        memslots = kvm.memslots
        assert memslots is not None, "memslot_retry needs a world of several memslots"
        waits_slot = isinstance(f, SlotFault) and f.waits_slot

        def ready() -> bool:
            slot = memslots.find(f.gfn)
            invalid = slot is not None and slot.invalid
            return (not f.waits or kvm.in_progress == 0) and not (waits_slot and invalid)

        retrying = f.waits or waits_slot
        await ctx.point(
            self.fault_label,
            guard=ready if retrying else None,
            waits_for="the invalidation in progress to end, or the INVALID memslot to go",
        )

    @step
    async def srcu_lock(self, ctx: ActorContext, f: Fault) -> None:
        """``kvm_vcpu_srcu_read_lock`` (x86 ``vcpu_run``, v6.8): memslots seen from now on
        stay until the unlock."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        memslots.srcu_read_lock(ctx.name)

    @step
    async def srcu_unlock(self, ctx: ActorContext, f: Fault) -> None:
        """``kvm_vcpu_srcu_read_unlock`` (x86 ``vcpu_enter_guest``, v6.8) before entering
        the guest again."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        memslots.srcu_read_unlock(ctx.name)

    @step
    async def lookup(self, ctx: ActorContext, f: Fault) -> bool:
        """``kvm_vcpu_gfn_to_memslot`` (virt/kvm/kvm_main.c, v6.8; F1): the slot and the
        hva. No slot: the access is emulated MMIO (``KVM_EXIT_MMIO``), False."""
        assert isinstance(f, SlotFault), "memslot_retry's fault path needs a SlotFault"
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        f.slot = memslots.lookup(f.gfn, ctx.name)
        if f.slot is None:
            return False
        f.hva = f.slot.gfn_to_hva(f.gfn)
        return True

    @step
    async def check_invalid(self, ctx: ActorContext, f: Fault) -> bool:
        """``kvm_faultin_pfn`` (arch/x86/kvm/mmu/mmu.c, v5.16 on): "Retry the page fault if
        the gfn hit a memslot that is being deleted or moved", so that no leaf is
        made for it after ``kvm_arch_flush_shadow_memslot`` zapped the slot."""
        assert isinstance(f, SlotFault) and f.slot is not None
        if f.slot.invalid:
            ctx.note("KVM_MEMSLOT_INVALID: RET_PF_RETRY")
            return True
        return False

    @step
    async def recheck(self, ctx: ActorContext, f: Fault) -> bool:
        """``is_page_fault_stale`` -> ``mmu_invalidate_retry_gfn`` (v6.8; the hva form,
        ``mmu_notifier_retry_hva``, before): retry only if an invalidation in progress
        covers this gfn, or one ended since the snapshot."""
        assert f.mmu_seq is not None, "recheck without a seq snapshot"
        return ctx.model.kvm.retry_gfn(f.mmu_seq, f.gfn, ctx.name)

    @step
    async def install(self, ctx: ActorContext, f: Fault) -> None:
        """``direct_map``/``kvm_tdp_mmu_map`` (x86, v6.8; F7): map the leaf under the
        memslot the fault found (the leaf records it)."""
        assert f.pfn is not None and isinstance(f, SlotFault)
        kvm = ctx.model.kvm
        stale = kvm.install_spte(f.gfn, f.pfn, f.writable, ctx.name, page_size=f.size, slot=f.slot)
        if stale:
            kvm.flush_remote_tlbs_range(stale, ctx.name)

    @step
    async def retried(self, ctx: ActorContext, f: Fault) -> None:
        """``RET_PF_RETRY`` (x86, v6.8): an invalidation in range, or an INVALID slot; the
        re-fault waits for it."""
        invalid = isinstance(f, SlotFault) and f.slot is not None and f.slot.invalid
        f.waits = refault.retry(ctx, f.gfn, f.attempt, self.retry_note)
        if isinstance(f, SlotFault):
            f.waits_slot = invalid

    # ---- KVM's MMU-notifier callbacks ----

    @step
    async def invalidate_range_start(self, ctx: ActorContext, start: int, end: int) -> None:
        """``kvm_mmu_notifier_invalidate_range_start`` (v6.8): count the invalidation in
        ``mn_active_invalidate_count``, then ``__kvm_handle_hva_range``: under SRCU, for
        each memslot the hva range meets, take ``mmu_lock`` (once), begin, add the
        slot's gfns to the range, zap them; flush; unlock. No memslot: no lock, no count."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        await self.count_active(ctx)
        memslots.srcu_read_lock(ctx.name)
        slots = memslots.in_hva_range(start, end, ctx.name)
        if not slots:
            ctx.note("no memslot in range: mmu_lock not taken")
        else:
            kvm = ctx.model.kvm
            await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: invalidate_begin, range_add, unmap, flush")
            await self.begin(ctx, start, end)
            zapped = 0
            for slot in slots:
                gfns = slot.gfns_in(start, end)
                await self.range_add(ctx, gfns)
                zapped += await self.zap_gfns(ctx, gfns)
            await self.flush(ctx, start, end, zapped)
            ctx.spin_unlock(kvm.mmu_lock)
        memslots.srcu_read_unlock(ctx.name)

    @step
    async def count_active(self, ctx: ActorContext) -> None:
        """``spin_lock(&kvm->mn_invalidate_lock); kvm->mn_active_invalidate_count++``
        (52ac8b358b0c, v5.15): no memslot swap until the matching end."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        memslots.mn_active_inc(ctx.name)

    @step
    async def begin(self, ctx: ActorContext, start: int, end: int) -> None:
        """``kvm_mmu_invalidate_begin`` (v6.8): in_progress++; the range restarts when it
        leaves zero."""
        ctx.model.kvm.invalidate_begin_ranged(ctx.name)

    @step
    async def range_add(self, ctx: ActorContext, gfns: range) -> None:
        """``kvm_mmu_invalidate_range_add`` (v6.8): widen the range in progress to ``gfns``."""
        ctx.model.kvm.invalidate_range_add(gfns.start, gfns.stop, ctx.name)

    @step
    async def zap_gfns(self, ctx: ActorContext, gfns: range) -> int:
        """``kvm_unmap_gfn_range`` (x86, v6.8) for one memslot's part of the range; how many
        leaves went. Unlike ``Design.zap`` it never yields ``mmu_lock`` between leaves."""
        kvm = ctx.model.kvm
        leaves = kvm.leaves_in_gfns(gfns, ctx.name)
        for gfn in leaves:
            kvm.zap_leaf(gfn, ctx.name)
        return len(leaves)

    @step
    async def invalidate_range_end(self, ctx: ActorContext, start: int, end: int) -> None:
        """``kvm_mmu_notifier_invalidate_range_end`` (v6.8): ``__kvm_handle_hva_range`` with
        ``kvm_mmu_invalidate_end`` (seq++, in_progress--) if the range meets a memslot,
        then ``mn_active_invalidate_count--``, waking a waiting memslot update at zero."""
        kvm = ctx.model.kvm
        memslots = kvm.memslots
        assert memslots is not None
        memslots.srcu_read_lock(ctx.name)
        if memslots.in_hva_range(start, end, ctx.name):
            await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: kvm_mmu_invalidate_end")
            await self.bump_seq(ctx, start, end)
            await self.drop_count(ctx, start, end)
            ctx.spin_unlock(kvm.mmu_lock)
        else:
            ctx.note("no memslot in range: mmu_lock not taken")
        memslots.srcu_read_unlock(ctx.name)
        await self.uncount_active(ctx)

    @step
    async def uncount_active(self, ctx: ActorContext) -> None:
        """``--kvm->mn_active_invalidate_count``; ``rcuwait_wake_up`` at zero."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        memslots.mn_active_dec(ctx.name)

    # ---- KVM_SET_USER_MEMORY_REGION (kvm_set_memslot, v6.x) ----

    @step
    async def set_memory_region(self, ctx: ActorContext, change: MemslotChange) -> None:
        """``kvm_set_memory_region`` -> ``kvm_set_memslot`` (virt/kvm/kvm_main.c, v6.8) for one
        change, under ``slots_lock`` (folded away: one updater)."""
        await ctx.point(f"KVM_SET_USER_MEMORY_REGION: {change.kind} memslot {change.slot}")
        if change.kind == "delete":
            await self.delete_memslot(ctx, change.slot)
        elif change.kind == "move":
            await self.move_memslot(ctx, change.slot, change.base_gfn)
        else:
            await self.create_memslot(ctx, change)

    @step
    async def delete_memslot(self, ctx: ActorContext, slot_id: int) -> None:
        """``KVM_MR_DELETE`` (``kvm_set_memslot``, v6.8): ``kvm_invalidate_memslot``,
        ``kvm_delete_memslot`` (publish without it), ``kvm_commit_memory_region`` (free it)."""
        old = await self.invalidate_memslot(ctx, slot_id)
        await self.swap_active_memslots(ctx, None, slot_id)
        await self.commit_memory_region(ctx, old)

    @step
    async def move_memslot(self, ctx: ActorContext, slot_id: int, base_gfn: int) -> None:
        """``KVM_MR_MOVE`` (``kvm_set_memslot``, v6.8): ``kvm_invalidate_memslot``,
        ``kvm_move_memslot`` (publish it at ``base_gfn``), ``kvm_commit_memory_region``
        (free the old version)."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        old = await self.invalidate_memslot(ctx, slot_id)
        await self.swap_active_memslots(ctx, memslots.moved_copy(slot_id, base_gfn), slot_id)
        await self.commit_memory_region(ctx, old)

    @step
    async def create_memslot(self, ctx: ActorContext, change: MemslotChange) -> None:
        """``KVM_MR_CREATE`` (``kvm_set_memslot``, v6.8): ``kvm_create_memslot`` ->
        ``kvm_activate_memslot``: publish it."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        new = memslots.new_slot(change.slot, change.base_gfn, change.npages, change.hva)
        await self.swap_active_memslots(ctx, new, change.slot)

    @step
    async def invalidate_memslot(self, ctx: ActorContext, slot_id: int) -> Slot:
        """``kvm_invalidate_memslot`` (v6.8): publish the slot with ``KVM_MEMSLOT_INVALID`` (no fault
        maps it from now on, once SRCU readers of the old array are gone), then
        ``kvm_arch_flush_shadow_memslot``. Returns the old version."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        old = memslots.active[slot_id]
        await self.swap_active_memslots(ctx, memslots.invalid_copy(slot_id), slot_id)
        await self.flush_shadow_memslot(ctx, old)
        return old

    @step
    async def swap_active_memslots(self, ctx: ActorContext, replace: Slot | None, slot_id: int) -> None:
        """``kvm_swap_active_memslots`` (v6.8): under ``mn_invalidate_lock`` wait for
        ``mn_active_invalidate_count`` to be zero, publish, then
        ``synchronize_srcu_expedited``."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        await self.wait_for_invalidations(ctx)
        memslots.swap(replace, slot_id, ctx.name)
        await self.synchronize_srcu(ctx)

    @step
    async def wait_for_invalidations(self, ctx: ActorContext) -> None:
        """``while (kvm->mn_active_invalidate_count) schedule()`` (52ac8b358b0c, v5.15):
        an invalidation between its start and end would otherwise see a different
        array in each and count its start but not its end (or the reverse)."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        await ctx.point(
            "kvm_swap_active_memslots: mn_invalidate_lock",
            guard=memslots.mn_invalidations_done,
            waits_for="mn_active_invalidate_count to drop to 0",
        )

    @step
    async def synchronize_srcu(self, ctx: ActorContext) -> None:
        """``synchronize_srcu_expedited(&kvm->srcu)``: wait for every reader that may
        still see the old array (a fault about to map the old slot)."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        await ctx.point(
            "synchronize_srcu_expedited",
            guard=memslots.synchronized,
            waits_for="SRCU readers of the old memslots",
        )
        memslots.synchronize_srcu(ctx.name)

    @step
    async def flush_shadow_memslot(self, ctx: ActorContext, slot: Slot) -> None:
        """``kvm_arch_flush_shadow_memslot`` (x86, v6.8): under ``mmu_lock`` zap the slot's
        leaves and flush the TLBs before the slot can be freed."""
        kvm = ctx.model.kvm
        await ctx.spin_lock(kvm.mmu_lock, "kvm_arch_flush_shadow_memslot: mmu_lock")
        zapped = await self.zap_memslot(ctx, slot)
        await self.flush_memslot_tlbs(ctx, slot, zapped)
        ctx.spin_unlock(kvm.mmu_lock)

    @step
    async def zap_memslot(self, ctx: ActorContext, slot: Slot) -> int:
        """Drop every leaf of ``slot``; how many went. x86 v6.8 zaps every root at once
        (``kvm_mmu_zap_all_fast``, obsolete roots) where the model zaps the slot's
        leaves, as x86's later ``kvm_mmu_zap_memslot`` does (docs/model.md section 7)."""
        return await self.zap_gfns(ctx, slot.gfns)

    @step
    async def flush_memslot_tlbs(self, ctx: ActorContext, slot: Slot, zapped: int) -> None:
        """``kvm_flush_remote_tlbs`` (v6.8) when anything was zapped."""
        if zapped:
            ctx.model.kvm.flush_remote_tlbs(ctx.name)

    @step
    async def commit_memory_region(self, ctx: ActorContext, old: Slot) -> None:
        """``kvm_commit_memory_region`` -> ``kvm_free_memslot(old)`` (v6.8); the ioctl returns and
        userspace may unmap the memory."""
        memslots = ctx.model.kvm.memslots
        assert memslots is not None
        await ctx.point("kvm_commit_memory_region")
        memslots.free(old.serial, ctx.name)


async def kvm_set_user_memory_region(ctx: ActorContext, design: MemslotRetry, change: MemslotChange) -> None:
    """A VMM thread's ``ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, ...)``: ``design``'s
    memslot update, in the calling thread."""
    if not isinstance(design, MemslotRetry):
        raise TypeError(f"design {design.name!r} has no memslot updates (it must be a MemslotRetry)")
    await design.set_memory_region(ctx, change)
