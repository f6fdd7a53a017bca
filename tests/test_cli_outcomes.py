"""How every command ends: exit status, one-line errors, help and version, and what --json carries."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest

import mmurace.cli_search
from actors import Schedule
from mmurace import api
from mmurace.cli import main
from mmurace.exit_codes import MEANINGS, ExitCode
from mmurace.matrix import Cell, Outcome

ROOT = Path(__file__).resolve().parent.parent


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# ---- help, version ----


def test_bare_mmurace_prints_the_user_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys)
    assert (status, err) == (0, "")
    assert out.startswith("Usage: mmurace [OPTIONS] COMMAND [ARGS]...")
    assert "thin click layer" not in out, "not the developer's docstring"
    commands = out[out.index("Commands:"):out.index("Exit status:")]
    for name in ("run", "replay", "stress", "explore", "shrink", "matrix", "corpus", "list"):
        assert f"\n  {name} " in commands
    assert "mmurace run race_remap --design no_retry" in out
    for code, meaning in MEANINGS.items():
        assert f"{int(code):<4} {meaning}" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert cli(capsys, "--help")[1] == out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "--version") == (0, f"mmurace {importlib.metadata.version('mmurace')}\n", "")


def test_readme_documents_every_exit_status() -> None:
    readme = (ROOT / "README.md").read_text()
    for code, meaning in MEANINGS.items():
        assert f"| {int(code)} | {meaning} |" in readme


# ---- exit status ----


def test_explore_stopped_at_its_limit_is_inconclusive(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "explore", "ksm_merge", "--design", "seq_retry", "--limit", "10")
    assert status == ExitCode.INCONCLUSIVE == 3
    assert "stopped at the execution limit" in out and out.endswith("no violation so far\n")
    status, out, _ = cli(capsys, "explore", "ksm_merge", "--design", "seq_retry", "--limit", "10", "--json")
    assert (status, json.loads(out)["verdict"]) == (3, "limit")


def test_a_matrix_cell_that_only_survived_is_inconclusive(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def survived(scenarios: list[str], designs: list[str], **kwargs: object) -> list[Cell]:
        return [Cell(s, d, Outcome.SURVIVED, schedules=600) for s in scenarios for d in designs]

    monkeypatch.setattr(mmurace.cli_search, "matrix", survived)
    status, out, _ = cli(capsys, "matrix", "--scenario", "race_remap", "--design", "seq_retry")
    assert (status, out.split()[-2:]) == (3, ["survived", "600"])


def test_out_of_frames_in_build_is_one_line_internal_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "dirty_log", "--design", "wp_ignore", "-p", "pages=9"]
    status, out, err = cli(capsys, *argv)
    assert (status, out) == (ExitCode.INTERNAL, "")
    assert err == (
        "mmurace: internal error: MemoryError: out of page frames: give the scenario more frames"
        " (re-run as 'mmurace --debug run dirty_log --design wp_ignore -p pages=9' for the traceback)\n"
    )
    status, _, err = cli(capsys, "--debug", *argv)
    assert status == 70
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("mmurace: internal error: MemoryError: out of page frames: give the scenario more frames\n")


def test_a_scenario_whose_build_raises_is_an_internal_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A build() that fails with its defaults is refused when the command starts (exit 2);
    one that raises something else than ValueError later, here for a parameter, is a bug."""
    path = tmp_path / "broken_build.py"
    path.write_text(
        "from scenarios import CATALOG, Scenario\n\n"
        "def build(design, *, n=1):\n"
        "    if n > 1:\n"
        "        raise RuntimeError('this scenario has a bug')\n"
        "    return CATALOG['race_remap'].build(design)\n\n"
        "SCENARIO = Scenario('broken_build', 'raises', 'raises', build, ('no_retry',))\n"
    )
    status, _, err = cli(capsys, "run", str(path), "--design", "no_retry", "-p", "n=2")
    assert status == 70
    assert err.startswith("mmurace: internal error: RuntimeError: this scenario has a bug (re-run as")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("raised", "status", "err"),
    [
        (ValueError("a bug"), 70, "mmurace: internal error: ValueError: a bug (re-run as"),
        (ExceptionGroup("trio", [ValueError("a bug")]), 70, "mmurace: internal error: ValueError: a bug (re-run as"),
        (KeyboardInterrupt(), 130, "mmurace: interrupted\n"),
        (BaseExceptionGroup("trio", [KeyboardInterrupt(), KeyboardInterrupt()]), 130, "mmurace: interrupted\n"),
    ],
)
def test_what_escapes_a_command_becomes_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    raised: BaseException, status: int, err: str,
) -> None:
    def hunt(*args: object) -> None:
        raise raised

    monkeypatch.setattr(api, "hunt", hunt)
    got, out, got_err = cli(capsys, "run", "race_remap", "--design", "no_retry")
    assert (got, out) == (status, "")
    got_err = got_err.lstrip("\n")  # click ends the line of a ^C before it reports an interrupt
    assert got_err.startswith(err) and got_err.count("\n") == 1 and "Traceback" not in got_err


# ---- messages ----


def test_a_design_that_does_not_apply_is_not_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "run", "race_remap", "--design", "pin") == (
        2, "", "mmurace: error: design 'pin' does not apply to race_remap:"
        " it judges setup_time, no_retry, seq_retry, gup_in_lock, power7_hpt, always_write, power7_abba\n",
    )


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "list", "--json")
    listing = json.loads(out)
    assert status == 0
    assert listing["scenarios"]["race_remap"]["designs"] == [
        "setup_time", "no_retry", "seq_retry", "gup_in_lock", "power7_hpt", "always_write", "power7_abba",
    ]
    assert listing["scenarios"]["race_remap"]["params"]["remaps"] == 1
    assert "seq_retry" in listing["designs"] and "stale_spte" in listing["oracles"]
    assert "deadlock" in listing["runtime_findings"]


def test_stress_says_after_how_many_schedules_it_found(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "stress", "race_remap", "--design", "no_retry", "--strategy", "random")
    found = re.search(r"\nfound by random --seed (\d+) as v1:\S+ \(\d+ preemptions?, \d+ decisions\) after (\d+) schedules\n", out)
    assert status == 1 and found
    assert int(found[2]) == int(found[1]) + 1, "seeds start at 0: the first finding came after seed + 1"


# ---- JSON ----


def _preemptions_match(run: dict) -> bool:
    return run["preemptions"] == Schedule.decode(run["schedule"].partition("@")[0]).preemptions


def test_every_json_run_carries_its_preemptions(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(capsys, "run", "race_remap", "--design", "no_retry", "--seed", "42", "--json")
    run = json.loads(out)[0]["run"]
    assert run["preemptions"] == 2 and _preemptions_match(run)
    _, out, _ = cli(capsys, "shrink", "race_remap", "--design", "no_retry", "--schedule", run["schedule"], "--json")
    report = json.loads(out)
    assert report["original"]["preemptions"] == 2 and _preemptions_match(report["shrunk"])
    _, out, _ = cli(capsys, "explore", "race_remap", "--design", "no_retry", "--preemptions", "1", "--json")
    assert json.loads(out)["run"]["preemptions"] == 1
    _, out, _ = cli(capsys, "stress", "race_remap", "--design", "no_retry", "--strategy", "random", "--json")
    (finding,) = json.loads(out)["findings"]
    assert _preemptions_match(finding["run"]) and _preemptions_match(finding["shrunk"])
    assert finding["shrunk"]["preemptions"] <= finding["run"]["preemptions"]


def test_story_json_gives_the_shrunk_run_beside_the_one_found(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "run", "race_remap", "--seeds", "50", "--json")
    hunts = {h["design"]: h for h in json.loads(out)}
    assert status == 1
    found, shrunk = hunts["setup_time"]["run"], hunts["setup_time"]["shrunk"]
    assert found["schedule"] != shrunk["schedule"] and shrunk["preemptions"] < found["preemptions"]
    assert shrunk["finding"]["oracle"] == found["finding"]["oracle"] == "divergence"
    assert (hunts["seq_retry"]["run"], hunts["seq_retry"]["shrunk"]) == (None, None)


def test_one_clean_seed_in_json_is_its_run(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "run", "race_remap", "--design", "seq_retry", "--seed", "5", "--json")
    (hunt,) = json.loads(out)
    assert status == 0
    assert hunt["run"]["status"] == "passed" and hunt["run"]["finding"] is None
    assert hunt["run"]["schedule"].startswith("v1:") and "shrunk" not in hunt


def test_matrix_json_uses_null_and_gives_the_replay(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "matrix", "--scenario", "race_remap", "--design", "no_retry",
                         "--design", "seq_retry", "--budget", "50", "--jobs", "1", "--json")
    broken, exhausted = json.loads(out)
    assert status == 1
    schedule = broken["schedule"]
    assert broken == {
        "scenario": "race_remap", "design": "no_retry", "outcome": "broken", "oracle": "divergence",
        "schedule": schedule, "preemptions": Schedule.decode(schedule.partition("@")[0]).preemptions,
        "replay": f"mmurace replay race_remap --design no_retry --schedule {schedule}",
        "schedules": broken["schedules"], "bound": None,
    }
    assert {k: exhausted[k] for k in ("outcome", "oracle", "schedule", "preemptions", "replay", "bound")} == {
        "outcome": "exhausted", "oracle": None, "schedule": None, "preemptions": None, "replay": None, "bound": None,
    }
