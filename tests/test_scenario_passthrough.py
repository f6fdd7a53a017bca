"""passthrough_remap: device memory (VM_PFNMAP) in a slot, mapped afresh by the VMM.

Bounds: setup_time is caught by ``stale_spte`` within 20 seeds (seed 1
today) and no_retry within 400 (seed 225); seq_retry is exhausted without a
preemption bound at the default parameters (41 runs), and for two preemptions
at accesses=3, remaps=2 (107 runs).
"""

from __future__ import annotations

import pytest

from actors import Executor
from mmu import Model, Region, Vma
from mmu.oracles import leaked_refs, stale_spte
from mmurace import Config, RandomWalk, Replay
from mmurace.explore import Verdict, explore
from mmurace.testing import assert_race
from scenarios import CATALOG
from tests.hunting import first_finding, replayed

SCENARIO = CATALOG["passthrough_remap"]


def config(design: str, **params: int) -> Config:
    return Config(SCENARIO, design, params=tuple(params.items()), executor=Executor.DIRECT)


def test_setup_time_keeps_the_guest_on_device_memory_the_driver_gave_back() -> None:
    found = first_finding("passthrough_remap", "setup_time", "stale_spte", range(20))
    assert found is not None
    _, result = found
    assert result.finding is not None
    assert result.finding.message == (
        "spte gfn 0x0 -> pfn 0x100, but pfn 0x100 was freed (refcount 0, on the free list)"
    )
    events = [e for s in result.steps for e in s.events]
    assert "VM_PFNMAP vma: pfn = vm_pgoff + offset = 0x100, no reference" in events
    assert "Book3S HV v3.2: no kvm_unmap_hva, nothing zapped" in events
    assert result.steps[result.finding.step].label == "remove_vma: vm_ops->close"
    assert replayed("passthrough_remap", "setup_time", result, "stale_spte") == result


def test_a_guest_write_through_the_stale_leaf_is_corruption() -> None:
    assert first_finding("passthrough_remap", "setup_time", "corruption", range(50)) is not None


def test_no_retry_maps_a_pfn_follow_pte_read_before_the_remap() -> None:
    race = assert_race("passthrough_remap", "no_retry", oracle="stale_spte")
    assert race.preemptions == 1
    events = [e for s in race.result.steps for e in s.events]
    assert "follow_pte: hva 0x40000000 -> pfn 0x100 W" in events


@pytest.mark.parametrize(("params", "bound"), [({}, None), ({"accesses": 3, "remaps": 2}, 2)])
async def test_seq_retry_is_exhausted(params: dict[str, int], bound: int | None) -> None:
    search = await explore(config("seq_retry", **params), preemptions=bound)
    assert search.verdict is Verdict.EXHAUSTED and search.result is None


async def test_seq_retry_maps_device_memory_through_follow_pte_without_a_reference() -> None:
    result = await config("seq_retry", remaps=0).run(RandomWalk(0))
    events = [e for s in result.steps for e in s.events]
    assert "gup_fast: special pte at hva 0x40000000, fall back to the slow path" in events
    assert "check_vma_flags: VM_PFNMAP vma at hva 0x40000000: -EFAULT" in events
    assert "follow_pte: hva 0x40000000 -> pfn 0x100 W" in events
    assert "pfn 0x100 is not a refcounted page: nothing to put" in events
    assert result.finding is None


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_gives_the_identical_run(design: str) -> None:
    for seed in range(20):
        first = await config(design).run(RandomWalk(seed))
        assert await config(design).run(Replay(first.schedule)) == first


# ---- the model on its own ----


def _device(prot: str = "rw") -> Model:
    return Model.build_regions(Region(2, prot=prot, pfnmap=True))


def test_remap_pfn_range_maps_vm_pgoff_plus_offset_with_special_ptes_and_no_reference() -> None:
    m = _device()
    (vma,) = m.mm.vmas
    assert vma.pfnmap and vma.pgoff == 0x100
    assert [(p.pfn, p.special, p.writable) for p in m.mm.ptes.values()] == [(0x100, True, True), (0x101, True, True)]
    assert [m.frames[p].refcount for p in (0x100, 0x101)] == [1, 1], "the driver's reference only"
    assert not m.frames.is_refcounted(0x100)
    assert leaked_refs(m) is None and stale_spte(m) is None


def test_a_split_vm_pfnmap_vma_keeps_vm_pgoff_plus_offset() -> None:
    (vma,) = _device().mm.vmas
    right = vma.piece(vma.start + 0x1000, vma.end, "r")
    assert (right.pgoff, right.prot, right.pfnmap) == (0x101, "r", True)
    assert vma.piece(vma.start, vma.start + 0x1000) == Vma(vma.start, vma.start + 0x1000, "rw", pgoff=0x100)


def test_leaked_refs_still_catches_a_reference_taken_on_device_memory() -> None:
    m = _device()
    m.frames.get_page(0x100)
    m.end_run()
    violation = leaked_refs(m)
    assert violation is not None and "pfn 0x100 has refcount 2" in violation.message


def test_released_device_memory_is_reassigned_with_a_new_generation() -> None:
    m = _device()
    m.frames.release_device(0x100, 2)
    assert m.frames[0x100].free and not m.frames[0x100].reserved
    assert m.frames.alloc_page() == 0x102, "FIFO: the released frames go to the tail"
    with pytest.raises(AssertionError, match=r"^release_device of pfn 0x100: not device memory"):
        m.frames.release_device(0x100, 1)


class _Ctx:
    """Just enough of an ``ActorContext`` for a host helper that never awaits."""

    def __init__(self, model: Model) -> None:
        self.model, self.name, self.notes = model, "vcpu0", []

    def note(self, line: str) -> None:
        self.notes.append(line)


@pytest.mark.parametrize(("prot", "write", "pfn"), [("rw", True, 0x101), ("r", False, 0x101), ("r", True, None)])
def test_follow_pte_honours_pte_write(prot: str, write: bool, pfn: int | None) -> None:
    from actors.host import follow_pfnmap_pte

    m = _device(prot)
    ctx = _Ctx(m)
    m.mm.mmap_lock.acquire("vcpu0", write=False)
    pte = follow_pfnmap_pte(ctx, m.kvm.memslot.gfn_to_hva(1), write)  # type: ignore[arg-type]
    assert (pte.pfn if pte else None) == pfn
    if pfn is None:
        assert ctx.notes == ["follow_pte: read-only pte at hva 0x40001000: KVM_PFN_ERR_RO_FAULT"]


def test_gup_refuses_a_pfnmap_vma() -> None:
    from actors.host import get_user_page

    m = _device()
    ctx = _Ctx(m)
    m.mm.mmap_lock.acquire("vcpu0", write=False)
    assert get_user_page(ctx, m.kvm.memslot.gfn_to_hva(0), False) is None  # type: ignore[arg-type]
    assert ctx.notes == ["check_vma_flags: VM_PFNMAP vma at hva 0x40000000: -EFAULT"]


def test_the_scenario_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match=r"^'accesses' must be >= 1 \(got 0\)$"):
        SCENARIO.build("seq_retry", accesses=0)
