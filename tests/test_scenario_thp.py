"""thp_split: a huge leaf must not outlive the host's huge page (O4, F6).

Bounds: level_early is caught by ``huge_spte`` within 100 seeds (seed 3
today; seed 25 with collapse=1), and with pages=2, deferred=1 by
``corruption`` (the guest writes the freed base page through the huge leaf)
within one preemption of the exhaustive search; level_locked survives 300
seeds and is exhausted for 2 preemptions (1 with collapse=1, pages=2 or
deferred=1; unbounded it is exhausted too at the defaults, in about 2000
runs, too slow for the suite). The host operations on their own: the PMD
split keeps the folio whole, the deferred split gives each base page its
own reference and frees the unmapped one, the collapse copies into a new
huge page and frees the old ones, or gives up on a reference in flight.
"""

from __future__ import annotations

import pytest

from actors import DESIGNS, ActorContext, ActorSpec, Design, Executor, Fault, World
from actors.host import deferred_split_scan, madvise_dontneed, thp_collapse, thp_split
from mmu import PAGE_SIZE, Model
from mmu.constants import HPAGE_SIZE
from mmu.oracles import huge_spte, leaked_refs
from mmurace import Config, RandomWalk, Replay, hunt
from mmurace.explore import Verdict, explore
from mmurace.report import render_run
from scenarios import CATALOG
from scenarios.base import full_world
from scenarios.thp_split import build as thp_world
from tests.hunting import run

SCENARIO = CATALOG["thp_split"]
HADDR = 0x40000000
HEAD = 0x100
SCENARIO_DESIGN = DESIGNS["level_locked"]


def config(design: str, *oracles: str, **params: int) -> Config:
    return Config(SCENARIO, design, oracles, params=tuple(params.items()), executor=Executor.DIRECT)


@pytest.mark.parametrize("params", [{}, {"collapse": 1}])
async def test_level_early_maps_a_split_page_huge(params: dict[str, int]) -> None:
    found = await hunt(config("level_early", **params), range(100))
    assert found.result is not None, "level_early survived 100 seeds"
    finding = found.result.finding
    assert finding is not None and finding.oracle == "huge_spte"
    assert "maps a 16K page, but the host maps hva 0x40000000 with 4K" in finding.message
    labels = [(s.actor, s.label) for s in found.result.steps]
    level = labels.index(("vcpu0", "kvm_tdp_page_fault"))
    split = labels.index(("qemu", "__split_huge_pmd: pmd_lock, pmdp_invalidate, pmd_populate"))
    snapshot = labels.index(("vcpu0", "mmu_seq = mmu_invalidate_seq"))
    assert level < split < snapshot, "the whole split falls between the level read and the seq snapshot"
    assert found.result.steps[finding.step].label.startswith("mmu_lock: is_page_fault_stale")


@pytest.mark.parametrize("params", [{}, {"collapse": 1}, {"pages": 2}])
async def test_level_locked_survives_300_seeds(params: dict[str, int]) -> None:
    assert (await hunt(config("level_locked", **params), range(300))).result is None


@pytest.mark.parametrize(
    ("params", "bound"), [({}, 2), ({"collapse": 1}, 1), ({"pages": 2}, 1), ({"deferred": 1}, 1)]
)
async def test_level_locked_is_exhausted(params: dict[str, int], bound: int) -> None:
    search = await explore(config("level_locked", **params), preemptions=bound)
    assert search.verdict is Verdict.EXHAUSTED and search.result is None


async def test_level_locked_does_map_huge_when_it_may() -> None:
    events = [e for seed in range(10) for s in (await config("level_locked").run(RandomWalk(seed))).steps for e in s.events]
    assert "spte gfn 0x0 -> pfn 0x100 W 16K page" in events, "the safe design still uses huge leaves"
    assert "spte gfn 0x0 -> pfn 0x100 W" in events, "and base leaves after the split"


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_gives_the_identical_run(design: str) -> None:
    for seed in range(10):
        first = await config(design, collapse=1).run(RandomWalk(seed))
        again = await config(design, collapse=1).run(Replay(first.schedule))
        assert again == first
        assert render_run(config(design, collapse=1), again) == render_run(config(design, collapse=1), first)


async def test_level_early_lets_the_guest_write_the_freed_base_page() -> None:
    search = await explore(config("level_early", "corruption", pages=2, deferred=1), preemptions=1)
    assert search.verdict is Verdict.FOUND and search.result is not None
    finding = search.result.finding
    assert finding is not None and finding.oracle == "corruption"
    assert finding.message == (
        "guest write of gfn 0x1 went through a stale spte: pfn 0x101 was freed (refcount 0, on the free list)"
    )
    events = [e for s in search.result.steps for e in s.events]
    assert events.index("put_page pfn 0x101: ref 1->0, frame freed") < events.index(
        "spte gfn 0x0 -> pfn 0x100 W 16K page"
    ), "the huge leaf was made after the deferred split freed a base page under it"


@pytest.mark.parametrize(("oracle", "params"), [("divergence", {}), ("stale_spte", {"pages": 2, "deferred": 1})])
async def test_a_huge_leaf_is_judged_by_each_page_it_covers(oracle: str, params: dict[str, int]) -> None:
    """Judged by its first page only, level_early's leaf over the split THP passes both
    oracles (exhausted for 2 preemptions before the oracles looked at every page): its
    first page stays mapped and live; the second is unmapped by madvise, then freed by
    the deferred split. The safe design is not flagged by either."""
    search = await explore(config("level_early", oracle, **params), preemptions=1)
    assert search.result is not None and search.result.finding is not None
    assert search.result.finding.message.startswith("spte gfn 0x1 -> pfn 0x101")
    safe = await explore(config("level_locked", oracle, **params), preemptions=1)
    assert safe.verdict is Verdict.EXHAUSTED and safe.result is None


async def test_a_design_sizing_its_leaf_by_the_folio_maps_a_split_thp_huge() -> None:
    """x86 before v4.6 (``transparent_hugepage_adjust``: ``PageTransCompound``) sized
    the leaf by the compound page, which is right only if a split PMD means a split
    folio. It is not: the folio stays whole until the deferred split, so a fault that
    starts after the host split the PMD and unmapped a page maps it huge (no reference
    in flight needed, as it was when the PMD split tried the folio split at once)."""

    async def install(design: Design, ctx: ActorContext, f: Fault) -> None:
        assert f.pfn is not None
        frames, kvm = ctx.model.frames, ctx.model.kvm
        f.size = frames.folio_nr_pages(f.pfn) * PAGE_SIZE
        offset = (f.gfn - kvm.memslot.base_gfn) % (f.size // PAGE_SIZE)
        kvm.install_spte(f.gfn - offset, f.pfn - offset, f.writable, ctx.name, page_size=f.size)

    folio_sized = DESIGNS["level_locked"].replace(install=install, name="level_compound")
    search = await explore(Config(SCENARIO, folio_sized, executor=Executor.DIRECT), preemptions=1)
    assert search.result is not None and search.result.finding is not None
    assert search.result.finding.oracle == "huge_spte"
    labels = [(s.actor, s.label) for s in search.result.steps]
    split = labels.index(("qemu", "__split_huge_pmd: pmd_lock, pmdp_invalidate, pmd_populate"))
    # the page is resolved lockless (gup-fast), or else under mmap_lock
    gup = next(i for i, (a, label) in enumerate(labels) if i > split and a == "vcpu0" and "get_user_page" in label)
    assert gup > labels.index(("qemu", "mmap_read_unlock"), split)


def test_collapse_must_be_0_or_1() -> None:
    with pytest.raises(ValueError, match=r"^'collapse' must be 0 or 1 \(got 2\)$"):
        SCENARIO.build("level_locked", collapse=2)
    with pytest.raises(ValueError, match=r"^'deferred' must be 0 or 1 \(got 2\)$"):
        SCENARIO.build("level_locked", deferred=2)
    with pytest.raises(ValueError, match=r"^'pages' must be 1 or 2 \(got 3\)$"):
        SCENARIO.build("level_locked", pages=3)


# ---- the host operations and the oracle on their own ----


def _host_run(*ops: str, model: Model | None = None, held: bool = False) -> tuple[Model, tuple[str, ...]]:
    """Run the host operations ``ops`` in turn on ``model``, or on a world with a THP
    and a huge leaf; ``collapse?`` is a collapse that may give up. ``held``: the
    caller holds a reference of its own, so references are not judged."""
    if model is None:
        model = thp_world(SCENARIO_DESIGN).model
        model.kvm.mmu_lock.acquire("setup")
        model.kvm.install_spte(0, HEAD, True, "setup", page_size=HPAGE_SIZE)
        model.kvm.mmu_lock.release("setup")
    model.log.clear()
    model.fp.clear()

    async def host(ctx: ActorContext) -> None:
        for op in ops:
            if op == "split":
                assert await thp_split(ctx, HADDR)
            elif op == "dontneed":
                await madvise_dontneed(ctx, HADDR + PAGE_SIZE, HADDR + 2 * PAGE_SIZE)
            elif op == "scan":
                await deferred_split_scan(ctx)
            elif op == "collapse?":
                await thp_collapse(ctx, HADDR)
            else:
                assert await thp_collapse(ctx, HADDR)

    actors = (ActorSpec("host", host),)
    world = full_world(model, actors)
    if held:
        world = World(model, actors, {n: o for n, o in world.oracles.items() if n != "leaked_refs"})
    result = run(world, RandomWalk(0))
    assert result.finding is None, result.finding
    return model, tuple(e for s in result.steps for e in s.events)


def test_split_maps_each_base_page_and_keeps_the_folio_whole() -> None:
    m, events = _host_run("split")
    assert m.mm.pmds == {} and not m.kvm.sptes, "start zapped the huge leaf"
    assert {h: p.pfn for h, p in m.mm.ptes.items()} == {HADDR + i * PAGE_SIZE: HEAD + i for i in range(4)}
    assert all(p.size == PAGE_SIZE for p in m.mm.ptes.values())
    assert [(m.frames[HEAD + i].refcount, m.frames[HEAD + i].head) for i in range(4)] == [
        (4, None), (0, HEAD), (0, HEAD), (0, HEAD)
    ], "one folio, each pte's reference on its head"
    assert m.frames.deferred == [], "every page is still mapped"
    assert "zap spte gfn 0x0 -> pfn 0x100" in events
    assert leaked_refs(m) is None


def test_dontneed_after_split_unmaps_one_page_and_queues_the_folio() -> None:
    m, events = _host_run("split", "dontneed")
    assert not m.frames[HEAD + 1].free and m.frames[HEAD].refcount == 3, "the folio keeps the page"
    assert sorted(m.mm.ptes) == [HADDR, HADDR + 2 * PAGE_SIZE, HADDR + 3 * PAGE_SIZE]
    assert m.frames.deferred == [HEAD]
    assert "deferred_split_folio pfn 0x100: partially mapped, queued for split" in events


def test_the_deferred_split_frees_the_unmapped_page_under_its_own_invalidation() -> None:
    m, events = _host_run("split", "dontneed", "scan")
    assert m.frames[HEAD + 1].free and m.frames.deferred == []
    assert [(m.frames[HEAD + i].refcount, m.frames[HEAD + i].head) for i in (0, 2, 3)] == [(1, None)] * 3
    assert {h: p.pfn for h, p in m.mm.ptes.items()} == {HADDR + i * PAGE_SIZE: HEAD + i for i in (0, 2, 3)}
    start = events.index("range 0x40000000-0x40004000", events.index("deferred_split_folio pfn 0x100: partially mapped, queued for split"))
    assert events.index("__split_unmapped_folio pfn 0x100: 4 base pages, ref 1 each") > start
    assert events.index("put_page pfn 0x101: ref 1->0, frame freed") > start
    assert leaked_refs(m) is None


def test_dontneed_of_part_of_a_huge_page_splits_the_pmd_first() -> None:
    m, events = _host_run("dontneed")
    assert "pmd hva 0x40000000 -> huge pfn 0x100 split into 4 ptes" in events
    assert not m.frames[HEAD + 1].free and m.mm.pmds == {} and m.frames.deferred == [HEAD]


def test_dontneed_of_a_whole_huge_page_zaps_it_whole() -> None:
    world = thp_world(SCENARIO_DESIGN)

    async def host(ctx: ActorContext) -> None:
        await madvise_dontneed(ctx, HADDR, HADDR + HPAGE_SIZE)

    result = run(full_world(world.model, (ActorSpec("host", host),)), RandomWalk(0))
    m = world.model
    assert result.finding is None and m.mm.pmds == {} and m.mm.ptes == {}
    assert "huge leaf hva 0x40000000 -> pfn 0x100 (16K) cleared" in [e for s in result.steps for e in s.events]
    assert all(m.frames[HEAD + i].free for i in range(4))


def test_collapse_copies_into_a_new_huge_page_and_frees_the_old() -> None:
    m, events = _host_run("split", "dontneed", "collapse")
    new = 0x104
    assert m.mm.pmds == {HADDR: new}
    assert {h: p.pfn for h, p in m.mm.ptes.items()} == {HADDR + i * PAGE_SIZE: new + i for i in range(4)}
    assert [m.frames[new + i].refcount for i in range(4)] == [1, 0, 0, 0], "the PMD's one reference, on the head"
    assert all(m.frames[HEAD + i].free for i in range(4))
    assert "copy pfn 0x102 -> pfn 0x106" in events and "copy pfn 0x101 -> pfn 0x105" not in events
    assert leaked_refs(m) is None


def test_a_tail_reference_goes_to_the_head_and_the_compound_is_freed_whole() -> None:
    m = thp_world(SCENARIO_DESIGN).model
    m.frames.get_page(HEAD + 2)
    assert (m.frames[HEAD].refcount, m.frames[HEAD + 2].refcount) == (2, 0)
    m.frames.put_page(HEAD + 2)
    m.frames.put_page(HEAD)
    assert all(m.frames[HEAD + i].free for i in range(4))


def test_a_reference_in_flight_makes_the_folio_split_give_up() -> None:
    m = thp_world(SCENARIO_DESIGN).model
    m.frames.get_page(HEAD + 1)  # gup of the second base page: the reference is the folio's
    m, events = _host_run("split", "dontneed", "scan", model=m, held=True)
    assert "can_split_folio: refcount 5 != mapcount 3 + 1: -EAGAIN" in events
    assert m.frames[HEAD + 1].head == HEAD and not m.frames[HEAD + 1].free, "still one folio"
    m.frames.put_page(HEAD + 1)  # kvm_release_pfn_clean through the same base page
    m.end_run()
    assert leaked_refs(m) is None


def test_the_refcount_freeze_wants_the_splitters_reference_only() -> None:
    m, _ = _host_run("split", "dontneed")
    m.frames.get_page(HEAD)  # the splitter's
    for hva in (HADDR, HADDR + 2 * PAGE_SIZE, HADDR + 3 * PAGE_SIZE):  # as unmap_folio leaves it
        m.mm.rmap_lock.acquire("t", write=True)
        m.frames.put_page(m.mm.set_migration_entry(hva, "t").pfn)
        m.mm.rmap_lock.release("t", write=True)
    m.frames.get_page(HEAD + 3)  # and somebody else's
    assert not m.frames.split_folio(HEAD)
    assert m.log[-1] == "folio_ref_freeze pfn 0x100: refcount 2, expected 1: -EAGAIN"
    m.frames.put_page(HEAD + 3)
    assert m.frames.split_folio(HEAD)
    assert [m.frames[HEAD + i].refcount for i in range(4)] == [1, 1, 1, 1]


def test_a_reference_in_flight_makes_the_collapse_give_up() -> None:
    m, _ = _host_run("split", "dontneed")
    m.frames.get_page(HEAD + 2)  # a fault between gup and kvm_release_pfn_clean
    m, events = _host_run("collapse?", model=m, held=True)
    assert "pfn 0x100: a reference no pte explains, SCAN_PAGE_COUNT" in events
    assert m.mm.pmds == {} and sorted(m.mm.ptes) == [HADDR, HADDR + 2 * PAGE_SIZE, HADDR + 3 * PAGE_SIZE]
    assert all(m.frames[0x104 + i].free for i in range(4)), "the new huge page is dropped"
    m.frames.put_page(HEAD + 2)
    m.end_run()
    assert leaked_refs(m) is None


def test_the_guest_reaches_each_base_page_through_a_huge_leaf() -> None:
    m, _ = _host_run()
    entry = m.kvm.guest_access("vcpu0", 2, write=True)
    assert entry is not None and entry.pfn == HEAD + 2, "the leaf at gfn 0 maps gfn 2 to its third page"
    assert m.log[-1] == "through spte -> pfn 0x102" and not m.kvm.bad_accesses


def test_huge_spte_judges_the_host_mapping_size() -> None:
    m, _ = _host_run()
    assert huge_spte(m) is None, "a huge leaf over a huge PMD is fine"
    m.mm.mmap_lock.acquire("t", write=False)
    m.mm.split_pmd(HADDR, "t")
    m.mm.zap_pte(HADDR + PAGE_SIZE, "t")
    m.mm.mmap_lock.release("t", write=False)
    m.frames.put_page(HEAD + 1)
    m.kvm.mmu_lock.acquire("t")
    m.kvm.install_spte(0, HEAD, True, "t", page_size=HPAGE_SIZE)
    m.kvm.mmu_lock.release("t")
    violation = huge_spte(m)
    assert violation is not None
    assert violation.message.endswith("but the host maps hva 0x40000000 with 4K"), "the folio is still whole"
    assert m.frames.folio_nr_pages(HEAD) == 4, "the mapping size is the page table's, not the folio's"
    m.kvm.in_progress = 1
    assert huge_spte(m) is None


async def test_explore_finds_level_early_within_one_preemption_and_it_replays() -> None:
    search = await explore(config("level_early"), preemptions=1)
    assert search.verdict is Verdict.FOUND and search.result is not None
    assert search.result.finding is not None and search.result.finding.oracle == "huge_spte"
    again = await config("level_early").run(Replay(search.result.schedule))
    assert again == search.result
    assert render_run(config("level_early"), again) == render_run(config("level_early"), search.result)


def test_a_huge_leaf_replaces_base_leaves_and_is_zapped_whole() -> None:
    m = thp_world(SCENARIO_DESIGN).model
    kvm = m.kvm
    kvm.mmu_lock.acquire("t")
    kvm.install_spte(1, HEAD + 1, True, "t")
    kvm.install_spte(0, HEAD, True, "t", page_size=HPAGE_SIZE)
    assert list(kvm.sptes) == [0] and "spte gfn 0x1 replaced by the huge leaf" in m.log
    assert kvm.unmap_hva_range(HADDR + 3 * PAGE_SIZE, HADDR + HPAGE_SIZE, "t") == 1
    assert not kvm.sptes, "invalidating one base page zaps the huge leaf over it"
    kvm.mmu_lock.release("t")


def test_a_zap_of_any_page_of_a_huge_leaf_conflicts_with_an_access_through_the_leaf() -> None:
    """Partial-order reduction may skip reordering two steps only if they commute:
    zapping gfn 1 removes the leaf at gfn 0, so it must conflict with an access to gfn 0
    (and an access to gfn 2 goes through the leaf at gfn 0 too)."""
    m = thp_world(SCENARIO_DESIGN).model
    kvm = m.kvm
    kvm.mmu_lock.acquire("t")
    kvm.install_spte(0, HEAD, True, "t", page_size=HPAGE_SIZE)
    kvm.fp.clear()
    hva1 = kvm.memslot.gfn_to_hva(1)
    kvm.unmap_hva_range(hva1, hva1 + PAGE_SIZE, "t")
    zap = kvm.fp.drain()
    kvm.mmu_lock.release("t")
    assert {("spte", g) for g in range(4)} <= zap.writes
    kvm.mmu_lock.acquire("t")
    kvm.install_spte(0, HEAD, True, "t", page_size=HPAGE_SIZE)
    kvm.mmu_lock.release("t")
    kvm.fp.clear()
    kvm.guest_access("vcpu0", 2, write=False)
    through = kvm.fp.drain()
    assert ("spte", 0) in through.reads and through.conflicts(zap)
