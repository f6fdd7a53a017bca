"""KVM's MMU-notifier callbacks (virt/kvm/kvm_main.c ``kvm_mmu_notifier_*``).

KVM registers on the VMM's mm (``kvm_init_mmu_notifier``) and serves each
invalidation the host announces: in the kernel synchronously on the host's
thread, here as a daemon actor whose steps run in the caller's thread (the
trace's ``--threads`` view and lockdep see them there). Each callback is one
``mmu_lock`` critical section (KERNEL.md 1.3): ``in_progress++`` and the zap
in the same section (R2), zap and flush before start returns (R4), and
``seq++`` before ``in_progress--`` at end (R3).
"""

from __future__ import annotations

from ..host.notifier import InvalidateEnd, InvalidateStart, mmu_notifier_register
from ..runtime.context import ActorContext
from ..runtime.mailbox import Mailbox


async def notifier_dispatcher(ctx: ActorContext, box: Mailbox, *, arch_unmap: bool = True) -> None:
    """Serve invalidations forever; the run does not wait for this daemon.

    ``arch_unmap=False`` is PPC970 (``kvm->arch.using_mmu_notifiers == 0``):
    the generic code still counts the invalidation, but the arch zap
    (``kvm_unmap_hva_range_hv``) does nothing, so sptes survive it.
    """
    kvm = ctx.model.kvm
    # kvm_init_mmu_notifier -> mmu_notifier_register(&kvm->mmu_notifier, current->mm):
    # done before the first point, so before any step of any actor
    mmu_notifier_register(ctx.model.mm, box)
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
