"""The findings corpus: what run, stress and explore save, and ``mmurace corpus replay``."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from actors import Executor
from mmurace import RandomWalk, corpus
from mmurace.api import configure
from mmurace.cli import main
from mmurace.strategies import Sparse

MMURACE = str(Path(sys.executable).parent / "mmurace")

#: a design file that can be "fixed" by editing one line
MINE = """\
from actors import DESIGNS

MINE = DESIGNS[{base!r}].replace(name="mine", summary="a design under repair")
"""

#: a scenario file whose build() raises for one value of its parameter
TOUCHY = """\
from scenarios import CATALOG, Scenario


def build(design, *, n=1):
    if n > 1:
        raise RuntimeError("a bug in build")
    return CATALOG["race_remap"].build(design)


SCENARIO = Scenario("touchy", "race_remap, with a bug", "", build, ("no_retry",))
"""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def replay_in_a_new_process(corpus: Path) -> tuple[int, str]:
    """``mmurace corpus replay`` as after an edit: a new process loads the edited files."""
    proc = subprocess.run([MMURACE, "corpus", "replay", str(corpus)], capture_output=True, text=True, check=False)
    assert proc.stderr == ""
    return proc.returncode, proc.stdout


def _files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def test_a_finding_is_saved_once_shrunk_with_what_replays_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMURACE_SAVE")  # as a user runs it: the default directory
    monkeypatch.chdir(tmp_path)
    status, out, _ = cli(capsys, "run", "race_remap", "--design", "no_retry", "--seed", "42")
    (path,) = _files(Path(".mmurace/findings"))  # the default directory, under the working directory
    assert status == 1 and out.endswith(f"saved: {Path('.mmurace/findings') / path.name}\n")
    assert path.name.startswith("race_remap-no_retry-stale_spte-")
    saved = json.loads(path.read_text())
    _, shrunk, _ = cli(capsys, "shrink", "race_remap", "--design", "no_retry", "--schedule", saved["found_as"], "--json")
    assert {k: v for k, v in saved.items() if k != "run"} == {
        "format": "mmurace-finding/1", "mmurace": importlib.metadata.version("mmurace"),
        "scenario": "race_remap", "design": "no_retry", "params": {}, "oracles": [],
        "max_steps": 2000, "max_retries": 20, "oracle": "stale_spte",
        "schedule": json.loads(shrunk)["shrunk"]["schedule"], "shrunk": True, "found_as": "v1:10:2=1,8=1@99959b",
    }
    assert saved["run"] == json.loads(shrunk)["shrunk"], "the trace of the shrunk run"
    cli(capsys, "run", "race_remap", "--design", "no_retry", "--seed", "42")
    assert _files(Path(".mmurace/findings")) == [path], "the same finding saved twice: one file"


def test_a_file_is_named_for_the_finding_not_for_how_it_was_found(tmp_path: Path) -> None:
    config = configure("race_remap", "no_retry", executor=Executor.DIRECT)
    found = config.run_direct(RandomWalk(42))
    other = config.run_direct(Sparse.from_schedule(found.schedule))  # the same run, found another way
    first = corpus.save(tmp_path, config, found, found)
    again = corpus.save(tmp_path, config, other, config.run_direct(RandomWalk(7)))
    assert first == again and _files(tmp_path) == [first]
    assert corpus.save(tmp_path, attrs.evolve(config, oracles=("stale_spte",)), found) != first


def test_save_dir_and_no_save(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, _ = cli(capsys, "run", "race_remap", "--seeds", "50", "--save", str(tmp_path / "mine"), "--json")
    assert status == 1 and json.loads(out), "JSON on stdout stays JSON"
    names = [p.name.rsplit("-", 1)[0] for p in _files(tmp_path / "mine")]
    assert names == ["race_remap-gup_in_lock-lock_order", "race_remap-no_retry-divergence",
                     "race_remap-power7_abba-lock_order", "race_remap-setup_time-divergence"]
    status, _, _ = cli(capsys, "run", "race_remap", "--design", "no_retry", "--no-save")
    assert status == 1 and not (tmp_path / "findings").exists()


def test_corpus_replay_is_a_regression_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    design = tmp_path / "mine.py"
    design.write_text(MINE.format(base="no_retry"))
    corpus = tmp_path / "corpus"
    assert cli(capsys, "run", "race_remap", "--design", str(design), "--save", str(corpus))[0] == 1
    (path,) = _files(corpus)
    assert json.loads(path.read_text())["design"] == str(design.resolve())
    status, out, _ = cli(capsys, "corpus", "replay", str(corpus))
    assert status == 1
    assert re.fullmatch(rf"still fails  {path.name}: divergence at step \d+  \(race_remap --design {design}\)\n"
                        r"1 file: 1 still failing, 0 fixed, 0 skipped\n", out)
    design.write_text(MINE.format(base="seq_retry"))  # the fix
    status, out = replay_in_a_new_process(corpus)
    assert status == 0
    assert out.startswith(f"fixed        {path.name}: no violation")
    assert out.endswith("1 file: 0 still failing, 1 fixed, 0 skipped\n")


def test_files_that_are_not_findings_are_reported_and_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    touchy = tmp_path / "touchy.py"
    touchy.write_text(TOUCHY)
    cli(capsys, "run", "race_remap", "--design", "no_retry", "--save", str(corpus))
    cli(capsys, "run", str(touchy), "--design", "no_retry", "-p", "n=1", "--save", str(corpus))
    good, touchy_finding = _files(corpus)
    finding = json.loads(good.read_text())
    bad = {
        "a-truncated.json": good.read_text()[:100],
        "b-foreign.json": json.dumps({"cells": []}),
        "c-notes.txt": "not a finding\n",
        "d-gone.json": json.dumps({**finding, "scenario": "no_such_scenario"}),
        "e-params.json": json.dumps({**finding, "params": {"remaps": "three"}}),
        "f-schedule.json": json.dumps({**finding, "schedule": "v1:x"}),
        "g-bytes.json": "\udcff",
    }
    for name, text in bad.items():
        (corpus / name).write_bytes(text.encode(errors="surrogateescape"))
    touchy_finding.write_text(touchy_finding.read_text().replace('"n": 1', '"n": 2'))
    bad[touchy_finding.name] = ""
    (corpus / "h-directory").mkdir()
    status, out, err = cli(capsys, "corpus", "replay", str(corpus))
    assert (status, err) == (1, "")
    lines = out.splitlines()
    assert lines[-1] == "9 files: 1 still failing, 0 fixed, 8 skipped"
    skipped = {line.split()[1].rstrip(":"): line for line in lines if line.startswith("skipped")}
    assert sorted(skipped) == sorted(bad)
    assert skipped["a-truncated.json"].startswith("skipped      a-truncated.json: not JSON (")
    assert skipped["b-foreign.json"].endswith('not a finding file (no "format": "mmurace-finding/1")')
    assert "unknown scenario 'no_such_scenario'" in skipped["d-gone.json"]
    assert skipped["e-params.json"].endswith("'params' must map names to integers (got {'remaps': 'three'})")
    assert "malformed schedule 'v1:x'" in skipped["f-schedule.json"]
    assert skipped[touchy_finding.name].endswith(": error: RuntimeError: a bug in build")
    assert f"still fails  {good.name}: divergence at step " in out


def test_a_file_that_no_longer_loads_skips_its_findings_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    design = tmp_path / "mine.py"
    design.write_text(MINE.format(base="no_retry"))
    corpus = tmp_path / "corpus"
    cli(capsys, "run", "race_remap", "--design", str(design), "--save", str(corpus))
    cli(capsys, "run", "race_remap", "--design", "no_retry", "--save", str(corpus))
    design.write_text(MINE.format(base="no_retry") + "raise RuntimeError('a bug on import')\n")
    status, out = replay_in_a_new_process(corpus)
    assert status == 1
    assert "does not load: RuntimeError: a bug on import" in out
    assert out.endswith("2 files: 1 still failing, 0 fixed, 1 skipped\n")


def test_corpus_replay_of_a_missing_directory_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli(capsys, "corpus", "replay", "nowhere") == (2, "", "mmurace: error: no findings directory 'nowhere'\n")
    default = tmp_path / "findings"  # MMURACE_SAVE, as the commands that save use it
    assert cli(capsys, "corpus", "replay")[2] == f"mmurace: error: no findings directory '{default}'\n"
