"""migrate_page: the kernel gives the hva a new frame and frees the old one."""

from __future__ import annotations

import pytest

from actors import Executor
from mmurace import Config, RandomWalk, Replay, hunt
from scenarios import CATALOG
from tests.hunting import first_finding, replayed, run

SCENARIO = CATALOG["migrate_page"]


@pytest.mark.parametrize("design", ["no_retry"])
@pytest.mark.parametrize(("oracle", "bound"), [("stale_spte", 50), ("divergence", 50), ("corruption", 200)])
def test_broken_designs_map_the_frame_migration_frees(design: str, oracle: str, bound: int) -> None:
    found = first_finding("migrate_page", design, oracle, range(bound))
    assert found is not None, f"{design} survived {bound} seeds under {oracle}"
    _, result = found
    assert replayed("migrate_page", design, result, oracle) == result


async def test_setup_time_pins_ram_so_migration_fails_and_the_leaf_stays_right() -> None:
    """The reference ``ram_pginfo`` keeps fails the expected-refcount check: the
    migration entry is put back to the same page, never judged a divergence."""
    config = Config(SCENARIO, "setup_time", executor=Executor.DIRECT)
    assert (await hunt(config, range(100))).result is None
    events = [e for seed in range(20) for s in (await config.run(RandomWalk(seed))).steps for e in s.events]
    assert "pfn 0x100 refcount 2, expected 1: -EAGAIN, migration fails" in events


async def test_seq_retry_survives_500_seeds_under_every_oracle() -> None:
    config = Config(SCENARIO, "seq_retry", executor=Executor.DIRECT)
    assert (await hunt(config, range(500))).result is None


async def test_migration_moves_the_page_or_fails_on_an_extra_reference() -> None:
    config = Config(SCENARIO, "seq_retry", executor=Executor.DIRECT)
    moved = failed = waited = False
    for seed in range(200):
        events = [e for s in (await config.run(RandomWalk(seed))).steps for e in s.events]
        moved |= "copy pfn 0x100 -> pfn 0x101" in events
        failed |= any("-EAGAIN, migration fails" in e for e in events)
        waited |= "do_swap_page: migration entry" in events
    assert moved and failed and waited


def test_no_retry_breaks_only_when_the_migration_passes_the_refcount_check() -> None:
    found = first_finding("migrate_page", "no_retry", "stale_spte", range(50))
    assert found is not None
    labels = [(s.actor, s.label) for s in found[1].steps]
    install = max(i for i, label in enumerate(labels) if label == ("vcpu0", "mmu_lock: map spte"))
    # the page is resolved lockless (gup-fast), or else under mmap_lock
    gup = max(i for i, (actor, label) in enumerate(labels[:install]) if actor == "vcpu0" and "get_user_page" in label)
    # KVM's zap runs in kcompactd's thread, inside try_to_migrate's invalidate_range_start
    zap = labels.index(("kcompactd", "mmu_lock: invalidate_begin, unmap, flush"))
    clear = labels.index(("kcompactd", "try_to_migrate_one: ptep_clear_flush, migration entry"))
    assert zap < install, "the leaf is made after the zap, which was its only chance to go"
    assert gup < clear, "from the pfn the pte had before the migration entry replaced it"
    release = labels.index(("vcpu0", "kvm_release_pfn_clean"), install)
    assert release < labels.index(("kcompactd", "folio_migrate_mapping: expected refcount"))


def test_leaked_refs_is_silent_after_migrations() -> None:
    for design in SCENARIO.designs:
        for seed in range(100):
            assert run(SCENARIO.build(design, migrations=2), RandomWalk(seed), "leaked_refs").finding is None


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_gives_the_identical_run(design: str) -> None:
    config = Config(SCENARIO, design, executor=Executor.DIRECT)
    for seed in range(20):
        first = await config.run(RandomWalk(seed))
        assert await config.run(Replay(first.schedule)) == first
