"""Two invalidations of different memslots overlap while a vcpu faults on the first.

Slot 0 at gfn 0 and slot 1 at gfn 1 (``memslot_delete``'s layout). Two balloon
threads give back one page each (``madvise(MADV_DONTNEED)``) while a vcpu writes
gfn 0. With the range-based ``mmu_invalidate_retry_gfn`` a fault retries only
if the invalidations in progress cover its gfn, so the range must grow with
every start until ``in_progress`` returns to zero: one that restarts at the
second start forgets the first, and the fault maps the page the first is
about to free (docs/model.md section 7). Run it on its own with
``python scenarios/invalidate_ranges.py``.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import madvise_dontneed
from actors.kvm.memslots import MemslotRetry
from mmu import PAGE_SIZE
from scenarios.base import Scenario, full_world
from scenarios.memslot_delete import memslot_model


def build(design: Design | str) -> World:
    """Slots 0 and 1; a write to gfn 0; a madvise(DONTNEED) of each slot's page."""
    design = design_named(design)
    if not isinstance(design, MemslotRetry):
        raise ValueError(f"design {design.name!r} knows one memslot: it needs a MemslotRetry")
    model = memslot_model(2)
    kvm_init_mmu_notifier(model, design)
    hvas = [model.kvm.memslot.gfn_to_hva(gfn) for gfn in (0, 1)]
    return full_world(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(0,))),
            *(
                ActorSpec(f"balloon{i}", functools.partial(madvise_dontneed, start=hva, end=hva + PAGE_SIZE))
                for i, hva in enumerate(hvas)
            ),
        ),
    )


SCENARIO = Scenario(
    name="invalidate_ranges",
    summary="two invalidations of different memslots overlap while a vcpu faults on the first",
    story=(
        "Range-based retry lets a fault outside every invalidation in progress go on; the range"
        " must cover every invalidation since in_progress left zero, not just the latest."
    ),
    build=build,
    designs=("memslot_retry", "range_last"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "invalidate_ranges", *sys.argv[1:]]))
