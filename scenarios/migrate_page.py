"""The kernel migrates the page under a running guest (NUMA, compaction, move_pages).

No remap by userspace at all: the hva stays, its frame changes. Migration
replaces the pte by a migration entry inside invalidate_range_start/end,
copies the page to a new frame, maps that, and frees the old one
(docs/model.md section 3). A design that translated once keeps using the freed
frame; one that maps a pfn gup returned before the invalidation, without
rechecking seq, maps a frame about to be freed. Pages with an extra
reference (gup in flight, a pin) fail the expected-refcount check and stay.

Compaction starts once the VM runs (its memory registered). Run it with
``python scenarios/migrate_page.py``. ``-p era=2011`` runs it on the thread's
own kernel (v3.1-v3.5, ``mmu/era.py``): ``try_to_unmap_one`` clears the pte
and then calls ``->invalidate_page``, with no invalidate_range_start/end,
so only the callback's ``seq++`` stops a fault that resolved the page before
the pte went; ``migrate_page_2011`` is that variant.
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
from actors.host import migrate_page
from mmu import Era, Model
from scenarios.base import Registered, Scenario, full_world, registering


async def _kcompactd(
    ctx: ActorContext, hva: int, times: int, registered: Registered
) -> None:
    await ctx.point("kcompactd_do_work", guard=lambda: registered.done, waits_for="the VM to run")
    for _ in range(times):
        await migrate_page(ctx, hva)


def build(
    design: Design | str, *, accesses: int = 2, migrations: int = 1, era: int = Era.TODAY.value
) -> World:
    """One guest page written ``accesses`` times, migrated ``migrations`` times on a
    host of ``era``."""
    design = design_named(design)
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    if migrations < 0:
        raise ValueError(f"'migrations' must be >= 0 (got {migrations})")
    model = Model.build(npages=1, era=Era.from_year(era))
    kvm_init_mmu_notifier(model, design)
    hva = model.kvm.memslot.gfn_to_hva(0)
    registered = Registered()
    return full_world(
        model,
        (
            ActorSpec(
                "vcpu0",
                functools.partial(
                    vcpu, design=registering(design, registered), gfns=(0,) * accesses
                ),
            ),
            ActorSpec(
                "kcompactd",
                functools.partial(
                    _kcompactd, hva=hva, times=migrations, registered=registered
                ),
            ),
        ),
    )


SCENARIO = Scenario(
    name="migrate_page",
    summary="the kernel migrates a guest page to a new frame while a vcpu faults on it",
    story=(
        "Not only userspace moves memory: migration gives the hva a new frame and frees the "
        "old one, with only the notifier to tell KVM."
    ),
    build=build,
    designs=("setup_time", "no_retry", "seq_retry", "power7_hpt", "always_write"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "migrate_page", *sys.argv[1:]]))
