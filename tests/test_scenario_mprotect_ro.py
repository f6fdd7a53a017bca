"""mprotect_ro: a writable spte must not outlive mprotect(PROT_READ) (O2)."""

from __future__ import annotations

import pytest

from actors import Executor
from mmurace import Config, RandomWalk, Replay, hunt
from mmurace.report import render_run
from scenarios import CATALOG
from tests.hunting import first_finding, replayed

SCENARIO = CATALOG["mprotect_ro"]


@pytest.mark.parametrize(("design", "bound"), [("setup_time", 20), ("no_retry", 200)])
def test_broken_designs_keep_a_writable_spte(design: str, bound: int) -> None:
    found = first_finding("mprotect_ro", design, "writable_spte", range(bound))
    assert found is not None, f"{design} survived {bound} seeds"
    seed, result = found
    assert result.finding is not None and "is writable, but host pte" in result.finding.message
    assert replayed("mprotect_ro", design, result, "writable_spte") == result


async def test_with_every_oracle_writable_spte_is_what_catches_no_retry() -> None:
    found = await hunt(Config(SCENARIO, "no_retry", executor=Executor.DIRECT), range(200))
    assert found.result is not None and found.result.finding is not None
    assert found.result.finding.oracle == "writable_spte"
    labels = [s.label for s in found.result.steps]
    zap = labels.index("mmu_lock: invalidate_begin, unmap, flush")
    install = labels.index("mmu_lock: map spte", zap)
    # the page is resolved lockless (gup-fast), or else under mmap_lock
    gup = max(i for i, label in enumerate(labels[:install]) if "get_user_page" in label)
    assert gup < zap < install, "the zap must fall between gup and the install"
    # judged when the window closes, or at the install if the whole mprotect ran before it
    fatal = found.result.steps[found.result.finding.step].label
    assert fatal in ("mmu_lock: kvm_mmu_invalidate_end", "mmu_lock: map spte")


async def test_seq_retry_survives_500_seeds_and_refuses_the_write() -> None:
    config = Config(SCENARIO, "seq_retry", executor=Executor.DIRECT)
    assert (await hunt(config, range(500))).result is None
    events = [e for seed in range(50) for s in (await config.run(RandomWalk(seed))).steps for e in s.events]
    assert "KVM_RUN returns -EFAULT to userspace" in events  # a write after mprotect is refused
    assert "end of run: every actor finished" in events


@pytest.mark.parametrize("design", SCENARIO.designs)
async def test_replay_gives_the_identical_run(design: str) -> None:
    config = Config(SCENARIO, design, executor=Executor.DIRECT)
    for seed in range(20):
        first = await config.run(RandomWalk(seed))
        again = await config.run(Replay(first.schedule))
        assert again == first
        assert render_run(config, again) == render_run(config, first)
