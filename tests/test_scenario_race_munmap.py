"""race_munmap: munmap downgrades mmap_lock before it zaps (v4.20+), and gup-fast
takes pages with no mmap_lock at all; a design that trusts mmap_lock is caught,
today's KVM survives every schedule on either host era."""

from __future__ import annotations

import pytest

from actors import DESIGNS, ActorContext, Design, Executor, Fault
from mmurace import Config, RandomWalk
from mmurace.cli import main
from mmurace.explore import Verdict, explore
from scenarios import CATALOG

SCENARIO = CATALOG["race_munmap"]
TODAY, Y2011 = (), (("era", 2011),)


def config(design: Design | str, params: tuple[tuple[str, int], ...] = TODAY) -> Config:
    return Config(SCENARIO, design, params=params, executor=Executor.DIRECT)


async def _no_fast_path(design: Design, ctx: ActorContext, f: Fault) -> bool:
    return False


#: mmap_locked on a KVM without gup-fast: every fault resolves under mmap_lock
SLOW_ONLY = DESIGNS["mmap_locked"].replace(resolve_fast=_no_fast_path, name="mmap_locked_slow_only")


@pytest.mark.parametrize("params", [TODAY, Y2011], ids=["today", "2011"])
async def test_seq_retry_survives_every_schedule(params: tuple[tuple[str, int], ...]) -> None:
    proof = await explore(config("seq_retry", params), preemptions=None)
    assert proof.verdict is Verdict.EXHAUSTED, proof.result


async def test_mmap_locked_takes_a_page_munmap_frees_after_its_downgrade() -> None:
    found = await explore(config("mmap_locked"), preemptions=None)
    assert found.result is not None and found.result.finding is not None
    assert found.result.finding.oracle == "stale_spte"
    labels = [(s.actor, s.label) for s in found.result.steps]
    downgrade = labels.index(
        ("qemu", "do_vmi_align_munmap: mmap_write_lock, vms_gather_munmap_vmas, mmap_write_downgrade")
    )
    read_lock = labels.index(("vcpu0", "mmap_read_lock"), downgrade)
    fast = labels.index(("vcpu0", "get_user_page_fast_only"), read_lock)
    assert fast < labels.index(("qemu", "zap_pte_range: ptep_get_and_clear")), "the walk beat the zap"


@pytest.mark.parametrize(
    ("design", "params"),
    [("mmap_locked", Y2011), (SLOW_ONLY, TODAY)],
    ids=["without the downgrade", "without gup-fast"],
)
async def test_mmap_locked_needs_both_mechanisms_to_break(design: Design | str, params: tuple) -> None:
    """Before v4.20 munmap holds the write lock until it is done; without gup-fast a
    fault inside today's window needs the VMA, which munmap detached first."""
    proof = await explore(config(design, params), preemptions=None)
    assert proof.verdict is Verdict.EXHAUSTED, proof.result


async def test_map_fixed_never_downgrades_so_mmap_locked_survives_it() -> None:
    remap = Config(CATALOG["race_remap"], "mmap_locked", executor=Executor.DIRECT)
    proof = await explore(remap, preemptions=None)
    assert proof.verdict is Verdict.EXHAUSTED, proof.result


def test_munmap_steps_on_each_host() -> None:
    def qemu_steps(params: tuple[tuple[str, int], ...]) -> list[str]:
        result = config("seq_retry", params).run_direct(RandomWalk(3))
        return [s.label for s in result.steps if s.thread == "qemu" and "kvm" not in s.label and "mmu_lock" not in s.label]

    assert qemu_steps(TODAY)[:1] + qemu_steps(TODAY)[-2:] == [
        "do_vmi_align_munmap: mmap_write_lock, vms_gather_munmap_vmas, mmap_write_downgrade",
        "vms_complete_munmap_vmas: remove_vma, mmap_read_unlock",
        "do_mmap: mmap_write_lock, mmap_region",
    ]
    assert qemu_steps(Y2011)[:1] + qemu_steps(Y2011)[-2:] == [
        "do_munmap: mmap_write_lock, detach_vmas_to_be_unmapped",
        "remove_vma_list, mmap_write_unlock",
        "do_mmap: mmap_write_lock, mmap_region",
    ]


def test_a_slow_fault_inside_the_window_finds_no_vma_and_that_is_no_spurious_efault() -> None:
    efaults = 0
    for seed in range(100):
        result = config(SLOW_ONLY).run_direct(RandomWalk(seed))
        assert result.finding is None, result.finding
        efaults += any("KVM_RUN returns -EFAULT to userspace" in e for s in result.steps for e in s.events)
    assert efaults, "some fault must land between munmap and the mmap that follows"


def test_the_era_must_be_one_the_model_has(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "race_munmap", "-p", "era=2018"]) == 2
    assert capsys.readouterr().err == (
        "mmurace: error: bad parameter for race_munmap: 'era' must be 2011 (v3.1-v3.5) or 2024"
        " (v6.10 and later) (got 2018)\n"
    )
