"""A design variant: "in_progress is enough", the seq check dropped from the recheck.

The idea sounds right: an invalidation that could have freed our page must
be in progress while it frees it, so checking ``in_progress`` under
``mmu_lock`` looks like enough. It is not: an invalidation may start *and
end* between get_user_pages and the recheck. in_progress is back to 0 then,
and only ``mmu_invalidate_seq`` remembers that it ran (rule R1/R2 in
docs/model.md). Try it:

    mmurace matrix --design examples/in_progress_only.py
    mmurace explore race_remap --design examples/in_progress_only.py
"""

from actors import DESIGNS, ActorContext, Design, Fault


async def recheck(design: Design, ctx: ActorContext, f: Fault) -> bool:
    """Retry only while an invalidation is in progress."""
    return ctx.model.kvm.check_in_progress(ctx.name)


IN_PROGRESS_ONLY = DESIGNS["seq_retry"].replace(
    recheck=recheck,
    name="in_progress_only",
    summary="seq_retry whose recheck looks at in_progress only, not at seq",
)
