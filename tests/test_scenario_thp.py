"""thp_split: a huge leaf must not outlive the host's huge page (O4, F6).

Bounds: level_early is caught by ``huge_spte`` within 100 seeds (seed 3
today; seed 25 with collapse=1), and with pages=2 by ``corruption`` (the
guest writes the freed base page through the huge leaf) within one
preemption of the exhaustive search; level_locked survives 300 seeds and is
exhausted for 2 preemptions (1 with collapse=1 or pages=2; unbounded it is
exhausted too at the defaults, in 1618 runs, too slow for the suite). The host operations on their
own: the split keeps every base page mapped with its own reference, the
collapse copies into a new huge page and frees the old ones.
"""

from __future__ import annotations

import pytest

from actors import DESIGNS, ActorContext, ActorSpec, Executor
from actors.host import madvise_dontneed, thp_collapse, thp_split
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


@pytest.mark.parametrize(("params", "bound"), [({}, 2), ({"collapse": 1}, 1), ({"pages": 2}, 1)])
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
    search = await explore(config("level_early", "corruption", pages=2), preemptions=1)
    assert search.verdict is Verdict.FOUND and search.result is not None
    finding = search.result.finding
    assert finding is not None and finding.oracle == "corruption"
    assert finding.message == (
        "guest write of gfn 0x1 went through a stale spte: pfn 0x101 was freed (refcount 0, on the free list)"
    )
    events = [e for s in search.result.steps for e in s.events]
    assert events.index("put_page pfn 0x101: ref 1->0, frame freed") < events.index(
        "spte gfn 0x0 -> pfn 0x100 W 16K page"
    ), "the huge leaf was made after madvise(DONTNEED) freed a base page under it"


def test_collapse_must_be_0_or_1() -> None:
    with pytest.raises(ValueError, match=r"^'collapse' must be 0 or 1 \(got 2\)$"):
        SCENARIO.build("level_locked", collapse=2)
    with pytest.raises(ValueError, match=r"^'pages' must be 1 or 2 \(got 3\)$"):
        SCENARIO.build("level_locked", pages=3)


# ---- the host operations and the oracle on their own ----


def _host_run(*ops: str) -> tuple[Model, tuple[str, ...]]:
    """Run the host operations ``ops`` in turn on a world with a THP and a huge leaf."""
    world = thp_world(SCENARIO_DESIGN)
    model = world.model
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
            else:
                assert await thp_collapse(ctx, HADDR)

    actors = (ActorSpec("host", host),)
    result = run(full_world(model, actors), RandomWalk(0))
    assert result.finding is None, result.finding
    return model, tuple(e for s in result.steps for e in s.events)





def test_split_maps_each_base_page_with_its_own_reference() -> None:
    m, events = _host_run("split")
    assert m.mm.pmds == {} and not m.kvm.sptes, "start zapped the huge leaf"
    assert {h: p.pfn for h, p in m.mm.ptes.items()} == {HADDR + i * PAGE_SIZE: HEAD + i for i in range(4)}
    assert [(m.frames[HEAD + i].refcount, m.frames[HEAD + i].head) for i in range(4)] == [(1, None)] * 4
    assert "zap spte gfn 0x0 -> pfn 0x100" in events
    assert leaked_refs(m) is None


def test_dontneed_after_split_frees_one_base_page() -> None:
    m, _ = _host_run("split", "dontneed")
    assert m.frames[HEAD + 1].free and not m.frames[HEAD].free
    assert sorted(m.mm.ptes) == [HADDR, HADDR + 2 * PAGE_SIZE, HADDR + 3 * PAGE_SIZE]


def test_dontneed_of_a_huge_page_splits_it_first() -> None:
    m, events = _host_run("dontneed")
    assert "pmd hva 0x40000000 -> huge pfn 0x100 split into 4 ptes" in events
    assert m.frames[HEAD + 1].free and m.mm.pmds == {}


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


def test_a_split_with_a_reference_in_flight_leaves_the_page_compound() -> None:
    m = thp_world(SCENARIO_DESIGN).model
    m.frames.get_page(HEAD + 1)  # gup of the second base page: the reference is the head's
    m.mm.mmap_lock.acquire("t", write=False)
    m.mm.split_pmd(HADDR, "t")
    m.mm.mmap_lock.release("t", write=False)
    assert "split_huge_page pfn 0x100: 1 extra reference(s), -EAGAIN: stays compound" in m.log
    assert (m.frames[HEAD].refcount, m.frames[HEAD + 1].head) == (5, HEAD), "each pte holds one on the head"
    m.frames.put_page(HEAD + 1)  # kvm_release_pfn_clean through the same base page
    m.end_run()
    assert leaked_refs(m) is None


def test_the_guest_reaches_each_base_page_through_a_huge_leaf() -> None:
    m, _ = _host_run()
    spte = m.kvm.guest_access(2, write=True)
    assert spte is not None and spte.page_size == HPAGE_SIZE
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
    assert violation.message.endswith("with 4K; pfn 0x101 under it freed")
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
    kvm.guest_access(2, write=False)
    through = kvm.fp.drain()
    assert ("spte", 0) in through.reads and through.conflicts(zap)
