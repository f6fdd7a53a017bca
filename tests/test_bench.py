"""Every bench script runs at its ``--quick`` size and prints the figures it promises.

The figures themselves are not judged (timings belong to bench/, never to a
test): what is checked is that each script still runs against the current
runtime and prints every row of every table, so that no script can rot.
Each runs as a script, in a fresh interpreter, as bench/README.md says.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from scenarios import CATALOG

ROOT = Path(__file__).resolve().parent.parent

NUMBER = r"[0-9]+(?:\.[0-9]+)?"
#: a ratio as bench/handoff.py prints it: median (q1-q3)
RATIO = rf"{NUMBER} \({NUMBER}-{NUMBER}\)"


def quick(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, f"bench/{script}", "--quick", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def rows(out: str, pattern: str) -> list[re.Match[str]]:
    return [m for line in out.splitlines() if (m := re.fullmatch(pattern, line))]


def test_handoff_prints_every_point_cost_against_the_event_baseline() -> None:
    out = quick("handoff.py")
    for name in ("event baseline", "runtime, switching", "runtime, no switch", "reschedule ring",
                 "empty trio.run", "Runtime.run 3x1 point"):
        assert rows(out, rf"  {re.escape(name)} +{NUMBER} +{NUMBER} +{RATIO}"), (name, out)


def test_hunt_prints_a_row_per_design() -> None:
    out = quick("hunt.py")
    for design in CATALOG["race_remap"].designs:
        pattern = rf"  {design} +{NUMBER} +{NUMBER} +[0-9]+/50 +{NUMBER} +{RATIO} +{RATIO}"
        assert rows(out, pattern), (design, out)


def test_search_prints_every_section() -> None:
    out = quick("search.py")
    for executor in ("hand-driven send() baseline", "direct executor", "trio executor"):
        assert rows(out, rf"   {re.escape(executor)} +{NUMBER} us/step +[0-9]+ steps/s +{NUMBER}x baseline")
    spread = r" +[0-9]+ / +>?[0-9]+"
    first = rows(out, rf"   noise=0 +(no_retry|setup_time) +random{spread} +pct{spread} +hypothesis{spread}")
    assert [m[1] for m in first] == ["no_retry", "setup_time"]
    cells = rows(out, rf"   race_remap +(\w+) +pct{spread} +random{spread}")
    assert [m[1] for m in cells] == ["setup_time", "no_retry", "gup_in_lock", "power7_abba"]
    assert rows(out, r"   race_remap --design setup_time -p move=1 --oracle spurious_efault +"
                     r"depth 2 +[0-9]+ +depth 3 +[0-9]+ +depth 4 +[0-9]+")
    run = rf">? *[0-9]+ \(\+[0-9]+ *\) +{NUMBER}s"
    searched = rows(out, rf"   default +(\w+) +(bound [12]|unbounded) +stateful +{run} +POR +{run}"
                         rf" +no POR +{run} +(.+)")
    verdicts = {(m[1], m[2]): m[3] for m in searched}
    assert len(verdicts) == 3 * len(CATALOG["race_remap"].designs)
    assert verdicts["seq_retry", "unbounded"] == "exhausted"
    assert verdicts["no_retry", "unbounded"] == "found a violation"
    proved = rows(out, r"   race_remap --design seq_retry -p remaps=1 +([0-9]+) states +([0-9]+) runs +[0-9.]+s"
                       r" +asking +[0-9.]+s: +[0-9.]+x +quiet +([0-9]+) states +([0-9]+) runs +[0-9.]+s: +[0-9.]+x"
                       r" +exhausted")
    assert len(proved) == 1, out
    states, runs, quiet_states, quiet_runs = map(int, proved[0].groups())
    assert states < quiet_states and runs < quiet_runs  # the persistent sets of quiet steps prune



#: remaps, spin: states, spin -a, gcc, pan, total; mmurace: states, runs, time; ratio; stateless: runs, time; verdicts
SPIN_ROW = (rf" +([0-9]+) +[0-9]+ +{NUMBER}s +{NUMBER}s +{NUMBER}s +{NUMBER}s +[0-9]+ +([0-9]+) +{NUMBER}s"
            rf" +{NUMBER}x +[0-9]+ +{NUMBER}s +(.+)")
ALONE_ROW = rf" +([0-9]+) +- +- +- +- +- +[0-9]+ +([0-9]+) +{NUMBER}s +- +[0-9]+ +{NUMBER}s +(.+)"
#: the same rows past --stateless-up-to: no stateless figures
SPIN_LATER = (rf" +([0-9]+) +[0-9]+ +{NUMBER}s +{NUMBER}s +{NUMBER}s +{NUMBER}s +[0-9]+ +([0-9]+) +{NUMBER}s"
              rf" +{NUMBER}x +- +- +(.+)")
ALONE_LATER = rf" +([0-9]+) +- +- +- +- +- +[0-9]+ +([0-9]+) +{NUMBER}s +- +- +- +(.+)"


def test_spin_without_spin_prints_mmurace_alone() -> None:
    out = quick("spin.py", "--spin", "no-such-spin")
    assert "spin was not found (Debian package spin): mmurace's figures alone" in out
    assert [(m[1], m[3]) for m in rows(out, ALONE_ROW)] == [("1", "-; exhausted; exhausted")]
    assert [(m[1], m[3]) for m in rows(out, ALONE_LATER)] == [("2", "-; exhausted; -")]


def test_spin_and_mmurace_prove_seq_retry_and_both_find_no_retry() -> None:
    """With SPIN installed, both prove seq_retry at every quick size and both find
    the no_retry race: the Promela model is a model of the same protocol."""
    if shutil.which("spin") is None or shutil.which("gcc") is None:
        assert "spin was not found" in quick("spin.py")
        return
    out = quick("spin.py")
    proved = rows(out, SPIN_ROW)
    assert [(m[1], m[3]) for m in proved] == [("1", "no violation; exhausted; exhausted")]
    assert [(m[1], m[3]) for m in rows(out, SPIN_LATER)] == [("2", "no violation; exhausted; -")]
    found = rows(quick("spin.py", "--design", "no_retry", "--remaps", "1"), SPIN_ROW)
    assert [(m[1], m[3]) for m in found] == [("1", "assertion violated; found; found")]


def test_jobs_prints_the_ratio_and_the_pools_cost() -> None:
    out = quick("jobs.py")
    for name in ("--jobs 1", "--jobs 2"):
        assert rows(out, rf"  {re.escape(name)} +[0-9]+ schedules/s \(median\), best [0-9]+"), (name, out)
    assert rows(out, rf"  --jobs 2 / --jobs 1: +{NUMBER}x \(q1-q3 {NUMBER}-{NUMBER}\) .*"), out
    assert rows(out, rf"  CPU in the pool: +{NUMBER}x \(q1-q3 {NUMBER}-{NUMBER}\) .*"), out


def test_weak_prints_sc_against_weak_for_each_design() -> None:
    out = quick("weak.py")
    for design in ("seq_retry", "unsafe_precheck", "power7_hpt"):
        proved = rf"  {design} +bound 1 +sc +[0-9]+ runs +{NUMBER}s +weak +[0-9]+ runs +{NUMBER}s" \
                 rf" +x{NUMBER} runs x{NUMBER} time +exhausted / exhausted"
        assert rows(out, proved), (design, out)
        walked = rf"  {design} +random +sc +[0-9]+ schedules/s +weak +[0-9]+ schedules/s +x{NUMBER} slower"
        assert rows(out, walked), (design, out)


def test_fingerprint_prints_a_row_per_cell_with_the_same_states_as_the_baseline() -> None:
    out = quick("fingerprint.py")
    for cell in ("race_remap --design seq_retry -p remaps=3", "race_remap --design seq_retry -p remaps=4",
                 "ksm_merge --design seq_retry", "race_remap --design power7_hpt",
                 "memslot_delete --design memslot_retry", "race_remap --design power7_hpt --memory weak"):
        row = rf"  {re.escape(cell)} +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +{RATIO} +[0-9]+ runs .+ +same states"
        assert rows(out, row), (cell, out)
