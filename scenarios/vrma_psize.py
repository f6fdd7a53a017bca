"""POWER7's VRMA: the page size read at first vcpu run, then userspace remaps gpa 0.

    "We will need to look for the page size of whatever is mapped at gpa 0
    at that point and give it to the hardware."  (Paul Mackerras)
    "Ok.  Do you need to check at fault time that your assumptions haven't
    changed, then?"  (Avi Kivity, 2011-11-21)

The host is a POWER7 one: ppc64 with 64K base pages (``CONFIG_PPC_64K_PAGES``;
one model frame each, ``FrameTable.scale`` 16, docs/model.md 5.6). Guest RAM
at gpa 0 is 16M, backed by one 16M hugetlbfs page (a compound page mapped
by one huge leaf), as the patches under review required of guest memory.
The vcpu's first run sets up the VRMA from that (``kvmppc_hv_setup_htab_rma``:
16M VRMA pages), then the guest, in real mode, writes gfn 0 ``accesses``
times. Meanwhile the VMM mmap(MAP_FIXED)s gpa 0's memory again, now backed
by base pages. A VRMA HPTE entered after that with the 16M size maps 16M of
host memory of which only the first 64K is the guest's page (``vrma_psize``,
docs/model.md O4). ``vrma_checked`` compares the VRMA size with
the page gup returned at fault time, after its seq snapshot (R5), and fails the fault (-EFAULT) as
the kernel does; the VM then cannot run in real mode, but nothing is
corrupted. That refusal is not ``spurious_efault``, which this scenario does
not judge: the VMA allows the access, but no VRMA page fits in it.

Run it with ``python scenarios/vrma_psize.py``.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import mmap_fixed
from mmu import ORACLES, PAGE_SIZE, Model, Region
from scenarios.base import Scenario

#: the host's base page: ppc64 kernels for POWER7 were built with 64K pages
BASE_PAGE = 0x10000
#: host bytes per model byte: a model frame is one 64K base page
SCALE = BASE_PAGE // PAGE_SIZE
#: the page backing gpa 0 when the VM starts, in model bytes: a 16M hugetlbfs page
LARGE_PAGE = 0x1000000 // SCALE

#: the oracles that judge this scenario (see the module docstring on spurious_efault)
SCENARIO_ORACLES = {
    name: oracle
    for name, oracle in ORACLES.items()
    if name != "spurious_efault"
}


async def _qemu(ctx: ActorContext, hva: int, remaps: int) -> None:
    for _ in range(remaps):
        await mmap_fixed(ctx, hva, page_size=PAGE_SIZE)


def build(design: Design | str, *, accesses: int = 2, remaps: int = 1) -> World:
    """16M of guest RAM backed by a 16M hugetlbfs page, gfn 0 written ``accesses``
    times, remapped ``remaps`` times with 64K base pages."""
    design = design_named(design)
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    if remaps < 0:
        raise ValueError(f"'remaps' must be >= 0 (got {remaps})")
    npages = LARGE_PAGE // PAGE_SIZE
    model = Model.build_regions(Region(npages, page_size=LARGE_PAGE), nframes=2 * npages + 1, scale=SCALE)
    kvm_init_mmu_notifier(model, design)
    hva = model.kvm.memslot.gfn_to_hva(0)
    return World(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(0,) * accesses)),
            ActorSpec("qemu", functools.partial(_qemu, hva=hva, remaps=remaps)),
        ),
        dict(SCENARIO_ORACLES),
    )


SCENARIO = Scenario(
    name="vrma_psize",
    summary=(
        "POWER7 sets the VRMA page size (16M) at first vcpu run; userspace then remaps gpa 0"
        " with 64K base pages"
    ),
    story=(
        "Paul: \"We will need to look for the page size of whatever is mapped at gpa 0 at that "
        "point and give it to the hardware.\" Avi: \"Do you need to check at fault time that "
        "your assumptions haven't changed, then?\""
    ),
    build=build,
    designs=("vrma_once", "vrma_checked"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "vrma_psize", *sys.argv[1:]]))
