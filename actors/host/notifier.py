"""The MMU-notifier chain, host side (mm/mmu_notifier.c).

Host operations announce a change of host ptes with
``mmu_notifier_invalidate_range_start`` and ``_end``; whoever registered on
the mm (KVM, with ``mmu_notifier_register``) is called back synchronously,
in the thread making the change, as in the kernel: the callbacks' steps are
the host actor's steps, under the locks the host holds (lockdep sees them
nested there), and two host threads may be inside their callbacks at the
same time. This module knows nothing of what a subscriber does: KVM's
callbacks are its design's (``actors.kvm.mmu_notifier``).
"""

from __future__ import annotations

import weakref
from typing import Protocol

from mmu import HostMm

from ..runtime.context import ActorContext


class MmuNotifierOps(Protocol):
    """``struct mmu_notifier_ops``: what a subscriber is called back with."""

    async def invalidate_range_start(self, ctx: ActorContext, start: int, end: int) -> None: ...

    async def invalidate_range_end(self, ctx: ActorContext, start: int, end: int) -> None: ...


#: ``mm->notifier_subscriptions``: the subscribers of each mm, in registration order.
#: Weak: a world and its mm die after their run.
_SUBSCRIPTIONS: weakref.WeakKeyDictionary[HostMm, list[MmuNotifierOps]] = weakref.WeakKeyDictionary()


def mmu_notifier_register(mm: HostMm, ops: MmuNotifierOps) -> None:
    """``mmu_notifier_register``: invalidations of ``mm`` now call ``ops`` back.
    Done when a world is built, before any step, as KVM does at VM creation."""
    _SUBSCRIPTIONS.setdefault(mm, []).append(ops)


def subscribers(mm: HostMm) -> tuple[MmuNotifierOps, ...]:
    """The subscribers registered on ``mm`` (none: an invalidation calls nobody)."""
    return tuple(_SUBSCRIPTIONS.get(mm, ()))


async def invalidate_start(ctx: ActorContext, start: int, end: int, *, resume: str) -> None:
    """``mmu_notifier_invalidate_range_start``: returns once every subscriber has
    zapped [start, end) (R4); the code after it is the step ``resume``."""
    await ctx.point("mmu_notifier_invalidate_range_start")
    ctx.note(f"range {start:#x}-{end:#x}")
    for ops in subscribers(ctx.model.mm):
        await ops.invalidate_range_start(ctx, start, end)
    await ctx.point(resume)


async def invalidate_end(ctx: ActorContext, start: int, end: int, *, resume: str) -> None:
    """``mmu_notifier_invalidate_range_end``: KVM bumps seq, then drops in_progress (R3);
    the code after it is the step ``resume``."""
    await ctx.point("mmu_notifier_invalidate_range_end")
    ctx.note(f"range {start:#x}-{end:#x}")
    for ops in subscribers(ctx.model.mm):
        await ops.invalidate_range_end(ctx, start, end)
    await ctx.point(resume)
