"""KVM's fault path as it is today, step by step: the ``seq_retry`` design.

x86 ``kvm_mmu_page_fault`` -> ``kvm_faultin_pfn`` + ``is_page_fault_stale``,
arm64 ``user_mem_abort``, PPC ``kvmppc_book3s_hv_page_fault`` all have this
shape (docs/model.md 1.2): look the memslot up (F1), snapshot
``mmu_invalidate_seq`` (F2, R1), resolve the pfn with a page reference (F3:
lockless gup-fast first, then the slow path under ``mmap_lock``),
take the lock the invalidation zaps under (F4), recheck (F5, R2), install
in the same critical section (F7), unlock and drop the reference (F8, R6).
A fault that lost the race returns to the guest, which faults again
(``actors.kvm.refault``). Each of those is a step a variant may replace.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from ..host.gup import get_user_page_fast_only, get_user_pages
from ..host.pfnmap import follow_pfnmap_pte
from ..runtime.context import ActorContext
from . import refault
from .design import Design, Fault, step


@attrs.frozen
class SeqRetry(Design):
    """Per page at fault time: seq snapshot before gup, recheck under mmu_lock, retry."""

    #: the label of the step a fault attempt starts with
    fault_label: ClassVar[str] = "kvm_faultin_pfn"
    #: the label of the step that takes the installer lock
    lock_label: ClassVar[str] = "mmu_lock: mmu_invalidate_retry, map"
    #: the label of the step that drops gup's reference
    release_label: ClassVar[str] = "kvm_release_pfn_clean"
    #: what a lost race does, as the trace says it
    retry_note: ClassVar[str] = "RET_PF_RETRY: the guest re-faults"

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """One attempt after another until one installs its leaf or fails."""
        f = Fault(gfn, write, ctx.model.kvm.memslot.gfn_to_hva(gfn))
        while True:
            f.attempt += 1
            await self.enter(ctx, f)
            if not await self.lookup(ctx, f):
                return False
            await self.snapshot(ctx, f)
            mapped = await self.map_page(ctx, f)
            if mapped is not None:
                return mapped
            await self.retried(ctx, f)

    @step
    async def map_page(self, ctx: ActorContext, f: Fault) -> bool | None:
        """An attempt from the pfn on: ``resolve``, ``lock``, ``recheck``, ``install`` if it
        may, ``unlock``, ``release``. True: mapped; False: resolve failed; None: the
        recheck said retry (``f.stale``)."""
        if not await self.resolve(ctx, f):
            return False
        await self.lock(ctx, f)
        f.stale = await self.recheck(ctx, f)
        if not f.stale:
            await self.install(ctx, f)
        await self.unlock(ctx, f)
        await self.release(ctx, f)
        return None if f.stale else True

    @step
    async def enter(self, ctx: ActorContext, f: Fault) -> None:
        """The step a fault attempt starts with; a re-fault after a retry that met an
        invalidation in progress waits for it to end."""
        await refault.enter(ctx, self.fault_label, after_retry=f.waits)

    @step
    async def lookup(self, ctx: ActorContext, f: Fault) -> bool:
        """What the fault needs before it snapshots seq (F1: the memslot); False fails it."""
        return True

    @step
    async def snapshot(self, ctx: ActorContext, f: Fault) -> None:
        """``mmu_seq = kvm->mmu_invalidate_seq; smp_rmb()`` (F2), before the pfn (R1)."""
        f.mmu_seq = ctx.model.kvm.snapshot_seq(ctx.name)

    @step
    async def resolve(self, ctx: ActorContext, f: Fault) -> bool:
        """``__gfn_to_pfn_memslot`` -> ``hva_to_pfn`` (F3): the pfn with a reference,
        lockless if it can (``resolve_fast``), else under ``mmap_lock``
        (``resolve_slow``); False for -EFAULT."""
        f.refcounted = True  # until resolve_remapped says otherwise, for this attempt
        if await self.resolve_fast(ctx, f):
            return True
        return await self.resolve_slow(ctx, f)

    @step
    async def resolve_fast(self, ctx: ActorContext, f: Fault) -> bool:
        """``hva_to_pfn_fast`` (virt/kvm/kvm_main.c, v6.12): ``get_user_page_fast_only(hva,
        FOLL_WRITE)``, lockless; a hit maps writable. KVM asks for a writable page
        even on a read fault, whenever it may map one writable; a read-only or absent
        pte falls back to ``resolve_slow``. A design without a fast path replaces this
        step by one that returns False."""
        pfn = await get_user_page_fast_only(ctx, f.hva, write=True)
        if pfn is None:
            return False
        f.pfn, f.writable = pfn, True
        return True

    @step
    async def resolve_slow(self, ctx: ActorContext, f: Fault) -> bool:
        """``hva_to_pfn_slow`` -> ``get_user_pages_unlocked``: takes ``mmap_lock`` for
        read, faults the page in if needed, may sleep; writable is the pte's write bit.
        False for -EFAULT (no VMA, or a write to a read-only one)."""
        got = await get_user_pages(ctx, f.hva, f.write)
        if got is None:
            return await self.resolve_remapped(ctx, f)
        f.pfn, f.writable = got
        return True

    @step
    async def resolve_remapped(self, ctx: ActorContext, f: Fault) -> bool:
        """``hva_to_pfn`` once gup failed (virt/kvm/kvm_main.c, v6.9): ``mmap_read_lock``,
        ``vma_lookup``, and for a VM_IO|VM_PFNMAP VMA ``hva_to_pfn_remapped``: the pfn
        of the pte ``follow_pte`` finds, writable as ``pte_write`` says (a write to a
        read-only pte is -EFAULT), and ``kvm_try_get_pfn``, which takes a reference
        only on a refcounted page: none on device memory, whose only keeper is the
        notifier ("Whoever called remap_pfn_range is also going to call e.g.
        unmap_mapping_range before the underlying pages are freed, causing a call
        to our MMU notifier"). PPC's ``kvmppc_book3s_hv_page_fault`` had the same
        fallback from v3.3 (9d0ef5ea043d): ``pfn = vma->vm_pgoff + offset``,
        ``write_ok = vm_flags & VM_WRITE``. A process with no VM_PFNMAP VMA skips
        the step: its lookup could only fail (docs/model.md 3.14)."""
        mm, frames = ctx.model.mm, ctx.model.frames
        if not mm.maps_device_memory():
            return False
        await ctx.down_read(mm.mmap_lock, "hva_to_pfn: mmap_read_lock, hva_to_pfn_remapped")
        pte = follow_pfnmap_pte(ctx, f.hva, f.write)
        if pte is not None:
            f.pfn, f.writable, f.refcounted = pte.pfn, pte.writable, frames.is_refcounted(pte.pfn)
            if f.refcounted:
                frames.get_page(pte.pfn)  # kvm_try_get_pfn
        ctx.up_read(mm.mmap_lock)
        return pte is not None

    @step
    async def lock(self, ctx: ActorContext, f: Fault) -> None:
        """Take the lock the invalidation zaps under (F4): ``mmu_lock``."""
        await ctx.spin_lock(ctx.model.kvm.mmu_lock, self.lock_label)

    @step
    async def recheck(self, ctx: ActorContext, f: Fault) -> bool:
        """``mmu_invalidate_retry`` (F5, R2): must the fault retry?"""
        assert f.mmu_seq is not None, "recheck without a seq snapshot"
        return ctx.model.kvm.retry(f.mmu_seq, ctx.name)

    @step
    async def install(self, ctx: ActorContext, f: Fault) -> None:
        """Map the leaf (F7), in the critical section of the recheck; if that changed a
        present leaf rather than made one present, flush what vcpus cached of it
        (``mmu_set_spte`` -> ``kvm_flush_remote_tlbs_gfn``)."""
        assert f.pfn is not None, "install without a pfn"
        kvm = ctx.model.kvm
        stale = kvm.install_spte(f.gfn, f.pfn, f.writable, ctx.name, page_size=f.size)
        if stale:
            kvm.flush_remote_tlbs_range(stale, ctx.name)

    @step
    async def unlock(self, ctx: ActorContext, f: Fault) -> None:
        """Drop the installer lock."""
        ctx.spin_unlock(ctx.model.kvm.mmu_lock)

    @step
    async def release(self, ctx: ActorContext, f: Fault) -> None:
        """``kvm_release_pfn_clean`` (F8): drop gup's reference; KVM keeps none (R6)."""
        assert f.pfn is not None, "release without a pfn"
        await ctx.point(self.release_label)
        if f.refcounted:
            ctx.model.frames.put_page(f.pfn)
        else:
            ctx.note(f"pfn {f.pfn:#x} is not a refcounted page: nothing to put")

    @step
    async def retried(self, ctx: ActorContext, f: Fault) -> None:
        """A lost race: say so, count it towards the livelock bound (``actors.kvm.refault``)."""
        f.waits = refault.retry(ctx, f.gfn, f.attempt, self.retry_note)
