"""The retry loop every fault path with a seq check shares.

KVM does not loop inside the fault handler: a fault that lost the race to an
invalidation returns to the guest (``RET_PF_RETRY``, ``RESUME_GUEST``), which
faults again. A re-fault while the invalidation is still in progress would
find it in progress again and again until it ends: the vcpu spins, changing
nothing, and a schedule that never lets the invalidating thread finish is
unfair, not a bug. So the re-fault waits for the invalidation to end, and
only retries caused by new invalidations count towards the livelock bound.
"""

from __future__ import annotations

from ..runtime.context import ActorContext


async def enter(ctx: ActorContext, label: str, *, after_retry: bool) -> None:
    """The step ``label`` that starts a fault attempt; after a retry that met an
    invalidation in progress, it waits for that invalidation to end."""
    kvm = ctx.model.kvm
    await ctx.point(
        label,
        guard=(lambda: kvm.in_progress == 0) if after_retry else None,
        waits_for="the invalidation in progress to end",
    )


def retry(ctx: ActorContext, gfn: int, attempt: int, note: str) -> bool:
    """Record a lost race (``note``) and report a livelock at the bound; returns
    whether the next attempt must wait for an invalidation in progress."""
    ctx.note(note)
    if attempt == ctx.retry_bound:
        ctx.report(
            "livelock",
            f"{ctx.name} retried its fault on gfn {gfn:#x} {attempt} times:"
            " invalidations keep landing between gup and the recheck",
        )
    return ctx.model.kvm.in_progress != 0
