"""The headline race: each buggy design is caught by the oracle that should
catch it, today's KVM survives, and every run replays byte for byte."""

from __future__ import annotations

import pytest

from mmurace import Config, RandomWalk, Replay, hunt
from mmurace.report import render_run
from scenarios import CATALOG

SCENARIO = CATALOG["race_remap"]


def config(design: str, *oracles: str) -> Config:
    return Config(SCENARIO, design, oracles)


@pytest.mark.parametrize(
    ("design", "oracle"),
    [
        ("no_retry", "stale_spte"),
        ("no_retry", "corruption"),
        ("no_retry", "divergence"),
        ("setup_time", "divergence"),
        ("setup_time", "pinned_pages"),
    ],
)
async def test_buggy_designs_are_caught_by_each_oracle(design: str, oracle: str) -> None:
    found = await hunt(config(design, oracle), range(200))
    assert found.result is not None, f"{design} survived 200 seeds under {oracle}"
    assert found.result.finding is not None
    assert found.result.finding.oracle == oracle


@pytest.mark.parametrize("oracle", ["stale_spte", "corruption", "leaked_refs"])
async def test_the_patch_under_review_pins_ram_so_nothing_is_freed_under_the_guest(oracle: str) -> None:
    """v3.1's ``ram_pginfo`` keeps the reference gup took at registration: a remap
    leaves the guest on the old page, which stays allocated (and counted)."""
    assert (await hunt(config("setup_time", oracle), range(200))).result is None


async def test_no_retry_race_is_the_remap_between_gup_and_map() -> None:
    found = await hunt(config("no_retry", "stale_spte"), range(200))
    assert found.result is not None
    labels = [(s.actor, s.label) for s in found.result.steps]
    zap = labels.index(("qemu", "mmu_lock: invalidate_begin, unmap, flush"))  # KVM's callback, in QEMU's thread
    install = labels.index(("vcpu0", "mmu_lock: map spte"), zap)
    # the page is resolved lockless (gup-fast), or else under mmap_lock
    gup = max(i for i, (actor, label) in enumerate(labels[:install]) if actor == "vcpu0" and "get_user_page" in label)
    assert gup < zap < install, "the zap must fall between gup and the install"
    fatal = found.result.steps[found.result.finding.step]
    assert fatal.label == "tlb_flush_mmu: put_page" or fatal.label == "kvm_release_pfn_clean"
    assert any("frame freed" in e for e in fatal.events)


async def test_today_kvm_survives_1000_seeds() -> None:
    survived = await hunt(config("seq_retry"), range(1000))
    assert survived.result is None
    assert survived.tried == 1000


async def test_seq_retry_does_retry_when_the_remap_lands_in_the_window() -> None:
    # the same seed that breaks no_retry makes seq_retry see the invalidation
    broken = await hunt(config("no_retry"), range(200))
    assert broken.seed is not None
    result = await config("seq_retry").run(RandomWalk(broken.seed))
    events = [e for s in result.steps for e in s.events]
    assert result.finding is None
    assert any(e.endswith("-> retry") for e in events), events


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_same_seed_gives_byte_identical_trace(design: str) -> None:
    traces = {
        render_run(config(design), await config(design).run(RandomWalk(seed)))
        for seed in (3, 3, 3)
    }
    assert len(traces) == 1


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_of_recorded_schedules_gives_identical_traces(design: str) -> None:
    for seed in range(30):
        first = await config(design).run(RandomWalk(seed))
        again = await config(design).run(Replay(first.schedule))
        assert render_run(config(design), again) == render_run(config(design), first)
        assert again == first


async def test_noise_buries_the_race_without_changing_outcomes() -> None:
    """The unrelated steps touch nothing the race touches: a race is still a
    race, and today's KVM still survives."""
    noisy = Config(SCENARIO, "no_retry", params=(("noise", 40),))
    loud = await noisy.run(RandomWalk(0))
    # how many steps the rest takes depends on the interleaving (a contended
    # mmap_lock costs a wait step, a page still mapped saves the slow gup)
    assert sum(s.label == "qemu runs its device models" for s in loud.steps) == 40
    assert sum(s.label == "guest works on its other pages" for s in loud.steps) == 40
    found = await hunt(noisy, range(300))
    assert found.result is not None
    survived = await hunt(Config(SCENARIO, "seq_retry", params=(("noise", 40),)), range(200))
    assert survived.result is None


MOVED = (("move", 1),)


async def test_mremap_moves_the_frame_instead_of_freeing_it() -> None:
    """With -p move=1 the frame follows its pte to the new address: a stale
    spte is no use after free but divergence, and today's KVM still survives."""
    from actors import Executor
    from mmurace.explore import Verdict, explore

    moved = Config(SCENARIO, "no_retry", ("divergence",), params=MOVED, executor=Executor.DIRECT)
    found = await hunt(moved, range(200))
    assert found.result is not None and found.result.finding is not None
    assert found.result.finding.oracle == "divergence"
    never_freed = Config(SCENARIO, "no_retry", ("stale_spte", "corruption"), params=MOVED)
    assert (await hunt(never_freed, range(300))).result is None
    proof = await explore(Config(SCENARIO, "seq_retry", params=MOVED, executor=Executor.DIRECT), preemptions=None)
    assert proof.verdict is Verdict.EXHAUSTED


async def test_mremap_keeps_frame_and_reference() -> None:
    result = await Config(SCENARIO, "seq_retry", params=MOVED).run(RandomWalk(3))
    events = [e for s in result.steps for e in s.events]
    assert "pte hva 0x40000000 -> pfn 0x100 cleared" in events
    assert "pte hva 0x40100000 -> pfn 0x100 W" in events
    assert not any("put_page pfn 0x100: ref 1->0" in e for e in events)


def test_move_must_be_0_or_1() -> None:
    with pytest.raises(ValueError, match=r"^'move' must be 0 or 1 \(got 2\)$"):
        SCENARIO.build("seq_retry", move=2)
