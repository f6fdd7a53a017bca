"""pin_ppc970: pinning never corrupts memory, but diverges and strands the pinned page."""

from __future__ import annotations

import pytest

from actors import Executor
from mmurace import Config, RandomWalk, Replay, hunt
from scenarios import CATALOG
from tests.hunting import first_finding, replayed, run

SCENARIO = CATALOG["pin_ppc970"]


def test_pin_diverges_after_a_remap() -> None:
    found = first_finding("pin_ppc970", "pin", "divergence", range(50))
    assert found is not None
    _, result = found
    events = [e for s in result.steps for e in s.events]
    assert "kvm_unmap_hva_range: !using_mmu_notifiers (PPC970), nothing zapped" in events
    assert replayed("pin_ppc970", "pin", result, "divergence") == result


def test_pin_strands_the_pinned_page_at_the_end_of_the_run() -> None:
    found = first_finding("pin_ppc970", "pin", "pinned_pages", range(50))
    assert found is not None
    _, result = found
    assert result.finding is not None
    assert "stays pinned for gfn 0x0" in result.finding.message
    assert "end of run: every actor finished" in result.steps[result.finding.step].events
    assert replayed("pin_ppc970", "pin", result, "pinned_pages") == result


@pytest.mark.parametrize("oracle", ["stale_spte", "corruption", "leaked_refs"])
def test_pin_never_frees_under_the_guest_nor_leaks_uncounted_refs(oracle: str) -> None:
    assert first_finding("pin_ppc970", "pin", oracle, range(500)) is None


def test_setup_time_pins_ram_as_ppc970_does() -> None:
    """The reviewed patch kept ``ram_pginfo``'s references: divergence, no use after free."""
    assert first_finding("pin_ppc970", "setup_time", "divergence", range(50)) is not None
    assert first_finding("pin_ppc970", "setup_time", "pinned_pages", range(50)) is not None
    assert first_finding("pin_ppc970", "setup_time", "stale_spte", range(200)) is None


async def test_seq_retry_survives_500_seeds_under_every_oracle() -> None:
    config = Config(SCENARIO, "seq_retry", executor=Executor.DIRECT)
    assert (await hunt(config, range(500))).result is None


def test_pinned_pages_is_silent_when_the_host_still_maps_the_pinned_page() -> None:
    for seed in range(100):
        result = run(SCENARIO.build("pin", remaps=0), RandomWalk(seed), "pinned_pages", "leaked_refs")
        assert result.finding is None


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_gives_the_identical_run(design: str) -> None:
    config = Config(SCENARIO, design, executor=Executor.DIRECT)
    for seed in range(20):
        first = await config.run(RandomWalk(seed))
        assert await config.run(Replay(first.schedule)) == first
