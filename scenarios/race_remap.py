"""The headline race: host userspace remaps guest RAM under the fault path.

    "There is no 'the VMA'. There could be multiple VMAs, or none (with the
    mmap() coming afterwards). You could do all the checks you want here,
    only to have host userspace remap it under your feet. This needs to be
    done on a per-page basis at fault time."  (Avi Kivity, 2011-11-20)

One vcpu writes gfn 0 twice; meanwhile the VMM mmap(MAP_FIXED)s a new
mapping over the page backing it, so its frame is freed; KVM's notifier
callbacks run in QEMU's thread. With ``-p move=1`` the VMM
instead mremap()s guest RAM elsewhere and mmaps fresh memory in its place:
no frame is freed, so a design that keeps a stale spte shows as divergence,
not as a use after free. Run it on its own with
``python scenarios/race_remap.py``, or ``mmurace run race_remap``.
"""

from __future__ import annotations

import functools
import sys

from actors import (
    ActorContext,
    ActorSpec,
    Design,
    World,
    design_named,
    kvm_init_mmu_notifier,
    remapper,
    vcpu,
)
from actors.host import mmap, mremap_move
from actors.runtime import buried
from mmu import PAGE_SIZE, Model
from scenarios.base import Scenario

#: where mremap moves guest RAM to, one step further for each move
MOVE_DISTANCE = 0x100000


async def _mover(ctx: ActorContext, hva: int, times: int) -> None:
    """QEMU moving guest RAM away (mremap) and mapping fresh memory in its place."""
    for i in range(1, times + 1):
        if await mremap_move(ctx, hva, hva + i * MOVE_DISTANCE):
            await mmap(ctx, hva, hva + PAGE_SIZE)


def build(
    design: Design | str,
    *,
    accesses: int = 2,
    remaps: int = 1,
    noise: int = 0,
    move: int = 0,
    vcpus: int = 1,
) -> World:
    """One guest page, ``accesses`` guest writes to it, ``remaps`` host remaps of it
    (mmap(MAP_FIXED), or with ``move`` 1, mremap away and mmap afresh); ``noise``
    unrelated steps of their own work around the vcpu's and QEMU's racing ones.
    With ``vcpus`` 2, a second vcpu writes the page as often: a walk on another CPU
    than the one that writes the HPTE (docs/model.md 6.6)."""
    design = design_named(design)
    if move not in (0, 1):
        raise ValueError(f"'move' must be 0 or 1 (got {move})")
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    if remaps < 0:
        raise ValueError(f"'remaps' must be >= 0 (got {remaps})")
    if noise < 0:
        raise ValueError(f"'noise' must be >= 0 (got {noise})")
    if vcpus not in (1, 2):
        raise ValueError(f"'vcpus' must be 1 or 2 (got {vcpus})")
    model = Model.build(npages=1)
    model.hpt.walkers = vcpus
    kvm_init_mmu_notifier(model, design)
    hva = model.kvm.memslot.gfn_to_hva(0)
    return World(
        model,
        (
            ActorSpec(
                "vcpu0",
                buried(
                    functools.partial(vcpu, design=design, gfns=(0,) * accesses),
                    noise,
                    "guest works on its other pages",
                ),
            ),
            ActorSpec(
                "qemu",
                buried(
                    functools.partial(_mover if move else remapper, hva=hva, times=remaps),
                    noise,
                    "qemu runs its device models",
                ),
            ),
            *(
                ActorSpec(f"vcpu{i}", functools.partial(vcpu, design=design, gfns=(0,) * accesses))
                for i in range(1, vcpus)
            ),
        ),
    )


SCENARIO = Scenario(
    name="race_remap",
    summary="host userspace remaps guest RAM while a vcpu faults on it",
    story=(
        "Avi: \"You could do all the checks you want here, only to have host userspace "
        "remap it under your feet. This needs to be done on a per-page basis at fault time.\" "
        "The patch under review pinned RAM at registration: no use after free, but the guest "
        "keeps the old page (divergence) and the page is never freed; its passthrough slots, "
        "which pin nothing, are passthrough_remap's."
    ),
    build=build,
    # pin has its own scenario, pin_ppc970
    designs=(
        "setup_time", "no_retry", "seq_retry", "gup_in_lock", "power7_hpt", "always_write", "power7_abba",
    ),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "race_remap", *sys.argv[1:]]))
