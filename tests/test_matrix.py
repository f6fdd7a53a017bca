"""``mmurace matrix``: every design against every scenario, verdicts pinned."""

from __future__ import annotations

import json

import pytest

from actors import DESIGNS
from mmurace.cli import main
from mmurace.matrix import EXPLORE_LIMIT, Outcome, judge, matrix
from scenarios import CATALOG

#: the expected verdict of every cell: (outcome, oracle)
EXPECTED = {
    # the patch under review pinned RAM at registration (ram_pginfo) and had no notifier:
    # the guest keeps the old page, which is never freed
    ("race_remap", "setup_time"): (Outcome.BROKEN, "divergence"),
    # gup-fast takes the page inside MAP_FIXED's write-locked window: the first race
    # found maps it once the window closed (divergence, a step before the free)
    ("race_remap", "no_retry"): (Outcome.BROKEN, "divergence"),
    ("race_remap", "seq_retry"): (Outcome.EXHAUSTED, ""),
    # lockdep judges the mmap_lock attempt under mmu_lock before the vcpu waits, as
    # down_read does: the hang needs a kernel without lockdep (test_scenario_gup_in_lock)
    ("race_remap", "gup_in_lock"): (Outcome.BROKEN, "lock_order"),
    # passthrough: device memory (VM_PFNMAP) has no reference to pin; the driver gives it back
    ("passthrough_remap", "setup_time"): (Outcome.BROKEN, "stale_spte"),
    ("passthrough_remap", "no_retry"): (Outcome.BROKEN, "stale_spte"),
    ("passthrough_remap", "seq_retry"): (Outcome.EXHAUSTED, ""),
    ("race_munmap", "setup_time"): (Outcome.BROKEN, "divergence"),
    ("race_munmap", "no_retry"): (Outcome.BROKEN, "divergence"),
    ("race_munmap", "seq_retry"): (Outcome.EXHAUSTED, ""),
    # munmap zaps under mmap_lock for read since v4.20, and gup-fast needs none
    ("race_munmap", "mmap_locked"): (Outcome.BROKEN, "stale_spte"),
    # POWER7's HPT family: no mmu_lock on the fault path, the lockless retry under lock_rmap
    ("race_remap", "power7_hpt"): (Outcome.EXHAUSTED, ""),
    ("race_remap", "always_write"): (Outcome.EXHAUSTED, ""),
    # kvm_unmap_rmapp waiting for the HPTE lock holding the rmap lock: lockdep sees rmap -> HPTE
    # against H_ENTER's and the fault's HPTE -> rmap
    ("race_remap", "power7_abba"): (Outcome.BROKEN, "lock_order"),
    ("multi_vma", "setup_time"): (Outcome.BROKEN, "spurious_efault"),
    ("multi_vma", "no_retry"): (Outcome.EXHAUSTED, ""),
    ("multi_vma", "seq_retry"): (Outcome.EXHAUSTED, ""),
    ("multi_vma", "pin"): (Outcome.BROKEN, "spurious_efault"),
    ("mprotect_ro", "setup_time"): (Outcome.BROKEN, "writable_spte"),  # no notifier: the leaf stays writable
    ("mprotect_ro", "no_retry"): (Outcome.BROKEN, "writable_spte"),
    ("mprotect_ro", "seq_retry"): (Outcome.EXHAUSTED, ""),
    # setup_time and pin hold a reference on every page: write_protect_page gives up
    ("ksm_merge", "setup_time"): (Outcome.EXHAUSTED, ""),
    ("ksm_merge", "no_retry"): (Outcome.BROKEN, "writable_spte"),
    # too big to exhaust unbounded within EXPLORE_LIMIT: proved for one preemption
    ("ksm_merge", "seq_retry"): (Outcome.EXHAUSTED, ""),
    ("ksm_merge", "pin"): (Outcome.EXHAUSTED, ""),
    ("ksm_merge", "power7_hpt"): (Outcome.EXHAUSTED, ""),
    # bounded as ksm_merge is; always_write breaks COW on the guest's read faults: "no ksm for you"
    ("ksm_reads", "power7_hpt"): (Outcome.EXHAUSTED, ""),
    ("ksm_reads", "always_write"): (Outcome.BROKEN, "ksm_undone"),
    ("pin_ppc970", "setup_time"): (Outcome.BROKEN, "divergence"),
    ("pin_ppc970", "seq_retry"): (Outcome.EXHAUSTED, ""),
    ("pin_ppc970", "pin"): (Outcome.BROKEN, "divergence"),
    # the pinned page fails migration's expected-refcount check and stays
    ("migrate_page", "setup_time"): (Outcome.EXHAUSTED, ""),
    ("migrate_page", "no_retry"): (Outcome.BROKEN, "divergence"),
    ("migrate_page", "seq_retry"): (Outcome.EXHAUSTED, ""),
    ("migrate_page", "power7_hpt"): (Outcome.EXHAUSTED, ""),
    ("migrate_page", "always_write"): (Outcome.EXHAUSTED, ""),
    # the same scenarios on a 2011 host (change_pte, invalidate_page, no start/end around them)
    ("ksm_merge_2011", "setup_time"): (Outcome.EXHAUSTED, ""),
    ("ksm_merge_2011", "no_retry"): (Outcome.BROKEN, "divergence"),
    # proved for two preemptions: change_pte's seq++ stops the read fault that got the old page
    ("ksm_merge_2011", "seq_retry"): (Outcome.EXHAUSTED, ""),
    # PPC970 pins for write on a read fault too (kvmppc_get_guest_page): a read of a page
    # ksmd merged breaks COW, and the merge is undone
    ("ksm_merge_2011", "pin"): (Outcome.BROKEN, "ksm_undone"),
    # POWER7 as merged in v3.3, on its own host: the guest's first read of a merged page
    # faults (its HPTE went with change_pte's unmap) and asks get_user_pages for write
    ("ksm_merge_2011", "always_write"): (Outcome.BROKEN, "ksm_undone"),
    ("migrate_page_2011", "setup_time"): (Outcome.EXHAUSTED, ""),
    ("migrate_page_2011", "no_retry"): (Outcome.BROKEN, "divergence"),
    ("migrate_page_2011", "seq_retry"): (Outcome.EXHAUSTED, ""),
    # invalidate_page's seq++ and PPC HV's rmap walk, in one mmu_lock section
    ("migrate_page_2011", "power7_hpt"): (Outcome.EXHAUSTED, ""),
    ("migrate_page_2011", "always_write"): (Outcome.EXHAUSTED, ""),
    ("dirty_log", "wp_ignore"): (Outcome.BROKEN, "lost_dirty"),
    ("dirty_log", "wp_zap_refault"): (Outcome.EXHAUSTED, ""),
    ("dirty_log", "wp_readonly"): (Outcome.EXHAUSTED, ""),
    # v3.6: the HPTEs' C bits, each HPTE absent briefly with tlbie, no write protection
    ("dirty_log", "power7_dirty"): (Outcome.EXHAUSTED, ""),
    ("vrma_psize", "vrma_once"): (Outcome.BROKEN, "vrma_psize"),
    ("vrma_psize", "vrma_checked"): (Outcome.EXHAUSTED, ""),
    ("thp_split", "level_early"): (Outcome.BROKEN, "huge_spte"),
    # too big to exhaust unbounded within EXPLORE_LIMIT: proved for two preemptions
    ("thp_split", "level_locked"): (Outcome.EXHAUSTED, ""),
    # several memslots (docs/model.md section 7): a correct deletion is not flagged, each broken step is
    ("memslot_delete", "memslot_retry"): (Outcome.EXHAUSTED, ""),
    ("memslot_delete", "memslot_no_zap"): (Outcome.BROKEN, "deleted_memslot"),
    ("memslot_delete", "memslot_no_flush"): (Outcome.BROKEN, "deleted_memslot"),
    ("memslot_delete", "memslot_no_invalid"): (Outcome.BROKEN, "deleted_memslot"),
    # the invalidation's end finds no memslot: in_progress stays 1 and the vcpu's re-fault waits for ever
    ("memslot_delete", "memslot_no_wait"): (Outcome.BROKEN, "deadlock"),
    ("memslot_delete", "memslot_no_srcu"): (Outcome.BROKEN, "deleted_memslot"),
    ("invalidate_ranges", "memslot_retry"): (Outcome.EXHAUSTED, ""),
    ("invalidate_ranges", "range_last"): (Outcome.BROKEN, "stale_spte"),
}


#: KVM's 2011 callbacks as examples/change_pte_2011.py varies them, on the 2011 columns
ERA_2011 = "examples/change_pte_2011.py"
ERA_2011_EXPECTED = {
    ("ksm_merge_2011", "ppc_hv"): (Outcome.EXHAUSTED, ""),
    ("ksm_merge_2011", "change_pte_writable"): (Outcome.BROKEN, "writable_spte"),
    ("ksm_merge_2011", "change_pte_no_seq"): (Outcome.BROKEN, "divergence"),
    ("migrate_page_2011", "invalidate_page_late_seq"): (Outcome.BROKEN, "divergence"),
}


@pytest.mark.parametrize(("scenario", "design"), sorted(EXPECTED))
def test_every_cell_has_its_pinned_verdict(scenario: str, design: str) -> None:
    # a verdict, not its bound: a safe cell too big to prove unbounded in 3,000 runs is proved to a bound
    cell = judge(scenario, design, budget=100, limit=EXPLORE_LIMIT)
    assert (cell.outcome, cell.oracle) == EXPECTED[scenario, design]
    if cell.outcome is Outcome.BROKEN:
        assert cell.replay().startswith(f"mmurace replay {scenario} --design {design} --schedule v1:")


@pytest.mark.parametrize(("scenario", "design"), sorted(ERA_2011_EXPECTED))
def test_2011_callback_variants_have_their_pinned_verdict(scenario: str, design: str) -> None:
    cell = judge(scenario, f"{ERA_2011}:{design}", budget=100, limit=EXPLORE_LIMIT)
    assert (cell.outcome, cell.oracle) == ERA_2011_EXPECTED[scenario, design]


def test_every_cell_of_the_catalog_is_pinned() -> None:
    pairs = {(s, d) for s in CATALOG for d in DESIGNS if d in CATALOG[s].designs}
    assert pairs == set(EXPECTED), f"unpinned: {sorted(pairs - set(EXPECTED))}; gone: {sorted(set(EXPECTED) - pairs)}"


def test_cells_come_back_in_table_order_with_a_pool() -> None:
    serial = matrix(["race_remap"], list(DESIGNS), budget=50, jobs=1)
    pooled = matrix(["race_remap"], list(DESIGNS), budget=50, jobs=2)
    assert serial == pooled


def test_matrix_command(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["matrix", "--scenario", "race_remap", "--budget", "50", "--jobs", "1", "--details"])
    out = capsys.readouterr().out
    assert status == 1
    assert "exhausted" in out and "divergence (0 preemptions)" in out
    assert "race_remap x no_retry: mmurace replay race_remap --design no_retry --schedule v1:" in out
    status = main(["matrix", "--scenario", "race_remap", "--design", "seq_retry", "--jobs", "1", "--json"])
    (cell,) = json.loads(capsys.readouterr().out)
    assert (status, cell["outcome"]) == (0, "exhausted")


def test_matrix_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--design", "seqretry"]) == 2
    assert capsys.readouterr().err == "mmurace: error: unknown design 'seqretry': did you mean 'seq_retry'?\n"


def test_a_cell_too_big_to_exhaust_unbounded_is_proved_for_a_bound() -> None:
    cell = judge("ksm_merge", "seq_retry", budget=50, limit=EXPLORE_LIMIT)
    assert (cell.outcome, cell.bound) == (Outcome.EXHAUSTED, 2)
    assert cell.text().startswith("exhausted <=2 preemptions (")
    small = judge("race_remap", "seq_retry", budget=50, limit=EXPLORE_LIMIT)
    assert (small.outcome, small.bound) == (Outcome.EXHAUSTED, None)
    assert small.text().startswith("exhausted (")


def test_the_proof_limit_decides_between_a_bound_and_an_unbounded_proof(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["matrix", "--scenario", "ksm_merge", "--design", "pin", "--budget", "20", "--jobs", "1", "--json"]
    assert main([*argv, "--limit", "500"]) == 0
    (bounded,) = json.loads(capsys.readouterr().out)
    assert main(argv) == 0  # the default limit: the stateful search proves it unbounded
    (proved,) = json.loads(capsys.readouterr().out)
    assert (bounded["outcome"], bounded["bound"]) == ("exhausted", 2)
    assert (proved["outcome"], proved["bound"]) == ("exhausted", None)
