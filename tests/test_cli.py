"""The command line: output, exit status, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmurace.cli import main
from scenarios import CATALOG

ROOT = Path(__file__).resolve().parent.parent


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_story_covers_every_design_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(capsys, "run", "race_remap", "--seeds", "300")
    assert status == 1
    for design in ("setup_time", "no_retry", "seq_retry"):
        assert f"== {design}:" in out
    assert "survived 300 schedules" in out
    # setup_time pinned RAM at registration: the guest keeps the old page, nothing is freed
    assert out.count("VIOLATION stale_spte") == 0
    # no_retry's first race: the fault takes the page lockless (gup-fast) inside QEMU's
    # window and maps it after the window closed, behind no host pte
    assert out.count("VIOLATION divergence") == 2
    assert "found by seed 4 as v1:10:1=1,3=1,4=1,9=1@99959b, shrunk to 1 preemption:" \
        " mmurace replay race_remap --design no_retry --schedule v1:11:2=1@99959b" in out
    # gup_in_lock's first lock bug now comes after a whole remap: gup-fast took its first page;
    # POWER7's three designs (the thread's own architecture) add a race and two verdicts
    assert len(out.splitlines()) <= 96, "the story must fit one (tall) screen"


def test_design_hunt_prints_trace_verdict_and_replay(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "run", "race_remap", "--design", "no_retry")
    assert status == 1
    assert ">>" in out
    assert "VIOLATION divergence at step" in out
    assert "replay:   mmurace replay race_remap --design no_retry --schedule v1:" in out
    assert "found by seed" in out


def test_replay_prints_the_identical_trace(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(capsys, "run", "race_remap", "--design", "no_retry", "--no-save")
    command = next(line for line in out.splitlines() if line.startswith("replay:"))
    schedule = command.split("--schedule ")[1]
    status, replayed, err = cli(capsys, "replay", "race_remap", "--design", "no_retry", "--schedule", schedule)
    assert status == 1 and err == ""
    found_line = out.splitlines()[-1]
    assert found_line.startswith("found by seed")
    assert out == replayed + found_line + "\n"


def test_one_seed_that_passes_is_shown_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "run", "race_remap", "--design", "seq_retry", "--seed", "5")
    assert status == 0
    assert "no violation" in out
    assert "--schedule v1:" in out


def test_survivor_hunt_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "run", "race_remap", "--design", "seq_retry", "--seeds", "200")
    assert status == 0
    assert out == "race_remap --design seq_retry: survived 200 schedules (seeds 0-199), no violation\n"


def test_oracle_option_lets_the_run_reach_corruption(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "run", "race_remap", "--design", "no_retry", "--oracle", "corruption")
    assert status == 1
    assert "VIOLATION corruption at step" in out
    # the page it cached before the free, or (gup-fast inside the window) mapped after it
    assert "went through a stale " in out


def test_json_is_parseable_and_complete(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "run", "race_remap", "--design", "no_retry", "--json")
    assert status == 1
    (hunt,) = json.loads(out)
    run = hunt["run"]
    assert run["finding"]["oracle"] == "divergence"
    assert run["steps"][run["finding"]["step"]]["actor"] in run["actors"]
    assert run["schedule"].startswith("v1:")
    status, out, _ = cli(capsys, "replay", "race_remap", "--design", "no_retry", "--schedule", run["schedule"], "--json")
    assert json.loads(out) == run


def test_scenario_by_path(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(ROOT / "scenarios" / "race_remap.py")
    status, out, _ = cli(capsys, "run", path, "--design", "no_retry", "--seed", "26")
    assert status == 1
    assert out.startswith(f"{path} --design no_retry")  # the replay command names the file it ran
    assert f"replay:   mmurace replay {path} --design no_retry --schedule v1:10:2=1,5=1,8=1@99959b" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "race_remp"], "mmurace: error: unknown scenario 'race_remp': did you mean 'race_remap'?"),
        (["run", "race_remap", "--design", "seqretry"], "mmurace: error: unknown design 'seqretry': did you mean 'seq_retry'?"),
        (["run", "race_remap", "--oracle", "stale"], "mmurace: error: unknown oracle 'stale': did you mean 'stale_spte'?"),
        (["run", "nowhere.py"], "mmurace: error: file 'nowhere.py' does not exist"),
        (
            ["replay", "race_remap", "--design", "no_retry", "--schedule", "v1:x"],
            "mmurace: error: malformed schedule 'v1:x': expected 'v1:N' or 'v1:N:I=C,I=C...'",
        ),
        (
            ["replay", "race_remap", "--design", "no_retry", "--schedule", "v1:3"],
            "mmurace: error: schedule diverged: the run needs more than the schedule's 3 decisions"
            " (was it recorded for race_remap --design no_retry?)",
        ),
        (["run", "race_remap", "--seed", "x"], "mmurace: error: Invalid value for '--seed': 'x' is not a valid integer range."),
        (["replay", "race_remap", "--design", "no_retry"], "mmurace: error: Missing option '--schedule'."),
        (["frobnicate"], "mmurace: error: No such command 'frobnicate'."),
        (["run", "race_remap", "-p", "remaps"], "mmurace: error: malformed parameter 'remaps': expected NAME=INTEGER"),
        (
            ["run", "race_remap", "-p", "remap=2"],
            "mmurace: error: unknown parameter of race_remap 'remap': did you mean 'remaps'?",
        ),
        (
            ["run", "race_remap", "-p", "accesses=0"],
            "mmurace: error: bad parameter for race_remap: 'accesses' must be >= 1 (got 0)",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    status, out, err = cli(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err == message + "\n"


def test_scenario_file_that_does_not_load(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text("import no_such_module\n")
    status, _, err = cli(capsys, "run", str(bad))
    assert status == 2
    assert err == f"mmurace: error: file '{bad}' does not load: ModuleNotFoundError: No module named 'no_such_module'\n"
    empty = tmp_path / "empty.py"
    empty.write_text("")
    status, _, err = cli(capsys, "run", str(empty))
    assert (status, err) == (2, f"mmurace: error: {empty} defines no scenario (a module-level SCENARIO = Scenario(...))\n")


def test_list_names_everything(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "list")
    assert status == 0
    for name in ("race_remap", "setup_time", "no_retry", "seq_retry", "stale_spte", "corruption", "divergence",
                 "deadlock", "livelock", "lock_order", "sleep_in_atomic", "recursive_lock", "race_munmap",
                 "mmap_locked"):
        assert name in out


def test_scenario_file_runs_on_its_own() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scenarios" / "race_remap.py"), "--design", "no_retry", "--seed", "42"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "VIOLATION stale_spte" in proc.stdout


def test_console_script_help_and_usage_error() -> None:
    exe = Path(sys.executable).parent / "mmurace"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert "mmurace replay race_remap" in proc.stdout
    proc = subprocess.run([str(exe), "run", "race_remap", "--design", "nope"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_parameters_are_part_of_the_replay_command(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "run", "race_remap", "--design", "no_retry", "-p", "remaps=3", "--oracle", "corruption")
    assert status == 1
    command = next(line for line in out.splitlines() if line.startswith("replay:")).split()[3:]
    assert command[:5] == ["race_remap", "--design", "no_retry", "-p", "remaps=3"]
    status, replayed, _ = cli(capsys, "replay", *command)
    assert status == 1
    assert out.startswith(replayed)


def test_replay_is_byte_identical_across_processes_and_hash_seeds() -> None:
    exe = str(Path(sys.executable).parent / "mmurace")
    argv = [exe, "replay", "race_remap", "--design", "setup_time", "--schedule", "v1:11:2=1,4=1,5=1,6=1,7=1,10=1"]
    outputs = set()
    for hash_seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(argv, capture_output=True, check=False, env=env)
        assert proc.returncode == 1, proc.stderr
        outputs.add(proc.stdout)
    assert len(outputs) == 1


def test_stress_finds_shrinks_and_reports_speed(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "stress", "race_remap", "--design", "no_retry", "--strategy", "random")
    assert status == 1
    assert "found by random --seed 4 as v1:10:1=1,3=1,4=1,9=1@99959b (4 preemptions, 10 decisions)" in out
    assert "shrunk to v1:11:2=1@99959b (1 preemption, 11 decisions)" in out
    assert "1 distinct finding:" in out
    assert "schedules/s" in out
    status, out, _ = cli(capsys, "stress", "race_remap", "--design", "seq_retry", "--schedules", "100")
    assert status == 0
    assert out.startswith("race_remap --design seq_retry: no violation in 100 pct schedules")


def test_stress_json_carries_provenance(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "stress", "race_remap", "--design", "setup_time", "--keep-going",
                         "--schedules", "50", "--strategy", "random", "--json")
    assert status == 1
    report = json.loads(out)
    assert report["schedules"] == 50
    finding = report["findings"][0]
    assert finding["strategy"] == f"random --seed {finding['seed']}"
    assert finding["shrunk"]["finding"]["oracle"] == finding["location"]["oracle"]
    assert sum(f["count"] for f in report["findings"]) <= 50


def test_explore_proves_seq_retry_and_finds_no_retry(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "explore", "race_remap", "--design", "seq_retry")
    assert status == 0
    assert "exhausted:" in out and "(unbounded, partial-order reduction: sleep sets, persistent sets): no violation in any schedule" in out
    status, out, _ = cli(capsys, "explore", "race_remap", "--design", "no_retry", "--preemptions", "1")
    assert status == 1
    assert "replay:   mmurace replay race_remap --design no_retry --schedule v1:11:2=1@99959b" in out


def test_shrink_command(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "shrink", "race_remap", "--design", "no_retry", "--schedule", "v1:10:2=1,5=1,8=1")
    assert status == 1
    assert "shrunk from v1:10:2=1,5=1,8=1@99959b (3 preemptions, 10 decisions)" in out
    assert "        to v1:9:2=1,5=1@99959b (2 preemptions, 9 decisions)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["shrink", "race_remap", "--design", "seq_retry", "--schedule", "v1:7"],
         "mmurace: error: schedule v1:7 does not fail for race_remap --design seq_retry: nothing to shrink"),
        (["shrink", "race_remap", "--design", "no_retry", "--schedule", "10:2=1"],
         "mmurace: error: malformed schedule '10:2=1': expected 'v1:N' or 'v1:N:I=C,I=C...'"),
        (["stress", "race_remap", "--design", "no_retry", "--strategy", "dfs"],
         "mmurace: error: Invalid value for '--strategy': 'dfs' is not one of 'random', 'pct', 'hypothesis'."),
        (["explore", "race_remap", "--design", "no_retry", "--preemptions", "-1"],
         "mmurace: error: Invalid value for '--preemptions': -1 is not in the range 0<=x<=1000000."),
    ],
)
def test_search_commands_reject_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    status, out, err = cli(capsys, *argv)
    assert (status, out, err) == (2, "", message + "\n")


def test_threads_layout_draws_callbacks_under_their_caller(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "replay", "race_remap", "--design", "no_retry", "--schedule", "v1:9:2=1,5=1", "--threads")
    assert status == 1
    header = out.splitlines()[2]
    assert header.split() == ["#", "vcpu0", "qemu"]
    callback = next(line for line in out.splitlines() if "mmu_lock: invalidate_begin, unmap, flush" in line)
    qemu_column = header.index("qemu")
    assert callback.index("mmu_lock: invalidate_begin, unmap, flush") == qemu_column
    assert max(len(line) for line in out.splitlines()[:-3]) <= 90
    status, plain, _ = cli(capsys, "replay", "race_remap", "--design", "no_retry", "--schedule", "v1:9:2=1,5=1", "--json")
    steps = json.loads(plain)["steps"]
    # KVM's callbacks are steps of the host thread that calls them: no actor of their own
    assert {(s["actor"], s["thread"]) for s in steps} == {("vcpu0", "vcpu0"), ("qemu", "qemu")}


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_scenario_file_runs_on_its_own(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scenarios" / f"{name}.py"), "--seeds", "5"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith(f"{name}: ")
