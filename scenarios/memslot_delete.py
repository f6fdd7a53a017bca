"""Userspace deletes a memslot while a vcpu faults on it and the host invalidates its memory.

Two memslots of one page each (slot 0 at gfn 0, slot 1 at gfn 1, side by side
in one VMA). A vcpu writes gfn 1; QEMU deletes slot 1 with
``KVM_SET_USER_MEMORY_REGION`` (``-p move=1``: moves it to gfn 2 instead)
and, once the ioctl returned, munmaps its memory (``-p unmap=0``: keeps it);
a balloon thread meanwhile gives the page back (``madvise(MADV_DONTNEED)``),
so an invalidation can be in flight across the memslot swaps. A correct
deletion leaves no leaf and no TLB entry under the deleted slot
(``deleted_memslot``), and every invalidation it overlapped ends as it began
(``invalidate_leak``); docs/model.md section 7. Run it on its own with
``python scenarios/memslot_delete.py``.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import madvise_dontneed, munmap
from actors.kvm.memslots import MemslotChange, MemslotRetry, kvm_set_user_memory_region
from mmu import PAGE_SIZE, Memslots, Model
from scenarios.base import Scenario, full_world

#: the catalog designs this race tells apart
MEMSLOT_DESIGNS = (
    "memslot_retry",
    "memslot_no_zap",
    "memslot_no_flush",
    "memslot_no_invalid",
    "memslot_no_wait",
    "memslot_no_srcu",
)


def memslot_model(npages: int) -> Model:
    """``npages`` populated guest pages in one VMA, each its own memslot (slot i at gfn i)."""
    model = Model.build(npages=npages)
    base = model.kvm.memslot.userspace_addr
    slots = [(i, i, 1, base + i * PAGE_SIZE) for i in range(npages)]
    model.kvm.memslots = Memslots.of(model.log, model.fp, *slots)
    return model


async def _qemu(ctx: ActorContext, design: MemslotRetry, change: MemslotChange, unmap: bool) -> None:
    """QEMU unplugging a DIMM: the ioctl, then (it returned) freeing the memory."""
    await kvm_set_user_memory_region(ctx, design, change)
    if unmap:
        await munmap(ctx, change.hva, change.hva + PAGE_SIZE)


def build(design: Design | str, *, move: int = 0, unmap: int = 1) -> World:
    """Slots 0 and 1; a write to gfn 1, a delete (or move to gfn 2) of slot 1, a
    madvise(DONTNEED) of its page."""
    design = design_named(design)
    if move not in (0, 1) or unmap not in (0, 1):
        raise ValueError(f"'move' and 'unmap' must be 0 or 1 (got {move}, {unmap})")
    if not isinstance(design, MemslotRetry):
        raise ValueError(f"design {design.name!r} knows one memslot: it needs a MemslotRetry")
    model = memslot_model(2)
    kvm_init_mmu_notifier(model, design)
    hva = model.kvm.memslot.gfn_to_hva(1)
    change = MemslotChange("move", 1, base_gfn=2, hva=hva) if move else MemslotChange("delete", 1, hva=hva)
    return full_world(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(1,))),
            ActorSpec("qemu", functools.partial(_qemu, design=design, change=change, unmap=bool(unmap))),
            ActorSpec("balloon", functools.partial(madvise_dontneed, start=hva, end=hva + PAGE_SIZE)),
        ),
    )


SCENARIO = Scenario(
    name="memslot_delete",
    summary="userspace deletes a memslot while a vcpu faults on it and an invalidation is in flight",
    story=(
        "A memslot goes while the guest uses it: KVM must publish it INVALID, wait for SRCU readers"
        " and notifier invalidations, zap its leaves and flush before userspace may free the memory."
    ),
    build=build,
    designs=MEMSLOT_DESIGNS,
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "memslot_delete", *sys.argv[1:]]))
