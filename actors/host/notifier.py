"""The MMU-notifier chain, host side (mm/mmu_notifier.c).

Host operations announce a change of host ptes with
``mmu_notifier_invalidate_range_start`` and ``_end``; whoever registered on
the mm (KVM, with ``mmu_notifier_register``) is called back synchronously,
in the thread making the change, as in the kernel: the callbacks' steps are
the host actor's steps, under the locks the host holds (lockdep sees them
nested there), and two host threads may be inside their callbacks at the
same time. This module knows nothing of what a subscriber does: KVM's
callbacks are its design's (``actors.kvm.mmu_notifier``).

A host of the 2011 era (``mmu/era.py``) also has the per-page callbacks,
which it calls with the page-table lock held, after the pte changed:
``change_pte`` (from ``set_pte_at_notify``: KSM, COW) and
``invalidate_page`` (from ``ptep_clear_flush_notify``: ``try_to_unmap_one``).
"""

from __future__ import annotations

import weakref
from typing import Protocol

from mmu import HostMm, HostPte

from ..runtime.context import ActorContext


class MmuNotifierOps(Protocol):
    """``struct mmu_notifier_ops``: what a subscriber is called back with."""

    async def invalidate_range_start(self, ctx: ActorContext, start: int, end: int) -> None: ...

    async def invalidate_range_end(self, ctx: ActorContext, start: int, end: int) -> None: ...

    async def change_pte(self, ctx: ActorContext, hva: int, pte: HostPte) -> None: ...

    async def invalidate_page(self, ctx: ActorContext, hva: int) -> None: ...


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


async def change_pte(ctx: ActorContext, hva: int, pte: HostPte, *, resume: str) -> None:
    """``mmu_notifier_change_pte`` (include/linux/mmu_notifier.h ``set_pte_at_notify``
    -> mm/mmu_notifier.c ``__mmu_notifier_change_pte``, v2.6.32-v3.5): the pte at
    ``hva`` has just become ``pte`` (``set_pte_at`` came first then), and every
    subscriber hears it through ``change_pte``, or through ``invalidate_page`` if it
    has none. No start/end around it: the caller holds the page-table lock (a
    subscriber must not sleep). The callbacks run from the caller's step; the
    code after them is the step ``resume``.

    Raises:
        AssertionError: the host is not a 2011 one (``->change_pte`` ran inside
            start/end from v3.6 and is gone since v6.10, 997308f9ae72).
    """
    if not ctx.model.era.change_pte:
        raise AssertionError(f"a {ctx.model.era.value} host reports no pte switch through ->change_pte")
    kind = "W" if pte.writable else "RO"
    ctx.note(f"set_pte_at_notify: ->change_pte hva {hva:#x} -> pfn {pte.pfn:#x} {kind}")
    for ops in subscribers(ctx.model.mm):
        if hasattr(ops, "change_pte"):
            await ops.change_pte(ctx, hva, pte)
        else:  # "some drivers dont have change_pte and therefor we must call for invalidate_page"
            await ops.invalidate_page(ctx, hva)
    await ctx.point(resume)


async def invalidate_page(ctx: ActorContext, hva: int, *, resume: str) -> None:
    """``mmu_notifier_invalidate_page`` (``ptep_clear_flush_notify``, v2.6.27-v4.12): the
    pte at ``hva`` has just been cleared and the caller still holds the page, which
    will not be freed until every subscriber's ``invalidate_page`` returned. In
    v3.1-v3.5 the caller holds the page-table lock; the code after the callbacks
    is the step ``resume``.

    Raises:
        AssertionError: the host is not a 2011 one (``->invalidate_page`` is gone
            since v4.13).
    """
    if not ctx.model.era.invalidate_page:
        raise AssertionError(f"a {ctx.model.era.value} host has no ->invalidate_page")
    ctx.note(f"ptep_clear_flush_notify: ->invalidate_page hva {hva:#x}")
    for ops in subscribers(ctx.model.mm):
        await ops.invalidate_page(ctx, hva)
    await ctx.point(resume)
