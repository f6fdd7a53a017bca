"""ksm_merge on the thread's own kernel (v3.1-v3.5): change_pte, no start/end.

    "What happens if mmu notifiers tell you to write protect a page?"
    (Avi Kivity, 2011-11-20)

In 2011 the answer was ``->change_pte``: KSM's ``write_protect_page`` and
``replace_page``, and COW's ``do_wp_page``, switched the pte under the
page-table lock and then called ``set_pte_at_notify``'s callback, with no
invalidate_range_start/end around it (they came with 6bdb913f0a70 in v3.6).
KVM's callback took ``mmu_lock``, bumped seq and changed the leaf: x86
repointed it read-only to the new page (dropped it under a writable one),
PPC HV unmapped it. Nothing raised ``in_progress``, so a fault that
resolved the old page just before the switch is stopped by ``seq++`` alone;
only a read fault can be such a fault (a write either holds a reference the
merge's refcount check refuses, or breaks COW itself), so the vcpu reads
both pages before it writes them (``-p reads``). This is ``ksm_merge -p
era=2011 -p reads=1``, a column of its own in ``mmurace matrix``. Run it
with ``python scenarios/ksm_merge_2011.py``.
"""

from __future__ import annotations

import sys

from actors import Design, World
from mmu import Era
from scenarios.base import Scenario
from scenarios.ksm_merge import build as ksm_merge_build


def build(design: Design | str, *, accesses: int = 1, reads: int = 1) -> World:
    """ksm_merge's world on a v3.1-v3.5 host, the vcpu reading both pages ``reads`` times first."""
    return ksm_merge_build(design, accesses=accesses, reads=reads, era=Era.Y2011.value)


SCENARIO = Scenario(
    name="ksm_merge_2011",
    summary="ksm_merge on a v3.1-v3.5 host: KSM and COW report through change_pte alone;"
    " the vcpu reads each page before writing it",
    story=(
        "In 2011 \"mmu notifiers tell you to write protect a page\" meant ->change_pte, called"
        " under the page-table lock after the pte switched, with no invalidate_range_start/end:"
        " KVM's callback must change or drop the leaf and bump seq in one mmu_lock section."
    ),
    build=build,
    designs=("setup_time", "no_retry", "seq_retry", "pin", "always_write"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "ksm_merge_2011", *sys.argv[1:]]))
