"""multi_vma: access rights are per page, at get_user_pages time, not once for "the VMA"."""

from __future__ import annotations

import pytest

from actors import Executor, Schedule
from mmurace import Config, RandomWalk, Replay, hunt
from scenarios import CATALOG
from tests.hunting import first_finding, replayed

SCENARIO = CATALOG["multi_vma"]


@pytest.mark.parametrize("design", ["setup_time", "pin"])
def test_deciding_at_registration_refuses_allowed_accesses(design: str) -> None:
    # setup_time translated with write at registration; pin (PPC970) requires rw:
    # either way the read of the read-only VMA's page fails, on every schedule
    found = first_finding("multi_vma", design, "spurious_efault", range(5))
    assert found is not None
    _, result = found
    assert result.finding is not None
    assert result.finding.message == "guest read of gfn 0x1 got -EFAULT, but hva 0x40001000 had a VMA allowing it"
    assert replayed("multi_vma", design, result, "spurious_efault") == result


@pytest.mark.parametrize("design", ["no_retry", "seq_retry"])
async def test_per_page_designs_survive_500_seeds(design: str) -> None:
    config = Config(SCENARIO, design, executor=Executor.DIRECT)
    assert (await hunt(config, range(500))).result is None


async def test_per_page_design_maps_the_read_only_page_read_only_and_the_late_mmap() -> None:
    config = Config(SCENARIO, "seq_retry", executor=Executor.DIRECT)
    for seed in range(20):
        events = [e for s in (await config.run(RandomWalk(seed))).steps for e in s.events]
        assert "spte gfn 0x1 -> pfn 0x101 RO" in events
        assert "spte gfn 0x2 -> pfn 0x102 W" in events


async def test_a_write_to_the_hole_before_the_mmap_is_a_rightful_efault() -> None:
    # the vcpu runs to its end before qemu mmaps the hole: v1:N with no preemption
    result = await Config(SCENARIO, "seq_retry", executor=Executor.DIRECT).run(Replay(Schedule((0,) * 17)))
    assert result.finding is None
    events = [e for s in result.steps for e in s.events]
    assert events[-4:] == [
        "no writable vma at hva 0x40002000: -EFAULT",
        "KVM_RUN returns -EFAULT to userspace",
        "vma 0x40002000-0x40003000 rw inserted",
        "end of run: every actor finished",
    ]


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_gives_the_identical_run(design: str) -> None:
    config = Config(SCENARIO, design, executor=Executor.DIRECT)
    for seed in range(20):
        first = await config.run(RandomWalk(seed))
        assert await config.run(Replay(first.schedule)) == first
