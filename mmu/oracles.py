"""Oracles: judges of a model state, run after every step.

Each oracle is a pure function ``Model -> Violation | None``. They read the
state the way KERNEL.md's "key oracles" do (O1 stale leaf, divergence), and
read the model's record of hardware accesses for corruption.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .model import Model


@attrs.frozen
class Violation:
    """What an oracle found wrong."""

    oracle: str
    message: str


def stale_spte(model: Model) -> Violation | None:
    """An spte points at a frame freed or reused since it was installed (O1).

    KVM holds no reference while a page is mapped (R6), so the only thing
    keeping such a frame is that every host change zaps the spte first (R4).
    """
    kvm, frames = model.kvm, model.frames
    for gfn in sorted(kvm.sptes):
        spte = kvm.sptes[gfn]
        if not frames.is_current(spte.pfn, spte.generation):
            return Violation(
                "stale_spte",
                f"spte gfn {gfn:#x} -> pfn {spte.pfn:#x}, but "
                + frames.describe(spte.pfn, spte.generation),
            )
    return None


def corruption(model: Model) -> Violation | None:
    """A guest access went through a stale spte: somebody else's memory was touched."""
    if model.kvm.bad_accesses:
        return Violation("corruption", model.kvm.bad_accesses[0])
    return None


def divergence(model: Model) -> Violation | None:
    """With no invalidation in progress, an spte disagrees with the host pte of its hva."""
    kvm, mm = model.kvm, model.mm
    if kvm.in_progress:
        return None
    for gfn in sorted(kvm.sptes):
        spte = kvm.sptes[gfn]
        hva = kvm.memslot.gfn_to_hva(gfn)
        pte = mm.ptes.get(hva)
        if pte is None or pte.pfn != spte.pfn:
            host = "not present" if pte is None else f"-> pfn {pte.pfn:#x}"
            return Violation(
                "divergence",
                f"spte gfn {gfn:#x} -> pfn {spte.pfn:#x}, but host pte of hva {hva:#x} is {host}"
                " and no invalidation is in progress",
            )
    return None


Oracle = Callable[[Model], Violation | None]

#: every oracle by name, in the order they are checked
ORACLES: dict[str, Oracle] = {
    "stale_spte": stale_spte,
    "corruption": corruption,
    "divergence": divergence,
}
