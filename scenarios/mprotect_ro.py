"""Userspace makes guest RAM read-only while the guest writes it.

    "What happens if mmu notifiers tell you to write protect a page?"
    (Avi Kivity, 2011-11-20)

One vcpu writes gfn 0 ``accesses`` times; meanwhile the VMM
``mprotect(PROT_READ)``s the page backing it. ``change_protection``
brackets the pte write-protect with invalidate_range_start/end: a writable
spte must not survive it (docs/model.md O2), since the guest would then write
a page the host believes read-only. Run it with
``python scenarios/mprotect_ro.py``, or ``mmurace run mprotect_ro``.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import mprotect_readonly
from mmu import PAGE_SIZE, Model
from scenarios.base import Scenario, full_world


async def _qemu(ctx: ActorContext, hva: int) -> None:
    await mprotect_readonly(ctx, hva, hva + PAGE_SIZE)


def build(design: Design | str, *, accesses: int = 3) -> World:
    """One guest page written ``accesses`` times, made read-only once by the host."""
    design = design_named(design)
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    model = Model.build(npages=1)
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
    name="mprotect_ro",
    summary="host userspace write-protects guest RAM while a vcpu writes it",
    story=(
        "Avi: \"What happens if mmu notifiers tell you to write protect a page?\" "
        "A writable spte must not outlive mprotect(PROT_READ)."
    ),
    build=build,
    designs=("setup_time", "no_retry", "seq_retry"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "mprotect_ro", *sys.argv[1:]]))
