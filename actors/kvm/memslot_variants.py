"""``memslot_retry`` and the ways to get it wrong, each one step of it replaced
(docs/model.md section 7 says which oracle catches which)."""

from __future__ import annotations

from typing import Any

from mmu import Slot

from ..runtime.context import ActorContext
from .design import Design, Fault
from .memslots import MemslotRetry


async def _no_zap(design: MemslotRetry, ctx: ActorContext, slot: Slot) -> int:
    """A deletion that forgets ``kvm_arch_flush_shadow_memslot``'s zap."""
    ctx.note(f"leaves of memslot {slot.id} kept")
    return 0


async def _no_flush(design: MemslotRetry, ctx: ActorContext, slot: Slot, zapped: int) -> None:
    """A deletion that zaps the slot's leaves but leaves the TLBs as they are."""
    if zapped:
        ctx.note("no kvm_flush_remote_tlbs")


async def _no_invalid_check(design: MemslotRetry, ctx: ActorContext, f: Fault) -> bool:
    """A fault path that maps a gfn of an INVALID memslot like any other."""
    return False


async def _no_wait(design: MemslotRetry, ctx: ActorContext) -> None:
    """A swap that publishes while an invalidation is between its start and end."""
    await ctx.point("kvm_swap_active_memslots: mn_invalidate_lock")


async def _no_synchronize(design: MemslotRetry, ctx: ActorContext) -> None:
    """A swap that does not wait for SRCU readers of the old memslots."""
    await ctx.point("synchronize_srcu_expedited")
    ctx.note("no wait for SRCU readers")


async def _range_last(design: MemslotRetry, ctx: ActorContext, start: int, end: int) -> None:
    """``kvm_mmu_invalidate_begin`` restarting the range at every start, not only when
    ``in_progress`` leaves zero: a second invalidation hides the first one's range."""
    kvm = ctx.model.kvm
    kvm.invalidate_begin_ranged(ctx.name)
    if kvm.in_progress > 1:
        kvm.invalidate_range_reset(ctx.name)


def memslot_designs() -> tuple[Design, ...]:
    """``memslot_retry`` and its broken variants, for the catalog."""
    good = MemslotRetry(
        "memslot_retry",
        "several memslots: faults under SRCU retry on an INVALID slot and on an invalidation"
        " covering their gfn (x86 v6.8); deletion waits for invalidations and SRCU, zaps, flushes",
    )
    variants: dict[str, tuple[str, dict[str, Any]]] = {
        "memslot_no_zap": (
            "a memslot deletion that forgets to zap the slot's leaves",
            {"zap_memslot": _no_zap},
        ),
        "memslot_no_flush": (
            "a memslot deletion that zaps but does not flush TLBs",
            {"flush_memslot_tlbs": _no_flush},
        ),
        "memslot_no_invalid": (
            "a fault path that maps a gfn of a memslot marked KVM_MEMSLOT_INVALID",
            {"check_invalid": _no_invalid_check},
        ),
        "memslot_no_wait": (
            "a memslot swap that does not wait for mn_active_invalidate_count to drop to 0",
            {"wait_for_invalidations": _no_wait},
        ),
        "memslot_no_srcu": (
            "a memslot swap that does not synchronize_srcu before zapping and freeing",
            {"synchronize_srcu": _no_synchronize},
        ),
        "range_last": (
            "range-based retry whose range restarts at every invalidation start (not accumulated)",
            {"begin": _range_last},
        ),
    }
    return (good, *(good.replace(name=n, summary=s, **steps) for n, (s, steps) in variants.items()))
