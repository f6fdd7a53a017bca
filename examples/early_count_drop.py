"""A variant of KVM's invalidate_range_end callback: let faults in sooner.

``kvm_mmu_invalidate_end`` bumps ``mmu_invalidate_seq`` and drops
``in_progress`` in one ``mmu_lock`` section. This variant drops the count
first, in a section of its own, so that waiting faults may proceed while
it is still finishing, and bumps seq in a second section. Between the two,
a fault that took its seq snapshot before the invalidation rechecks and
sees nothing: the count is 0 and seq has not moved yet (R3 in
docs/model.md), so it installs the page the invalidation just unmapped.

    mmurace matrix --design examples/early_count_drop.py
"""

from actors import ActorContext, SeqRetry


class EarlyCountDrop(SeqRetry):
    async def invalidate_range_end(self, ctx: ActorContext, start: int, end: int) -> None:
        kvm = ctx.model.kvm
        await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: in_progress--")
        await self.drop_count(ctx, start, end)
        ctx.spin_unlock(kvm.mmu_lock)
        await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: mmu_invalidate_seq++")
        await self.bump_seq(ctx, start, end)
        ctx.spin_unlock(kvm.mmu_lock)


EARLY_COUNT_DROP = EarlyCountDrop(
    "early_count_drop",
    "seq_retry whose invalidate_range_end drops in_progress, unlocks, then bumps seq",
    base="seq_retry",
)
