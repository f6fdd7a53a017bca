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

GOLDEN = Path(__file__).resolve().parent / "golden"

#: one replay of a broken cell per scenario (as `mmurace matrix --details` printed them), in text and JSON
REPLAYS = {
    "race_remap": ("no_retry", "v1:10:2=1"),
    "multi_vma": ("setup_time", "v1:6"),
    "mprotect_ro": ("no_retry", "v1:11:2=1"),
    "ksm_merge": ("no_retry", "v1:17:0=1,6=1,11=1"),
    "dirty_log": ("wp_ignore", "v1:6:4=1"),
    "vrma_psize": ("vrma_once", "v1:8:2=1"),
    "pin_ppc970": ("pin", "v1:5"),
    "migrate_page": ("setup_time", "v1:13:3=1"),
    "thp_split": ("level_early", "v1:13:2=1,6=1"),
}

CASES: dict[str, tuple[str, ...]] = {
    "story_race_remap": ("run", "race_remap"),
    "hunt_race_remap_no_retry_threads": ("run", "race_remap", "--design", "no_retry", "--threads"),
    "explore_race_remap_seq_retry": ("explore", "race_remap", "--design", "seq_retry"),
    "stress_ksm_merge_no_retry_pct": (
        "stress", "ksm_merge", "--design", "no_retry", "--strategy", "pct", "--seed", "3", "--json",
    ),
}
for _scenario, (_design, _schedule) in REPLAYS.items():
    _argv = ("replay", _scenario, "--design", _design, "--schedule", _schedule)
    CASES[f"replay_{_scenario}"] = _argv
    CASES[f"replay_{_scenario}_json"] = (*_argv, "--json")


def _strip_rates(text: str) -> str:
    """Drop what measures the machine rather than the run (schedules per second), and where
    the findings were saved (a directory of the test's own)."""
    kept = (line for line in text.splitlines() if "/s" not in line and "per second" not in line)
    return "\n".join(line for line in kept if not line.startswith("saved")) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_is_pinned(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(list(CASES[name]))
    out, err = capsys.readouterr()
    got = f"exit {status}\n{_strip_rates(out)}--- stderr\n{err}"
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("MMURACE_REGOLD"):
        path.write_text(got)
    assert got == path.read_text()
