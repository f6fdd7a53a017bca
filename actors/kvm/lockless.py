"""A check of seq/in_progress without ``mmu_lock``: what weak memory judges (docs/model.md 6.5).

Since v6.9 x86's ``kvm_faultin_pfn`` looks before it resolves the pfn and
before it takes ``mmu_lock``: ``mmu_invalidate_retry_gfn_unsafe`` reads
``READ_ONCE(in_progress)`` and then ``READ_ONCE(seq)``, with no barrier
between them, and retries at once if an invalidation is running or ran
since the snapshot. It is only a shortcut: the check under ``mmu_lock``
(``is_page_fault_stale``) still decides, so what the unsafe reads see, in any
order, cannot make the fault map a stale page. The writer's half is
``invalidate_range_end``: ``seq++; smp_wmb(); in_progress--``.

``UnsafePrecheck`` has both halves' barriers as fields, so one class makes
the kernel's design and the variants that drop a barrier or swap end's two
stores. The lockless check on its own, with its barrier pair, is POWER7's
``mmu_notifier_retry`` under the rmap lock (docs/model.md 1.2), which
nothing re-checks under ``mmu_lock``: there a missing barrier is a bug.
"""

from __future__ import annotations

import attrs

from ..runtime.context import ActorContext
from .design import Fault, step
from .fault_path import SeqRetry
from .power7 import Power7Hpt


class _EndOrder:
    """``invalidate_range_end``'s barrier and store order as design fields: the
    ``wmb`` and ``swapped`` of the designs below, one pair of steps for both."""

    __slots__ = ()
    wmb: bool
    swapped: bool

    @step
    async def order_end(self, ctx: ActorContext, start: int, end: int) -> None:
        """End's ``smp_wmb()``, if the design has it."""
        if self.wmb:
            ctx.model.kvm.smp_wmb(ctx.name)

    @step
    async def invalidate_range_end(self, ctx: ActorContext, start: int, end: int) -> None:
        """``kvm_mmu_notifier_invalidate_range_end`` under ``mmu_lock``; with ``swapped``,
        ``in_progress--`` before ``seq++``."""
        assert isinstance(self, SeqRetry)  # mixed into fault paths only
        await _end(self, ctx, start, end, swapped=self.swapped)


@attrs.frozen
class UnsafePrecheck(_EndOrder, SeqRetry):
    """``seq_retry`` with x86's lockless pre-check (v6.9+) after the seq snapshot."""

    #: ``smp_rmb()`` between the check's two reads (x86's has none; POWER7's has one)
    rmb: bool = False
    #: ``smp_wmb()`` between end's ``seq++`` and ``in_progress--`` (the kernel has it)
    wmb: bool = True
    #: end drops the count before it bumps seq: the stores the barrier orders, swapped
    swapped: bool = False

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """``seq_retry``'s attempts, each retried at once if the pre-check says so."""
        f = Fault(gfn, write, ctx.model.kvm.memslot.gfn_to_hva(gfn))
        while True:
            f.attempt += 1
            await self.enter(ctx, f)
            if not await self.lookup(ctx, f):
                return False
            await self.snapshot(ctx, f)
            if await self.precheck(ctx, f):
                await self.retried(ctx, f)
                continue
            mapped = await self.map_page(ctx, f)
            if mapped is not None:
                return mapped
            await self.retried(ctx, f)

    @step
    async def precheck(self, ctx: ActorContext, f: Fault) -> bool:
        """``mmu_invalidate_retry_gfn_unsafe``: ``READ_ONCE(in_progress)``, then (after
        ``smp_rmb()`` if the design has it) ``READ_ONCE(seq) != mmu_seq``, no lock held.
        True: retry. The model checks the count for every gfn, not only the range's."""
        await ctx.point("mmu_invalidate_retry_gfn_unsafe")
        return await self.lockless_retry(ctx, f)

    @step
    async def lockless_retry(self, ctx: ActorContext, f: Fault) -> bool:
        """The two reads, in the running step: the count, the barrier, seq."""
        kvm = ctx.model.kvm
        assert f.mmu_seq is not None, "lockless check without a seq snapshot"
        if kvm.read_once("in_progress", ctx.name):
            ctx.note("invalidation in progress -> retry")
            return True
        if self.rmb:
            kvm.smp_rmb(ctx.name)
        moved = kvm.read_once("seq", ctx.name) != f.mmu_seq
        ctx.note(f"seq vs {f.mmu_seq}" + (" -> retry" if moved else " -> ok"))
        return moved


@attrs.frozen
class Power7Barriers(_EndOrder, Power7Hpt):
    """POWER7's fault path (``power7_hpt``) with the barrier pair of its lockless
    ``mmu_notifier_retry`` as fields: the check's ``smp_rmb`` under the rmap lock, end's
    ``smp_wmb``, and end's two stores in order; ``unlock_rmap``'s release barrier; and the
    ``eieio`` before the HPTE's unlocking store.
    Nothing re-checks under ``mmu_lock``."""

    rmb: bool = True
    wmb: bool = True
    swapped: bool = False
    #: ``unlock_rmap``'s release barrier (``__clear_bit_unlock``); False: ``__clear_bit``
    release_barrier: bool = True
    #: the ``eieio()`` between ``hptep[1] = r`` and ``__unlock_hpte`` (H_ENTER, the fault path)
    eieio: bool = True

    def hpte_eieio(self) -> bool:
        """The design's ``eieio`` before ``__unlock_hpte``: without it the store that makes the
        HPTE valid may reach memory before its RPN, and the unlock is no release
        (docs/model.md 6.6)."""
        return self.eieio

    def unlock_rmap(self, ctx: ActorContext, gfn: int) -> None:
        """``unlock_rmap``: ``__clear_bit_unlock`` (a release), or, without ``release_barrier``, a
        plain ``__clear_bit`` of ``KVMPPC_RMAP_LOCK_BIT`` that the CPU's earlier stores
        (the chain's ``KVMPPC_RMAP_PRESENT``) may follow (docs/model.md 6.6)."""
        ctx.spin_unlock(ctx.model.hpt.rmap_lock(gfn), release=self.release_barrier)

    @step
    async def notifier_retry(self, ctx: ActorContext, gfn: int, mmu_seq: int) -> bool:
        """``mmu_notifier_retry`` under the rmap lock: the count, ``smp_rmb()`` if the
        design has it, then ``seq``, each read a step of its own."""
        hpt = ctx.model.hpt
        if ctx.model.kvm.memory is not None:
            await ctx.point("mmu_notifier_retry: in_progress")
        if hpt.retry_in_progress(gfn, ctx.name):
            return True
        await ctx.point("mmu_notifier_retry: smp_rmb(), seq" if self.rmb else "mmu_notifier_retry: seq")
        return hpt.retry_seq(gfn, mmu_seq, ctx.name, rmb=self.rmb)


async def _end(design: SeqRetry, ctx: ActorContext, start: int, end: int, *, swapped: bool) -> None:
    """``invalidate_range_end`` as ``design`` orders it: seq++, the barrier, in_progress--,
    or with ``swapped`` the count first."""
    if not swapped:
        await SeqRetry.invalidate_range_end(design, ctx, start, end)
        return
    kvm = ctx.model.kvm
    await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: kvm_mmu_invalidate_end")
    await design.drop_count(ctx, start, end)
    await design.order_end(ctx, start, end)
    await design.bump_seq(ctx, start, end)
    ctx.spin_unlock(kvm.mmu_lock)
