"""A vcpu thread: the guest touching its pages, and KVM's fault path when it can't."""

from __future__ import annotations

from .context import ActorContext
from .designs import Design


async def vcpu(ctx: ActorContext, design: Design, gfns: tuple[int, ...], *, write: bool = True) -> None:
    """Register guest memory, then access each gfn in turn.

    An access through a present spte is one hardware step. A missing spte is
    a VM exit into the design's fault handler, then the access is retried.
    A fault that fails (-EFAULT) ends the vcpu: KVM_RUN returns to userspace.
    """
    kvm = ctx.model.kvm
    await design.prepare(ctx)
    kind = "write" if write else "read"
    for gfn in gfns:
        while True:
            await ctx.point(f"guest {kind} gfn {gfn:#x}")
            if kvm.guest_access(gfn, write=write) is not None:
                break
            if not await design.fault(ctx, gfn, write):
                ctx.note("KVM_RUN returns -EFAULT to userspace")
                return
