"""A vcpu thread: the guest touching its pages, and KVM's fault path when it can't."""

from __future__ import annotations

from ..runtime.context import ActorContext
from .design import Design


async def vcpu(
    ctx: ActorContext, design: Design, gfns: tuple[int, ...], *, write: bool | tuple[bool, ...] = True
) -> None:
    """Register guest memory, then access each gfn in turn.

    ``write`` is one kind for every access, or one per gfn. An access through
    the vcpu's TLB, or through a present spte it then caches, is one hardware
    step (the actor's name names the vcpu and its TLB). A missing spte is a VM
    exit into the design's fault handler, then the access is retried. A fault
    that fails (-EFAULT) ends the vcpu: KVM_RUN returns to userspace.
    """
    kvm = ctx.model.kvm
    writes = write if isinstance(write, tuple) else (write,) * len(gfns)
    if len(writes) != len(gfns):
        raise ValueError(f"'write' must give one kind per gfn (got {len(writes)} for {len(gfns)})")
    await design.prepare(ctx)
    for gfn, is_write in zip(gfns, writes, strict=True):
        kind = "write" if is_write else "read"
        while True:
            await ctx.point(f"guest {kind} gfn {gfn:#x}")
            if kvm.guest_access(ctx.name, gfn, write=is_write) is not None:
                break
            ctx.model.ksm.fault(ctx.thread, kvm.memslot.gfn_to_hva(gfn), write=is_write)
            handled = await design.fault(ctx, gfn, is_write)
            ctx.model.ksm.fault_done(ctx.thread)
            if not handled:
                ctx.model.kvm_run_efault(gfn, write=is_write)
                return
