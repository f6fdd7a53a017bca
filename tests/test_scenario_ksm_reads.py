"""ksm_reads: after the merge the guest only reads, and the merge must stay.

``always_write`` (POWER7 as merged in v3.3) asks get_user_pages for write on
the guest's read faults, so each one breaks COW on the KSM page and
``ksm_undone`` fires at the end of the run, without a preemption: Avi's "no
ksm for you". ``power7_hpt`` and ``seq_retry`` (which the matrix does not judge
here: this is POWER7's question) map the KSM page read-only and are not
flagged; nor is ``always_write`` on ``ksm_merge``, whose guest writes
the pages (a write must break COW). The bounded proofs are the matrix's.
"""

from __future__ import annotations

import pytest

from actors import Executor, RunResult
from mmurace import Config, RandomWalk, Replay
from mmurace.testing import assert_race
from scenarios import CATALOG


def events(result: RunResult) -> list[str]:
    return [e for s in result.steps for e in s.events]


def test_always_write_undoes_the_merge_with_reads_alone() -> None:
    race = assert_race("ksm_reads", "always_write", oracle="ksm_undone")
    assert race.preemptions == 0
    assert race.finding.message.startswith("vcpu0's read fault on gfn 0x0 broke COW: do_wp_page copied KSM page pfn 0x101")
    steps = race.result.steps
    merged = next(s.index for s in steps if s.label == "guest reads on")
    broken = [s for s in steps[merged:] if "do_wp_page: a KSM page, copy (folio_get)" in s.events]
    assert [(s.actor, s.label) for s in broken] == [("vcpu0", "get_user_pages")], "found at the first read"
    accesses = [s.label for s in steps[merged:] if s.actor == "vcpu0" and s.label.startswith("guest ")]
    assert accesses and all(a.startswith("guest read") for a in accesses)
    config = Config(CATALOG["ksm_reads"], "always_write", executor=Executor.DIRECT)
    assert config.run_direct(Replay(race.result.schedule)) == race.result


@pytest.mark.parametrize("design", ["power7_hpt", "seq_retry"])
def test_a_read_fault_maps_the_ksm_page_read_only_and_keeps_the_merge(design: str) -> None:
    """No COW break in the vcpu's thread (ksmd may break its own half merge when the
    second one fails on a gup in flight: ``break_cow``)."""
    config = Config(CATALOG["ksm_reads"], design, executor=Executor.DIRECT)
    merged = 0
    for seed in range(100):
        result = config.run_direct(RandomWalk(seed))
        assert result.finding is None, f"seed {seed}: {result.finding}"
        merged += "pte hva 0x40000000 -> pfn 0x101 RO" in events(result)
        assert not [s for s in result.steps if s.actor == "vcpu0" and "do_wp_page: a KSM page, copy (folio_get)" in s.events]
    assert merged > 50


def test_always_write_is_not_flagged_where_the_guest_writes() -> None:
    config = Config(CATALOG["ksm_merge"], "always_write", ("ksm_undone",), executor=Executor.DIRECT)
    broke = 0
    for seed in range(100):
        result = config.run_direct(RandomWalk(seed))
        assert result.finding is None, f"seed {seed}: {result.finding}"
        broke += any("do_wp_page: a KSM page" in e for e in events(result))
    assert broke > 0, "the guest's writes must have broken COW on the KSM page somewhere"


def test_accesses_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^'accesses' must be >= 1 \(got 0\)$"):
        CATALOG["ksm_reads"].build("power7_hpt", accesses=0)
