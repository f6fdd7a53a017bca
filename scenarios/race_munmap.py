"""Host userspace unmaps guest RAM, and maps fresh memory there, while a vcpu faults.

    "There is no 'the VMA'. There could be multiple VMAs, or none (with the
    mmap() coming afterwards). You could do all the checks you want here,
    only to have host userspace remap it under your feet."
    (Avi Kivity, 2011-11-20)

One guest page, already populated by the VMM (it loaded the guest image), so
a fault may take it lockless (gup-fast); one vcpu writes gfn 0 ``accesses``
times. Meanwhile QEMU munmap()s the page and mmap()s fresh memory in the
hole (two syscalls where race_remap's MAP_FIXED is one). What munmap holds
while it zaps depends on the host (``-p era=``, ``mmu/era.py``): since v4.20
it detaches the VMA under ``mmap_lock`` for write and downgrades to read
before it zaps (docs/model.md 3.1), so a fault holding ``mmap_lock`` for read
can run inside the window; on the 2011 host (``-p era=2011``) it holds the
write lock throughout. Run it on its own with ``python scenarios/race_munmap.py``.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import mmap, munmap
from mmu import PAGE_SIZE, Era, Model
from scenarios.base import Scenario, full_world


async def _qemu(ctx: ActorContext, hva: int) -> None:
    """QEMU unplugging guest RAM and plugging fresh memory in its place."""
    if await munmap(ctx, hva, hva + PAGE_SIZE):
        await mmap(ctx, hva, hva + PAGE_SIZE)


def build(design: Design | str, *, accesses: int = 2, era: int = Era.TODAY.value) -> World:
    """One populated guest page, ``accesses`` guest writes to it, one munmap and
    mmap of it by QEMU on a host of ``era``."""
    design = design_named(design)
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    model = Model.build(npages=1, era=Era.from_year(era))
    kvm_init_mmu_notifier(model, design)
    hva = model.kvm.memslot.gfn_to_hva(0)
    return full_world(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(0,) * accesses)),
            ActorSpec("qemu", functools.partial(_qemu, hva=hva)),
        ),
    )


SCENARIO = Scenario(
    name="race_munmap",
    summary="host userspace munmaps guest RAM, then mmaps it afresh, while a vcpu faults on it",
    story=(
        "Avi: \"There could be multiple VMAs, or none (with the mmap() coming afterwards). You "
        'could do all the checks you want here, only to have host userspace remap it under your '
        'feet." Since v4.20 munmap zaps under mmap_lock for read: holding it keeps nothing out.'
    ),
    build=build,
    designs=("setup_time", "no_retry", "seq_retry", "mmap_locked"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "race_munmap", *sys.argv[1:]]))
