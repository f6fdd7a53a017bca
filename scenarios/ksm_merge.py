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

``-p era=2011`` runs it on the thread's own kernel (v3.1-v3.5, ``mmu/era.py``):
KSM and COW tell KVM through ``->change_pte`` alone, with no
invalidate_range_start/end, so only the callback's ``seq++`` stops a fault
that resolved the old page just before the switch. A write fault cannot be
that fault (its gup either holds a reference that fails the merge's
refcount check, or breaks COW itself); a read can: ``-p reads=N`` makes the
vcpu read both pages N times before it writes them. ``ksm_merge_2011`` is
this scenario on a 2011 host, reading once.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import ksm_merge
from mmu import Era, Model
from scenarios.base import Registered, Scenario, full_world, registering


async def _ksmd(
    ctx: ActorContext, page_hva: int, tree_hva: int, registered: Registered
) -> None:
    # QEMU madvise(MADV_MERGEABLE)s guest RAM once it is registered; ksmd scans after that
    await ctx.point("ksm_do_scan", guard=lambda: registered.done, waits_for="the VM to run")
    await ksm_merge(ctx, page_hva, tree_hva)


def build(design: Design | str, *, accesses: int = 1, reads: int = 0, era: int = Era.TODAY.value) -> World:
    """Two guest pages, each read ``reads`` times then written ``accesses`` times,
    merged once by ksmd on a host of ``era``."""
    design = design_named(design)
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    if reads < 0:
        raise ValueError(f"'reads' must be >= 0 (got {reads})")
    model = Model.build(npages=2, era=Era.from_year(era))
    kvm_init_mmu_notifier(model, design)
    slot = model.kvm.memslot
    registered = Registered()
    gfns = (0, 1) * (reads + accesses)
    writes = (False,) * 2 * reads + (True,) * 2 * accesses
    return full_world(
        model,
        (
            ActorSpec(
                "vcpu0",
                functools.partial(
                    vcpu, design=registering(design, registered), gfns=gfns, write=writes
                ),
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
    designs=("setup_time", "no_retry", "seq_retry", "pin", "power7_hpt"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "ksm_merge", *sys.argv[1:]]))
