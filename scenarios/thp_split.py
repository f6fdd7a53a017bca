"""A transparent huge page split (and collapsed again) under a faulting vcpu.

    "decide final mapping size under the lock"  (docs/model.md F6: x86
    ``host_pfn_mapping_level`` is safe "only if 1) retry was checked after
    taking mmu_lock, and 2) mmu_lock is taken now")

Guest RAM is one THP: ``HPAGE_PAGES`` frames (4 standing for 512) mapped by
one PMD. The vcpu writes gfn 0 (with ``pages=2``, gfns 0 and 1 in turn)
``accesses`` times, and may map them with a huge leaf. Meanwhile the host
splits the PMD (``__split_huge_pmd``: the mapping only, the folio stays
whole) and then madvise(MADV_DONTNEED)s the second base page, which unmaps
it and queues the folio for a deferred split; with ``deferred=1`` the THP
shrinker then splits the folio (``split_huge_page``, under its own
invalidation of the whole folio) and frees the unmapped page; with
``collapse=1`` khugepaged collapses the range into a new huge page, unless
a page has a reference in flight (``is_refcount_suitable``).
A design that read the host mapping level before its seq snapshot may map
the split page huge after all: the leaf covers the unmapped base page
(``huge_spte``, docs/model.md O4); once the folio is split that page is
freed, and with ``pages=2`` the guest writes it through the leaf
(``corruption``). Reading it under mmu_lock after the retry check
(``level_locked``) cannot. The other designs map base pages only, so the
scenario says nothing about them.

Run it with ``python scenarios/thp_split.py``.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import deferred_split_scan, madvise_dontneed, thp_collapse, thp_split
from mmu import PAGE_SIZE, Model, Region
from mmu.constants import HPAGE_PAGES
from scenarios.base import Scenario, full_world


def _with_thp(model: Model) -> Model:
    """Back guest RAM with one huge page, as a first touch of an aligned
    THP-enabled VMA does (``do_huge_pmd_anonymous_page``); not a step."""
    mm, setup = model.mm, "setup"
    mm.mmap_lock.acquire(setup, write=True)
    mm.set_pmd(model.kvm.memslot.userspace_addr, model.frames.alloc_compound(HPAGE_PAGES), True, setup)
    mm.mmap_lock.release(setup, write=True)
    model.log.clear()
    model.fp.clear()
    return model


async def _qemu(ctx: ActorContext, haddr: int) -> None:
    await thp_split(ctx, haddr)
    await madvise_dontneed(ctx, haddr + PAGE_SIZE, haddr + 2 * PAGE_SIZE)


async def _khugepaged(ctx: ActorContext, haddr: int) -> None:
    mm = ctx.model.mm
    await ctx.point(
        "khugepaged_scan_pmd", guard=lambda: haddr not in mm.pmds, waits_for="a pte-mapped range"
    )
    await thp_collapse(ctx, haddr)


def build(
    design: Design | str, *, accesses: int = 2, collapse: int = 0, pages: int = 1, deferred: int = 0
) -> World:
    """One THP of guest RAM whose first ``pages`` gfns are written ``accesses``
    times, split and partly unmapped by the host; the folio split later by the
    THP shrinker if ``deferred``, the range collapsed again by khugepaged if
    ``collapse``."""
    design = design_named(design)
    if pages not in (1, 2):
        raise ValueError(f"'pages' must be 1 or 2 (got {pages})")
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    if collapse not in (0, 1):
        raise ValueError(f"'collapse' must be 0 or 1 (got {collapse})")
    if deferred not in (0, 1):
        raise ValueError(f"'deferred' must be 0 or 1 (got {deferred})")
    model = _with_thp(Model.build_regions(Region(HPAGE_PAGES, populated=False), nframes=3 * HPAGE_PAGES))
    kvm_init_mmu_notifier(model, design)
    haddr = model.kvm.memslot.userspace_addr
    actors = [
        ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=tuple(range(pages)) * accesses)),
        ActorSpec("qemu", functools.partial(_qemu, haddr=haddr)),
    ]
    if collapse:
        actors.append(ActorSpec("khugepaged", functools.partial(_khugepaged, haddr=haddr)))
    if deferred:
        actors.append(ActorSpec("thp_shrinker", deferred_split_scan, daemon=True))
    return full_world(model, tuple(actors))


SCENARIO = Scenario(
    name="thp_split",
    summary=(
        "the host splits the THP backing guest RAM and unmaps one base page"
        " (the shrinker may split the folio, khugepaged collapse it)"
    ),
    story=(
        "docs/model.md F6: decide the final mapping size under mmu_lock, after the retry check; "
        "a huge leaf must not outlive the host's huge page."
    ),
    build=build,
    designs=("level_early", "level_locked"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "thp_split", *sys.argv[1:]]))
