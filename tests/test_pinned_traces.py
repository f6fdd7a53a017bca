"""Outputs pinned byte for byte: moving code around must not change a single trace.

Each case is a command line and the file under ``tests/golden/`` that holds
what it printed when it was pinned. A change that alters a trace, a schedule
string or a JSON field on purpose regenerates them with
``MMURACE_REGOLD=1 python -m pytest tests/test_pinned_traces.py`` and says
why in its commit message.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmurace.cli import main
from mmurace.testing import find_race

GOLDEN = Path(__file__).resolve().parent / "golden"

#: the broken cell replayed per scenario; its schedule is the first race a search
#: bounded to two preemptions finds, so that a model change cannot leave a stale
#: schedule pinning an error message instead of a trace
REPLAYS = {
    "race_remap": "no_retry",
    "race_munmap": "mmap_locked",
    "multi_vma": "setup_time",
    "mprotect_ro": "no_retry",
    "ksm_merge": "no_retry",
    "dirty_log": "wp_ignore",
    "vrma_psize": "vrma_once",
    "pin_ppc970": "pin",
    "migrate_page": "no_retry",  # setup_time pins RAM: the migration fails, nothing breaks
    "thp_split": "level_early",
    "memslot_delete": "memslot_no_invalid",
}

CASES: dict[str, tuple[str, ...]] = {
    "story_race_remap": ("run", "race_remap"),
    "hunt_race_remap_no_retry_threads": ("run", "race_remap", "--design", "no_retry", "--threads"),
    "explore_race_remap_seq_retry": ("explore", "race_remap", "--design", "seq_retry"),
    "stress_ksm_merge_no_retry_pct": (
        # one process: how many schedules a pool runs past the first finding depends on timing
        "stress", "ksm_merge", "--design", "no_retry", "--strategy", "pct", "--seed", "3", "--jobs", "1", "--json",
    ),
}
for _scenario in REPLAYS:
    CASES[f"replay_{_scenario}"] = ("replay", _scenario)
    CASES[f"replay_{_scenario}_json"] = ("replay", _scenario, "--json")


def _argv(name: str) -> list[str]:
    """The command line of a case; a replay's schedule is found afresh, and must fail."""
    argv = list(CASES[name])
    if argv[0] != "replay":
        return argv
    scenario, design = argv[1], REPLAYS[argv[1]]
    race = find_race(scenario, design, preemptions=2, limit=5000)
    assert race is not None, f"no race within two preemptions in {scenario} --design {design}"
    return ["replay", scenario, "--design", design, "--schedule", race.schedule, *argv[2:]]


def _strip_rates(text: str) -> str:
    """Drop what measures the machine rather than the run (schedules per second), and where
    the findings were saved (a directory of the test's own)."""
    kept = (line for line in text.splitlines() if "/s" not in line and "per second" not in line)
    return "\n".join(line for line in kept if not line.startswith("saved")) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_is_pinned(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(name)
    status = main(argv)
    out, err = capsys.readouterr()
    if argv[0] == "replay":
        assert (status, err) == (1, ""), err
    got = f"exit {status}\n{_strip_rates(out)}--- stderr\n{err}"
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("MMURACE_REGOLD"):
        path.write_text(got)
    assert got == path.read_text()
