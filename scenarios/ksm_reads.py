"""KSM merges two guest pages, and from then on the guest only reads them.

    "On POWER7, we have to remove access to the page, and then when we get
    a fault on the page, request write access when we do
    get_user_pages_fast."  (Paul Mackerras)  "Ok, so no ksm for you."
    (Avi Kivity, 2011-11-21)

The vcpu reads gfn 0 and gfn 1 while the VM runs; ksmd merges the two pages
into one read-only KSM page (``actors.host.ksm``), zapping the guest's leaves
to them; then the guest reads each page ``accesses`` more times and writes
nothing. A read fault must map the KSM page read-only. A design that asks
get_user_pages for write on every fault (``always_write``, POWER7 as merged
in v3.3) breaks COW on each read fault, copying the KSM page back into
private pages: the merge is undone by a guest that never wrote
(``ksm_undone``). Run it with ``python scenarios/ksm_reads.py``, or
``mmurace run ksm_reads``.
"""

from __future__ import annotations

import functools
import sys

import attrs

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import ksm_merge
from mmu import Model
from scenarios.base import Registered, Scenario, full_world, registering


@attrs.define(eq=False)
class Scanned:
    """Set once ksmd has tried its merge: the guest's signal to read on; not model state."""

    done: bool = False


async def _ksmd(
    ctx: ActorContext, page_hva: int, tree_hva: int, registered: Registered, scanned: Scanned
) -> None:
    await ctx.point("ksm_do_scan", guard=lambda: registered.done, waits_for="the VM to run")
    await ksm_merge(ctx, page_hva, tree_hva)
    scanned.done = True


async def _no_prepare(design: Design, ctx: ActorContext) -> None:
    """The memory was registered when the vcpu first ran."""


async def _reader(
    ctx: ActorContext, design: Design, registered: Registered, scanned: Scanned, accesses: int
) -> None:
    """Read both pages, wait for ksmd's scan, then read them ``accesses`` times more."""
    await vcpu(ctx, registering(design, registered), (0, 1), write=False)
    await ctx.point("guest reads on", guard=lambda: scanned.done, waits_for="ksmd to merge the pages")
    running = design.replace(prepare=_no_prepare, name=design.name, summary=design.summary)
    await vcpu(ctx, running, (0, 1) * accesses, write=False)


def build(design: Design | str, *, accesses: int = 1) -> World:
    """Two guest pages read, merged once by ksmd, then read ``accesses`` times each."""
    design = design_named(design)
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    model = Model.build(npages=2)
    kvm_init_mmu_notifier(model, design)
    slot = model.kvm.memslot
    registered, scanned = Registered(), Scanned()
    return full_world(
        model,
        (
            ActorSpec(
                "vcpu0",
                functools.partial(
                    _reader, design=design, registered=registered, scanned=scanned, accesses=accesses
                ),
            ),
            ActorSpec(
                "ksmd",
                functools.partial(
                    _ksmd,
                    page_hva=slot.gfn_to_hva(1),
                    tree_hva=slot.gfn_to_hva(0),
                    registered=registered,
                    scanned=scanned,
                ),
            ),
        ),
    )


SCENARIO = Scenario(
    name="ksm_reads",
    summary="ksmd merges two guest pages into one KSM page, then the guest only reads them",
    story=(
        "Paul: \"when we get a fault on the page, request write access when we do "
        "get_user_pages_fast.\" Avi: \"Ok, so no ksm for you.\" A guest that only reads must "
        "leave the merge in place."
    ),
    build=build,
    designs=("power7_hpt", "always_write"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "ksm_reads", *sys.argv[1:]]))
