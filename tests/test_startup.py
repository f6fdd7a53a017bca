"""Start-up: a command imports Trio and Hypothesis only when it runs on them.

Importing both takes longer than proving race_remap/seq_retry, so
``mmurace explore`` on the direct executor must not pay for them, while
``--executor trio`` and ``--strategy hypothesis`` still work. Each command
runs in a fresh interpreter, since this one has long imported both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: runs ``mmurace ARGS`` in a fresh interpreter; its last line says what got imported
PROBE = """
import json, sys
from mmurace.cli import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "imported": [m for m in ("trio", "hypothesis") if m in sys.modules]}))
"""


def mmurace(*args: str) -> tuple[int, list[str], str]:
    """(exit status, which of trio and hypothesis were imported, what the command printed)."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out, _, last = proc.stdout.rstrip("\n").rpartition("\n")
    report = json.loads(last)
    return report["status"], report["imported"], out


def test_explore_imports_neither_trio_nor_hypothesis() -> None:
    status, imported, out = mmurace("explore", "race_remap", "--design", "seq_retry")
    assert (status, imported) == (0, [])
    assert out.startswith("race_remap --design seq_retry: exhausted: ")


def test_explore_on_the_trio_executor_imports_trio_and_proves_the_same() -> None:
    # on Trio tasks the state cannot be read: the search is the stateless one
    status, imported, out = mmurace("explore", "race_remap", "--design", "seq_retry", "--executor", "trio")
    direct = mmurace("explore", "race_remap", "--design", "seq_retry", "--stateless")[2]
    assert (status, imported, out) == (0, ["trio"], direct)


def test_the_hypothesis_strategy_imports_hypothesis_and_finds_the_race() -> None:
    status, imported, out = mmurace(
        "stress", "race_remap", "--design", "no_retry", "--strategy", "hypothesis", "--schedules", "100"
    )
    assert status == 1 and "hypothesis" in imported  # which imports trio itself, if it is installed
    assert "mmurace replay race_remap --design no_retry --schedule v1:9:0=1,3=1@99959b\n" in out
