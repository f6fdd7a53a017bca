"""migrate_page on the thread's own kernel (v3.1-v3.5): invalidate_page, no start/end.

Until v4.13 ``try_to_unmap_one`` (reclaim, migration) did not bracket its
pte change with invalidate_range_start/end: ``ptep_clear_flush_notify``
cleared the pte and then called ``->invalidate_page``, in v3.1-v3.5 under
the page-table lock, while the caller still held the page. KVM's callback
bumped seq, unmapped the leaf and flushed in one ``mmu_lock`` section:
"Increasing the sequence after the spin_unlock would be unsafe because the
kvm page fault could then establish the pte after kvm_unmap_hva returned,
without noticing the page is going to be freed." This is ``migrate_page -p
era=2011``, a column of its own in ``mmurace matrix``. Run it with
``python scenarios/migrate_page_2011.py``.
"""

from __future__ import annotations

import sys

from actors import Design, World
from mmu import Era
from scenarios.base import Scenario
from scenarios.migrate_page import build as migrate_page_build


def build(design: Design | str, *, accesses: int = 2, migrations: int = 1) -> World:
    """migrate_page's world on a v3.1-v3.5 host."""
    return migrate_page_build(design, accesses=accesses, migrations=migrations, era=Era.Y2011.value)


SCENARIO = Scenario(
    name="migrate_page_2011",
    summary="migrate_page on a v3.1-v3.5 host: try_to_unmap_one reports through invalidate_page"
    " after the pte is cleared",
    story=(
        "In 2011 try_to_unmap_one cleared the pte and then called ->invalidate_page, the page"
        " still held, with no invalidate_range_start/end: \"Increasing the sequence after the"
        " spin_unlock would be unsafe because the kvm page fault could then establish the pte"
        " after kvm_unmap_hva returned\"."
    ),
    build=build,
    designs=("setup_time", "no_retry", "seq_retry", "power7_hpt", "always_write"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "migrate_page_2011", *sys.argv[1:]]))
