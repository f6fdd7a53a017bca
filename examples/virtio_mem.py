"""A scenario of one's own: virtio-mem unplugs a block a hostile guest keeps touching.

The guest agreed to give a block of its RAM back; QEMU discards it with
``madvise(MADV_DONTNEED)`` so the host can reuse the memory. The guest
cannot be trusted to stop touching the block: KVM must stay safe whatever
it does, and the memory must really go back to the host. This file defines
the scenario, an oracle of its own for "the memory went back", and uses the
catalog's designs:

    mmurace run examples/virtio_mem.py                         every design in turn
    mmurace run examples/virtio_mem.py --design pin --oracle memory_returned
    mmurace list examples/virtio_mem.py
"""

from __future__ import annotations

import functools

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import madvise_dontneed
from mmu import ORACLES as CATALOG_ORACLES, PAGE_SIZE, Model, Violation
from scenarios import Scenario


def memory_returned(model: Model) -> Violation | None:
    """At the end of a run, every frame the host no longer maps is free again."""
    if not model.ended:
        return None
    mapped = {pte.pfn for pte in model.mm.ptes.values()}
    for pfn in sorted(model.frames.frames):
        refs = model.frames[pfn].refcount
        if pfn not in mapped and refs:
            return Violation(
                "memory_returned",
                f"pfn {pfn:#x} is mapped by no host pte but keeps {refs} reference(s):"
                " the unplugged memory never went back to the host",
            )
    return None


#: the oracles this file adds: ``--oracle memory_returned`` selects it
ORACLES = {"memory_returned": memory_returned}


async def _unplug(ctx: ActorContext, start: int, end: int) -> None:
    """QEMU's ``virtio_mem_unplug_sb``: ``ram_block_discard_range`` -> madvise(DONTNEED)."""
    await madvise_dontneed(ctx, start, end)


def build(design: Design | str, *, pages: int = 2, accesses: int = 2) -> World:
    """A block of ``pages`` guest pages, each written ``accesses`` times by a vcpu that
    ignores the unplug, while QEMU discards the whole block once."""
    design = design_named(design)
    if pages < 1 or accesses < 1:
        raise ValueError(f"'pages' and 'accesses' must be >= 1 (got {pages}, {accesses})")
    model = Model.build(npages=pages)
    kvm_init_mmu_notifier(model, design)
    start = model.kvm.memslot.gfn_to_hva(0)
    block = functools.partial(_unplug, start=start, end=start + pages * PAGE_SIZE)
    return World(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=tuple(range(pages)) * accesses)),
            ActorSpec("qemu", block),
        ),
        {**CATALOG_ORACLES, **ORACLES},
    )


SCENARIO = Scenario(
    name="virtio_mem",
    summary="QEMU unplugs (madvise DONTNEED) a block of guest RAM a hostile vcpu keeps writing",
    story="A guest cannot be trusted to stop touching memory it gave back; the host must get it back anyway.",
    build=build,
    designs=("setup_time", "no_retry", "seq_retry", "pin"),
)
