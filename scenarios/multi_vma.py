""" "There is no 'the VMA'": one memslot over several VMAs, and a hole.

    "There could be multiple VMAs, or none (with the mmap() coming
    afterwards)." ... "This, too, must be done at get_user_pages() time."
    (Avi Kivity, 2011-11-20, on the VM_READ|VM_WRITE check)

A three-page memslot: gfn 0 in a read-write VMA, gfn 1 in a read-only VMA
(a firmware image, say), gfn 2 a hole that the VMM mmaps read-write while
the guest runs. The vcpu writes gfn 0, reads gfn 1, writes gfn 2. Access
rights are per page and may change after registration: a design must ask
get_user_pages at fault time. Refusing an access the host allows is
``spurious_efault``; mapping gfn 1 writable would be ``writable_spte``.
Run it with ``python scenarios/multi_vma.py``.
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
    vcpu,
)
from actors.host import mmap
from mmu import PAGE_SIZE, Model, Region
from scenarios.base import Scenario, full_world


async def _qemu(ctx: ActorContext, hva: int) -> None:
    await mmap(ctx, hva, hva + PAGE_SIZE, "rw")


def build(design: Design | str) -> World:
    """rw VMA | read-only VMA | hole mmapped rw during the run; write, read, write."""
    design = design_named(design)
    model = Model.build_regions(Region(1, "rw"), Region(1, "r"), Region(1, mapped=False))
    kvm_init_mmu_notifier(model, design)  # nothing is unmapped: it is never called
    hole = model.kvm.memslot.gfn_to_hva(2)
    return full_world(
        model,
        (
            ActorSpec(
                "vcpu0",
                functools.partial(vcpu, design=design, gfns=(0, 1, 2), write=(True, False, True)),
            ),
            ActorSpec("qemu", functools.partial(_qemu, hva=hole)),
        ),
    )


SCENARIO = Scenario(
    name="multi_vma",
    summary="a memslot over a rw VMA, a read-only VMA and a hole mmapped later",
    story=(
        "Avi: \"There is no 'the VMA'. There could be multiple VMAs, or none (with the mmap() "
        'coming afterwards)." The VM_READ|VM_WRITE check "must be done at get_user_pages() time."'
    ),
    build=build,
    designs=("setup_time", "no_retry", "seq_retry", "pin"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "multi_vma", *sys.argv[1:]]))
