"""KVM's MMU-notifier callbacks (virt/kvm/kvm_main.c ``kvm_mmu_notifier_*``).

KVM registers on the VMM's mm (``kvm_init_mmu_notifier``) and serves each
invalidation the host announces: in the kernel synchronously on the host's
thread, here as a daemon actor whose steps run in the caller's thread (the
trace's ``--threads`` view and lockdep see them there). What each callback
does is the design's (``Design.invalidate_range_start``/``_end``).
"""

from __future__ import annotations

from ..host.notifier import InvalidateEnd, InvalidateStart, mmu_notifier_register
from ..runtime.context import ActorContext
from ..runtime.mailbox import Mailbox
from .design import Design
from .designs import design_named


async def notifier_dispatcher(ctx: ActorContext, box: Mailbox, *, design: Design | str = "seq_retry") -> None:
    """Serve invalidations forever with ``design``'s callbacks; the run does not wait
    for this daemon."""
    design = design_named(design)
    # kvm_init_mmu_notifier -> mmu_notifier_register(&kvm->mmu_notifier, current->mm):
    # done before the first point, so before any step of any actor
    mmu_notifier_register(ctx.model.mm, box)
    while True:
        request = await ctx.receive(box, "mmu_notifier")
        msg = request.message
        if isinstance(msg, InvalidateStart):
            ctx.relabel("kvm_mmu_notifier_invalidate_range_start")
            ctx.note(f"range {msg.start:#x}-{msg.end:#x} from {request.sender}")
            await design.invalidate_range_start(ctx, msg.start, msg.end)
        elif isinstance(msg, InvalidateEnd):
            ctx.relabel("kvm_mmu_notifier_invalidate_range_end")
            ctx.note(f"range {msg.start:#x}-{msg.end:#x} from {request.sender}")
            await design.invalidate_range_end(ctx, msg.start, msg.end)
        else:
            raise TypeError(f"notifier got an unknown message {msg!r}")
        ctx.answer(request)
