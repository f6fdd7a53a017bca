"""PPC970: no fault interception, so pages are pinned, and userspace remaps anyway.

    "once we have given the guest access to a page, we can't revoke it. We
    will have to take and keep a reference to the page so it doesn't go
    away underneath us, which of course doesn't guarantee that userland can
    continue to see it, but does at least mean we won't corrupt memory."
    (Paul Mackerras, 2011-11-21)

One vcpu writes gfn 0 ``accesses`` times while the VMM mmap(MAP_FIXED)s
over it ``remaps`` times. The ``pin`` design keeps gup's reference for the
VM's life and its notifier callbacks zap nothing: no stale spte, no
corruption, but the guest keeps its old page (divergence) and that page
stays pinned though nobody maps it (pinned_pages, at the end of the run).
Run it with ``python scenarios/pin_ppc970.py``.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, remapper, vcpu
from mmu import Model
from scenarios.base import Scenario, full_world


def build(design: Design | str, *, accesses: int = 2, remaps: int = 1) -> World:
    """One guest page, ``accesses`` guest writes to it, ``remaps`` host remaps of it."""
    design = design_named(design)
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    if remaps < 0:
        raise ValueError(f"'remaps' must be >= 0 (got {remaps})")
    model = Model.build(npages=1)
    kvm_init_mmu_notifier(model, design)
    hva = model.kvm.memslot.gfn_to_hva(0)
    return full_world(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(0,) * accesses)),
            ActorSpec("qemu", functools.partial(remapper, hva=hva, times=remaps)),
        ),
    )


SCENARIO = Scenario(
    name="pin_ppc970",
    summary="pinned guest pages (PPC970) while host userspace remaps guest RAM",
    story=(
        "Paul: \"We will have to take and keep a reference to the page so it doesn't go away "
        "underneath us, which of course doesn't guarantee that userland can continue to see it\""
    ),
    build=build,
    designs=("setup_time", "seq_retry", "pin"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "pin_ppc970", *sys.argv[1:]]))
