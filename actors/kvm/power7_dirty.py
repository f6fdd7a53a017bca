"""POWER7's dirty logging as merged in v3.6: the hardware's C bits, harvested with no re-fault.

The thread proposed dirty logging by removing access and re-faulting with
write (``wp_zap_refault``; Avi: "removing access for live migration is
painful"). What was merged for Book3S HV (v3.6, arch/powerpc/kvm/
book3s_64_mmu_hv.c ``kvm_test_clear_dirty`` and ``kvmppc_hv_get_dirty_log``,
called from book3s_hv.c ``kvm_vm_ioctl_get_dirty_log``) write-protects
nothing: the hardware sets each HPTE's C (changed) bit on the first store
through a translation, and the harvest reads and clears it. To clear C it
makes the HPTE absent only briefly, with a ``tlbie`` so that no vcpu keeps a
translation that has recorded C (a store through it would set nothing),
then makes it valid again: the guest never re-faults for it. An HPTE the
MMU notifier unmaps in between leaves its C bit in the rmap word
(``kvm_unmap_rmapp``, ``KVMPPC_RMAP_CHANGED``), which the harvest reports too
(docs/model.md 1.5 and section 3's dirty-log row). The C bits are
``mmu.hpt`` (``Kvm.changed``, ``Hpt.rmap_changed``).

Design: ``power7_dirty`` (``power7_hpt``'s fault path and invalidation, and
this dirty logging).
"""

from __future__ import annotations

import attrs

from ..runtime.context import ActorContext
from .design import step
from .power7 import Power7Hpt


@attrs.frozen
class Power7DirtyLog(Power7Hpt):
    """``power7_hpt`` with v3.6's dirty logging: harvest and clear the HPTEs' C bits."""

    @step
    async def enable_dirty_logging(self, ctx: ActorContext) -> None:
        """``KVM_SET_USER_MEMORY_REGION`` adding ``KVM_MEM_LOG_DIRTY_PAGES`` (v3.6): the slot
        gets its ``dirty_bitmap``; Book3S HV's ``kvmppc_core_prepare_memory_region``
        does nothing more: no write protection and no flush, since the hardware sets
        C on every store. (The flag's store is folded into ``mmu_lock``, 1.4.)"""
        kvm = ctx.model.kvm
        await ctx.spin_lock(kvm.mmu_lock, "KVM_SET_USER_MEMORY_REGION: KVM_MEM_LOG_DIRTY_PAGES")
        kvm.enable_dirty_logging(ctx.name)
        ctx.spin_unlock(kvm.mmu_lock)

    @step
    async def get_dirty_log(self, ctx: ActorContext) -> tuple[int, ...]:
        """``kvm_vm_ioctl_get_dirty_log`` (v3.6 book3s_hv.c), under ``slots_lock`` (folded
        away) and never ``mmu_lock``: ``memset(dirty_bitmap, 0)``, then
        ``kvmppc_hv_get_dirty_log``: ``kvm_test_clear_dirty`` on each page, ``__set_bit_le``
        for those it says are dirty; ``copy_to_user``. Returns the dirty gfns."""
        kvm = ctx.model.kvm
        await ctx.point("kvm_vm_ioctl_get_dirty_log: memset(dirty_bitmap, 0)")
        if not kvm.dirty_log.logging():
            raise AssertionError("KVM_GET_DIRTY_LOG on a slot without KVM_MEM_LOG_DIRTY_PAGES")
        slot = kvm.memslot
        dirty = []
        for gfn in range(slot.base_gfn, slot.base_gfn + slot.npages):
            if await self.test_clear_dirty(ctx, gfn):
                dirty.append(gfn)
        shown = ", ".join(f"{g:#x}" for g in dirty) or "none"
        ctx.note(f"copy_to_user(log->dirty_bitmap): dirty gfns {shown}")
        return tuple(dirty)

    @step
    async def test_clear_dirty(self, ctx: ActorContext, gfn: int) -> bool:
        """``kvm_test_clear_dirty`` (v3.6): ``lock_rmap``; ``KVMPPC_RMAP_CHANGED`` (a changed HPTE
        unmapped since) is taken and cleared; a chained HPTE with ``HPTE_R_C`` is locked
        (``try_lock_hpte``, or ``unlock_rmap``, spin and ``goto retry``: the ABBA rule of
        ``kvm_unmap_rmapp``) and its C cleared (``clear_hpte_c``); unlock both. True:
        the page is dirty."""
        hpt = ctx.model.hpt
        rmap, hpte = hpt.rmap_lock(gfn), hpt.hpte_lock(gfn)
        dirty = False
        while True:
            await ctx.spin_lock(rmap, "kvm_test_clear_dirty: lock_rmap")
            dirty = hpt.take_rmap_changed(gfn, ctx.name) or dirty
            if not hpt.hpte_c(gfn, ctx.name):
                self.unlock_rmap(ctx, gfn)
                return dirty
            if await self.lock_chained_hpte(ctx, gfn):
                break
        await self.clear_hpte_c(ctx, gfn)
        ctx.spin_unlock(hpte)
        self.unlock_rmap(ctx, gfn)
        return True

    @step
    async def clear_hpte_c(self, ctx: ActorContext, gfn: int) -> None:
        """"Need to make it temporarily absent to clear C" (v3.6): ``hptep[0] |=
        HPTE_V_ABSENT; kvmppc_invalidate_hpte()`` (the ``tlbie``: no vcpu keeps a
        translation that recorded C), then, in a step of its own, ``hptep[1] &=
        ~HPTE_R_C; eieio(); hptep[0] = (hptep[0] & ~HPTE_V_ABSENT) | HPTE_V_VALID``: the
        same translation, valid again with no fault. Both lock bits held."""
        hpt = ctx.model.hpt
        leaf = hpt.make_absent(gfn, ctx.name)
        hpt.tlbie(gfn, ctx.name)
        await ctx.point("kvm_test_clear_dirty: clear HPTE_R_C, valid again")
        hpt.clear_c(gfn, ctx.name)
        hpt.make_valid(gfn, leaf, ctx.name)
