"""Host userspace: the VMM remapping guest RAM under KVM's feet.

The operations themselves, each in the kernel's order (docs/model.md section
3), are in ``actors.host.syscalls``; this is the actor race_remap runs.
"""

from __future__ import annotations

from ..runtime.context import ActorContext
from .syscalls import mmap_fixed


async def remapper(ctx: ActorContext, hva: int, times: int = 1) -> None:
    """``mmap(hva, MAP_FIXED)`` over the VMA holding ``hva``, ``times`` times.

    The old frames are freed inside the invalidation window, as when the
    mmu_gather batch fills and ``tlb_flush_mmu`` puts its pages before
    ``invalidate_range_end``; a page freed after end is the easier case.
    """
    for _ in range(times):
        if not await mmap_fixed(ctx, hva):
            return
