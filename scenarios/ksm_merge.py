"""KSM merges two guest pages while the guest writes them.

    "What happens if mmu notifiers tell you to write protect a page?"
    (Avi Kivity, 2011-11-20)

One vcpu writes gfn 0 and gfn 1 in turn, ``accesses`` times each, the same
bytes to both; once the VM runs, ksmd finds the two pages identical and
merges them (``actors.host.ksm``): gfn 1's page becomes a read-only KSM page, gfn
0's address is switched to it and its own page freed. A guest write after
that must fault, and get_user_pages(FOLL_WRITE) must break COW
(``wp_page_copy``) to give the guest a private page again. A writable spte
that survives the merge lets the guest write into the shared page
(``ksm_write``, and ``writable_spte`` before it); an spte to the replaced
page is stale once it is freed. Run it with ``python scenarios/ksm_merge.py``,
or ``mmurace run ksm_merge``.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import ksm_merge
from mmu import Model
from scenarios.base import Registered, Scenario, full_world, registering


async def _ksmd(
    ctx: ActorContext, page_hva: int, tree_hva: int, registered: Registered
) -> None:
    # QEMU madvise(MADV_MERGEABLE)s guest RAM once it is registered; ksmd scans after that
    await ctx.point("ksm_do_scan", guard=lambda: registered.done, waits_for="the VM to run")
    await ksm_merge(ctx, page_hva, tree_hva)


def build(design: Design | str, *, accesses: int = 1) -> World:
    """Two guest pages, each written ``accesses`` times, merged once by ksmd."""
    design = design_named(design)
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    model = Model.build(npages=2)
    kvm_init_mmu_notifier(model, design)
    slot = model.kvm.memslot
    registered = Registered()
    return full_world(
        model,
        (
            ActorSpec(
                "vcpu0",
                functools.partial(vcpu, design=registering(design, registered), gfns=(0, 1) * accesses),
            ),
            ActorSpec(
                "ksmd",
                functools.partial(
                    _ksmd,
                    page_hva=slot.gfn_to_hva(1),
                    tree_hva=slot.gfn_to_hva(0),
                    registered=registered,
                ),
            ),
        ),
    )


SCENARIO = Scenario(
    name="ksm_merge",
    summary="ksmd merges two identical guest pages into one read-only KSM page while a vcpu writes them",
    story=(
        "Avi: \"What happens if mmu notifiers tell you to write protect a page?\" Paul: \"On POWER7, "
        "we have to remove access to the page ...\" Avi: \"Ok, so no ksm for you.\" A guest write "
        "must never land in the shared KSM page."
    ),
    build=build,
    designs=("setup_time", "no_retry", "seq_retry", "pin"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "ksm_merge", *sys.argv[1:]]))
