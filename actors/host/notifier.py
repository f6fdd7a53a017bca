"""The MMU-notifier chain, host side (mm/mmu_notifier.c).

Host operations announce a change of host ptes with
``mmu_notifier_invalidate_range_start`` and ``_end``; whoever registered on
the mm (KVM, with ``mmu_notifier_register``) is called back. In the kernel
the callbacks run synchronously on the thread changing the page table; here
the subscriber is an actor serving a mailbox, and the host operation blocks
(``ActorContext.call``) until the reply is in. This module knows nothing of
what the subscriber does: KVM's callbacks are in ``actors.kvm.mmu_notifier``.
"""

from __future__ import annotations

import weakref

import attrs

from mmu import HostMm

from ..runtime.context import ActorContext
from ..runtime.mailbox import Mailbox

#: ``mm->notifier_subscriptions``: the mailbox of the subscriber serving each mm's
#: invalidations. Weak: a world and its mm die after their run.
_SUBSCRIPTIONS: weakref.WeakKeyDictionary[HostMm, Mailbox] = weakref.WeakKeyDictionary()


def mmu_notifier_register(mm: HostMm, box: Mailbox) -> None:
    """``mmu_notifier_register``: invalidations of ``mm`` are from now on served from ``box``."""
    _SUBSCRIPTIONS[mm] = box


def subscription(mm: HostMm) -> Mailbox:
    """Return the mailbox of the notifier registered on ``mm``, for host code that
    invalidates from a thread holding no mailbox (a vcpu's gup breaking COW).

    Raises:
        LookupError: no notifier dispatcher runs for ``mm`` in this world.
    """
    box = _SUBSCRIPTIONS.get(mm)
    if box is None:
        raise LookupError("no mmu notifier is registered on this mm: the world needs a notifier_dispatcher")
    return box


@attrs.frozen
class InvalidateStart:
    """``mmu_notifier_invalidate_range_start`` for host range [start, end)."""

    start: int
    end: int


@attrs.frozen
class InvalidateEnd:
    """``mmu_notifier_invalidate_range_end`` for host range [start, end)."""

    start: int
    end: int


async def invalidate_start(
    ctx: ActorContext, notifier: Mailbox, start: int, end: int, *, resume: str
) -> None:
    """``mmu_notifier_invalidate_range_start``: returns once KVM zapped [start, end) (R4).

    The code after it is the step ``resume``.
    """
    await ctx.call(
        notifier,
        InvalidateStart(start, end),
        label="mmu_notifier_invalidate_range_start",
        resume=resume,
    )


async def invalidate_end(
    ctx: ActorContext, notifier: Mailbox, start: int, end: int, *, resume: str
) -> None:
    """``mmu_notifier_invalidate_range_end``: KVM bumps seq, then drops in_progress (R3)."""
    await ctx.call(
        notifier,
        InvalidateEnd(start, end),
        label="mmu_notifier_invalidate_range_end",
        resume=resume,
    )
