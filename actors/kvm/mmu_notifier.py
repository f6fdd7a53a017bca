"""KVM's MMU-notifier callbacks (virt/kvm/kvm_main.c ``kvm_mmu_notifier_*``).

``kvm_init_mmu_notifier`` registers KVM on the VMM's mm when the VM is
created; from then on every invalidation the host announces calls KVM back
in the host's own thread. What each callback does is the design's
(``Design.invalidate_range_start``/``_end``, ``change_pte``,
``invalidate_page``; docs/model.md 1.3).
"""

from __future__ import annotations

import attrs

from mmu import HostPte, Model

from ..host.notifier import mmu_notifier_register
from ..runtime.context import ActorContext
from .design import Design
from .designs import design_named


@attrs.frozen
class KvmMmuNotifier:
    """``kvm->mmu_notifier`` with ``kvm_mmu_notifier_ops``: the design's callbacks
    (``kvm_mmu_notifier_invalidate_range_start``/``_end``; on a 2011 host also
    ``_change_pte`` and ``_invalidate_page``), whose steps show in the calling host
    thread's column."""

    design: Design

    async def invalidate_range_start(self, ctx: ActorContext, start: int, end: int) -> None:
        await self.design.invalidate_range_start(ctx, start, end)

    async def invalidate_range_end(self, ctx: ActorContext, start: int, end: int) -> None:
        await self.design.invalidate_range_end(ctx, start, end)

    async def change_pte(self, ctx: ActorContext, hva: int, pte: HostPte) -> None:
        await self.design.change_pte(ctx, hva, pte)

    async def invalidate_page(self, ctx: ActorContext, hva: int) -> None:
        await self.design.invalidate_page(ctx, hva)


def kvm_init_mmu_notifier(model: Model, design: Design | str) -> Design:
    """``kvm_init_mmu_notifier`` -> ``mmu_notifier_register(&kvm->mmu_notifier, current->mm)``,
    at VM creation: ``design``'s callbacks now serve every invalidation of the
    model's mm. Returns the design, for the actors that run it."""
    design = design_named(design)
    mmu_notifier_register(model.mm, KvmMmuNotifier(design))
    return design
