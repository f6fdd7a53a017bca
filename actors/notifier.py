"""The MMU-notifier dispatcher: delivers host invalidations to KVM's callbacks.

In the kernel the callbacks run synchronously on the thread changing the host
page table; here a daemon actor runs them while the host operation waits for
the reply (``ActorContext.call``). KVM's side of each callback is one
``mmu_lock`` critical section (KERNEL.md 1.3): ``in_progress++`` and the zap
in the same section (R2), zap and flush before start returns (R4), and
``seq++`` before ``in_progress--`` at end (R3).
"""

from __future__ import annotations

import weakref

import attrs

from mmu import HostMm

from .context import ActorContext
from .mailbox import Mailbox

#: ``mm->notifier_subscriptions``: the dispatcher serving each mm's invalidations.
#: Weak: a world and its mm die after their run.
_SUBSCRIPTIONS: weakref.WeakKeyDictionary[HostMm, Mailbox] = weakref.WeakKeyDictionary()


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


async def notifier_dispatcher(ctx: ActorContext, box: Mailbox, *, arch_unmap: bool = True) -> None:
    """Serve invalidations forever; the run does not wait for this daemon.

    ``arch_unmap=False`` is PPC970 (``kvm->arch.using_mmu_notifiers == 0``):
    the generic code still counts the invalidation, but the arch zap
    (``kvm_unmap_hva_range_hv``) does nothing, so sptes survive it.
    """
    kvm = ctx.model.kvm
    # kvm_init_mmu_notifier -> mmu_notifier_register(&kvm->mmu_notifier, current->mm):
    # done before the first point, so before any step of any actor
    _SUBSCRIPTIONS[ctx.model.mm] = box
    while True:
        request = await ctx.receive(box, "mmu_notifier")
        msg = request.message
        if isinstance(msg, InvalidateStart):
            ctx.relabel("kvm_mmu_notifier_invalidate_range_start")
            ctx.note(f"range {msg.start:#x}-{msg.end:#x} from {request.sender}")
            await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: invalidate_begin, unmap, flush")
            kvm.invalidate_begin(ctx.name)
            if not arch_unmap:
                ctx.note("kvm_unmap_hva_range: !using_mmu_notifiers (PPC970), nothing zapped")
            elif kvm.unmap_hva_range(msg.start, msg.end, ctx.name):
                ctx.note("kvm_flush_remote_tlbs")
            ctx.spin_unlock(kvm.mmu_lock)
        elif isinstance(msg, InvalidateEnd):
            ctx.relabel("kvm_mmu_notifier_invalidate_range_end")
            ctx.note(f"range {msg.start:#x}-{msg.end:#x} from {request.sender}")
            await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: kvm_mmu_invalidate_end")
            kvm.invalidate_end(ctx.name)
            ctx.spin_unlock(kvm.mmu_lock)
        else:
            raise TypeError(f"notifier got an unknown message {msg!r}")
        ctx.answer(request)
