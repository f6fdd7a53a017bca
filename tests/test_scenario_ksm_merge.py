"""ksm_merge: a guest write must never land in the shared KSM page.

Bounds (random walks, direct executor): ``ksm_write`` alone catches
no_retry within 200 seeds (seed 80); with every oracle, ``writable_spte``
sees the surviving leaf first (seed 48). seq_retry, pin and setup_time (which
pins RAM at registration, so KSM never merges its pages) survive 300 seeds. Exhaustive search
does not finish without a preemption bound (seq_retry: 100,000 runs, over
26,000 complete, in about two minutes, no violation), so it is bounded:
seq_retry and pin are exhausted within one preemption.
"""

from __future__ import annotations

import pytest

from actors import Executor, RunResult
from mmu import Model
from mmu.oracles import ksm_write
from mmurace import Config, RandomWalk, Replay, hunt
from mmurace.explore import Verdict, explore
from mmurace.report import render_run
from scenarios import CATALOG

SCENARIO = CATALOG["ksm_merge"]
#: gfn 0's page is replaced by gfn 1's, which becomes the KSM page
MERGED = "pte hva 0x40000000 -> pfn 0x101 RO"


def config(design: str, *oracles: str, accesses: int = 1) -> Config:
    return Config(SCENARIO, design, oracles, params=(("accesses", accesses),), executor=Executor.DIRECT)


def events(result: RunResult) -> list[str]:
    return [e for s in result.steps for e in s.events]


@pytest.mark.parametrize(("design", "bound"), [("no_retry", 1500)])
async def test_broken_designs_write_into_the_ksm_page(design: str, bound: int) -> None:
    found = await hunt(config(design, "ksm_write"), range(bound))
    assert found.result is not None, f"{design} survived {bound} seeds"
    finding = found.result.finding
    assert finding is not None and finding.oracle == "ksm_write"
    assert finding.message.startswith("guest write of gfn 0x1 landed in KSM page pfn 0x101")
    fatal = found.result.steps[finding.step]
    assert (fatal.actor, fatal.label) == ("vcpu0", "guest write gfn 0x1")
    again = await config(design, "ksm_write").run(Replay(found.result.schedule))
    assert again == found.result


async def test_no_retry_installs_between_the_zap_and_the_write_protect() -> None:
    found = await hunt(config("no_retry"), range(200))
    assert found.result is not None and found.result.finding is not None
    assert found.result.finding.oracle == "writable_spte"
    steps = [(s.actor, s.label) for s in found.result.steps]
    zap = steps.index(("ksmd", "mmu_lock: invalidate_begin, unmap, flush"))  # KVM's callback, in ksmd's thread
    install = max(i for i, s in enumerate(steps) if s == ("vcpu0", "mmu_lock: map spte"))
    protect = steps.index(("ksmd", "write_protect_page: ptep_clear_flush, page_count check"))
    assert zap < install < protect, "the leaf must be made after start zapped and before the pte went read-only"
    fatal = found.result.steps[found.result.finding.step]
    assert fatal.label == "mmu_lock: kvm_mmu_invalidate_end"


async def test_setup_time_pins_ram_so_ksm_never_merges_it() -> None:
    """v3.1's ``ram_pginfo`` holds a reference on every page: ``write_protect_page``'s
    refcount check fails, the merge is abandoned and the leaf stays right."""
    for seed in range(30):
        result = await config("setup_time", accesses=2).run(RandomWalk(seed))
        assert result.finding is None
        assert MERGED not in events(result)


@pytest.mark.parametrize("design", ["seq_retry", "pin", "setup_time"])
async def test_safe_designs_survive_300_seeds(design: str) -> None:
    survived = await hunt(config(design), range(300))
    assert survived.result is None and survived.tried == 300


@pytest.mark.parametrize("design", ["seq_retry", "pin"])
async def test_safe_designs_are_exhausted_within_one_preemption(design: str) -> None:
    search = await explore(config(design), preemptions=1)
    assert search.verdict is Verdict.EXHAUSTED and search.result is None


async def test_seq_retry_breaks_cow_after_the_merge() -> None:
    """Some run merges first; the guest's write to the KSM page then faults, gup
    copies it (wp_page_copy) and the new leaf maps the private copy."""
    for seed in range(100):
        ev = events(await config("seq_retry").run(RandomWalk(seed)))
        if MERGED in ev and "do_wp_page: a KSM page, copy (folio_get)" in ev:
            after = ev[ev.index("do_wp_page: a KSM page, copy (folio_get)"):]
            assert "alloc_page -> pfn 0x102 gen 1" in after
            leaves = [e for e in after if e.startswith("spte gfn")]
            assert any(e.endswith("-> pfn 0x102 W") for e in leaves), leaves
            return
    pytest.fail("no run of 100 merged before the guest wrote the KSM page")


async def test_a_gup_in_flight_makes_the_merge_give_up() -> None:
    for seed in range(100):
        ev = events(await config("seq_retry").run(RandomWalk(seed)))
        if any(e.startswith("page_count 3 != mapcount 1 + 1") for e in ev):
            assert MERGED not in ev
            return
    pytest.fail("no run of 100 had ksmd find gup's reference")


async def test_pin_never_lets_ksm_merge() -> None:
    """PPC970 keeps gup's reference (no R6): the page_count check refuses every merge."""
    for seed in range(100):
        ev = events(await config("pin").run(RandomWalk(seed)))
        assert MERGED not in ev


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_gives_the_identical_run(design: str) -> None:
    for seed in range(10):
        first = await config(design).run(RandomWalk(seed))
        again = await config(design).run(Replay(first.schedule))
        assert again == first
        assert render_run(config(design), again) == render_run(config(design), first)


# ---- the oracle on its own ----


def _write(m: Model, gfn: int, *, ksm: bool, write: bool = True) -> None:
    pfn = m.mm.ptes[m.kvm.memslot.gfn_to_hva(gfn)].pfn
    if ksm:
        m.frames.set_ksm(pfn)
    m.kvm.mmu_lock.acquire("vcpu0")
    m.kvm.install_spte(gfn, pfn, True, "vcpu0")
    m.kvm.mmu_lock.release("vcpu0")
    assert m.kvm.guest_access("vcpu0", gfn, write=write) is not None


def test_ksm_write_judges_a_write_into_a_ksm_page() -> None:
    m = Model.build(npages=2)
    _write(m, 1, ksm=True)
    violation = ksm_write(m)
    assert violation is not None and violation.message == (
        "guest write of gfn 0x1 landed in KSM page pfn 0x101, shared read-only by every mapping merged into it"
    )


@pytest.mark.parametrize(("ksm", "write"), [(False, True), (True, False)])
def test_ksm_write_ignores_reads_and_private_pages(ksm: bool, write: bool) -> None:
    m = Model.build(npages=1)
    _write(m, 0, ksm=ksm, write=write)
    assert ksm_write(m) is None


def test_a_reallocated_frame_is_no_longer_ksm() -> None:
    m = Model.build(npages=1, nframes=2)
    pfn = m.frames.alloc_page()
    m.frames.set_ksm(pfn)
    m.frames.put_page(pfn)
    assert m.frames.alloc_page() == pfn and not m.frames.is_ksm(pfn)
