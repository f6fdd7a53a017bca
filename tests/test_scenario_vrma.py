"""vrma_psize: a VRMA HPTE must not map a larger page than the host page behind it (O4).

Bounds: vrma_once is caught by ``vrma_psize`` within 20 seeds (seed 1 today);
vrma_checked survives 300 seeds and is exhausted, without a preemption
bound, at the default parameters and at accesses=3, remaps=2.
"""

from __future__ import annotations

import pytest

from actors import Executor
from actors.kvm.vrma import vrma_page_size
from mmu import PAGE_SIZE, Model, Region, Vma
from mmu.oracles import vrma_psize
from mmurace import Config, RandomWalk, Replay, hunt
from mmurace.explore import Verdict, explore
from mmurace.report import render_run
from scenarios import CATALOG
from scenarios.vrma_psize import LARGE_PAGE, SCALE

SCENARIO = CATALOG["vrma_psize"]


def config(design: str, **params: int) -> Config:
    return Config(SCENARIO, design, params=tuple(params.items()), executor=Executor.DIRECT)


async def test_vrma_once_maps_a_16m_page_over_64k_backing() -> None:
    found = await hunt(config("vrma_once"), range(20))
    assert found.result is not None, "vrma_once survived 20 seeds"
    finding = found.result.finding
    assert finding is not None and finding.oracle == "vrma_psize"
    assert "maps a 16M page, but hva 0x40000000 is backed by 64K pages" in finding.message
    steps = found.result.steps
    labels = [s.label for s in steps]
    assert labels.index("kvmppc_map_vrma, kvmppc_update_lpcr(VRMASD)") < labels.index(
        "mmap_region: new vma, mmap_write_unlock"
    ), "the VRMA was set up from the 64K VMA, before the remap"
    assert steps[finding.step].label == "lock_rmap: mmu_invalidate_retry, enter HPTE"


@pytest.mark.parametrize("params", [{}, {"accesses": 3, "remaps": 2}])
async def test_vrma_checked_survives_300_seeds(params: dict[str, int]) -> None:
    assert (await hunt(config("vrma_checked", **params), range(300))).result is None


@pytest.mark.parametrize("params", [{}, {"accesses": 3, "remaps": 2}])
async def test_vrma_checked_is_exhausted(params: dict[str, int]) -> None:
    search = await explore(config("vrma_checked", **params), preemptions=None)
    assert search.verdict is Verdict.EXHAUSTED and search.result is None


async def test_vrma_checked_refuses_the_fault_as_the_kernel_does() -> None:
    events = [e for seed in range(30) for s in (await config("vrma_checked").run(RandomWalk(seed))).steps for e in s.events]
    assert "psize 16M > pte_size 64K: -EFAULT (out_put)" in events
    assert "KVM_RUN returns -EFAULT to userspace" in events


async def test_without_a_remap_the_first_size_stays_right() -> None:
    search = await explore(config("vrma_once", remaps=0), preemptions=None)
    assert search.verdict is Verdict.EXHAUSTED and search.result is None


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_gives_the_identical_run(design: str) -> None:
    for seed in range(20):
        first = await config(design).run(RandomWalk(seed))
        again = await config(design).run(Replay(first.schedule))
        assert again == first
        assert render_run(config(design), again) == render_run(config(design), first)


# ---- the model and the oracle on their own ----


@pytest.mark.parametrize(
    ("host", "vrma"), [(PAGE_SIZE, PAGE_SIZE), (0x10000, 0x10000), (0x200000, 0x10000), (0x1000000, 0x1000000)]
)
def test_vrma_page_size_is_the_largest_supported_that_fits(host: int, vrma: int) -> None:
    assert vrma_page_size(host) == vrma
    assert vrma_page_size(host // SCALE, SCALE) == vrma // SCALE, "the same on a 64K-page host, in model bytes"


def test_the_scenario_has_power7_sizes() -> None:
    """A 16M hugetlbfs page at gpa 0 and 64K base pages: what a POWER7 host had."""
    m = CATALOG["vrma_psize"].build("vrma_once").model
    hva = m.kvm.memslot.gfn_to_hva(0)
    assert m.frames.size_name(m.mm.mapping_size(hva)) == "16M"
    assert m.frames.size_name(PAGE_SIZE) == "64K"
    assert vrma_page_size(m.mm.mapping_size(hva), m.frames.scale) == m.mm.mapping_size(hva)


def _with_vrma_leaf(backing: int) -> Model:
    npages = LARGE_PAGE // PAGE_SIZE
    m = Model.build_regions(Region(npages, page_size=backing), nframes=2 * npages, scale=SCALE)
    pfn = m.mm.ptes[m.kvm.memslot.gfn_to_hva(0)].pfn
    m.kvm.setup_vrma(LARGE_PAGE)
    m.kvm.mmu_lock.acquire("vcpu0")
    m.kvm.install_spte(0, pfn, True, "vcpu0", page_size=LARGE_PAGE)
    m.kvm.mmu_lock.release("vcpu0")
    return m


def test_vrma_psize_is_silent_over_large_enough_backing() -> None:
    assert vrma_psize(_with_vrma_leaf(LARGE_PAGE)) is None


def test_vrma_psize_fires_over_smaller_backing_but_not_inside_an_invalidation() -> None:
    m = _with_vrma_leaf(PAGE_SIZE)
    assert vrma_psize(m) is not None
    m.kvm.in_progress = 1
    assert vrma_psize(m) is None


def test_vrma_psize_reads_the_host_page_table_not_the_vma() -> None:
    """A VMA that says 16M over base ptes (no hugetlb leaf) backs gpa 0 with 64K pages."""
    m = _with_vrma_leaf(PAGE_SIZE)
    (vma,) = m.mm.vmas
    m.mm.mmap_lock.acquire("t", write=True)
    m.mm.change_vma(vma, (Vma(vma.start, vma.end, vma.prot, LARGE_PAGE),), "t")
    m.mm.mmap_lock.release("t", write=True)
    violation = vrma_psize(m)
    assert violation is not None and "is backed by 64K pages" in violation.message


def test_the_fault_path_reads_the_size_of_the_page_gup_returned() -> None:
    m = _with_vrma_leaf(LARGE_PAGE)
    head = m.mm.ptes[m.kvm.memslot.gfn_to_hva(0)].pfn
    assert m.frames.folio_nr_pages(head + 3) * PAGE_SIZE == LARGE_PAGE, "a tail reads its folio's size"
    assert m.mm.mapping_size(m.kvm.memslot.gfn_to_hva(5)) == LARGE_PAGE
    small = _with_vrma_leaf(PAGE_SIZE)
    assert small.frames.folio_nr_pages(small.mm.ptes[small.kvm.memslot.gfn_to_hva(0)].pfn) == 1


def test_the_vrma_is_set_up_once() -> None:
    m = _with_vrma_leaf(LARGE_PAGE)
    with pytest.raises(AssertionError, match=r"^hpte_setup_done: the VRMA is set up once$"):
        m.kvm.setup_vrma(PAGE_SIZE)
