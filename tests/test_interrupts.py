"""Ctrl-C and SIGTERM sent to a real ``mmurace`` process: what it prints, how it exits,
and that none of its worker processes outlives it.

Each test starts the command in a session of its own, waits until its progress
bar (drawn on stderr, which TTY_COMPATIBLE/TTY_INTERACTIVE make rich treat as a
terminal) shows that work has started, then signals it: Ctrl-C as a terminal
sends it, to the whole process group; SIGTERM as a supervisor sends it, to the
parent only. Children are found and checked with psutil. Every wait is bounded.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import psutil
import pytest

from actors import DESIGNS, Executor
from mmurace import Config, api
from mmurace.explore import Verdict, explore
from mmurace.interrupt import Interrupted, Stop, stoppable
from mmurace.matrix import Outcome, matrix
from mmurace.shrink import shrink
from mmurace.stress import Kind, stress
from scenarios import CATALOG

MMURACE = str(Path(sys.executable).parent / "mmurace")
#: the longest any wait here may take before the test fails
PATIENCE = 60.0


def _start(*argv: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "200"}
    return subprocess.Popen([MMURACE, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=env)


def _progress(proc: subprocess.Popen[bytes], at_least: int, children: int = 0) -> None:
    """Wait until the progress bar shows ``at_least`` done and ``children`` workers run."""
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 0.2)[0]:
            seen += os.read(proc.stderr.fileno(), 1 << 16)
        done = max((int(n) for n in re.findall(rb"(\d+)/\d+", seen)), default=0)
        if done >= at_least and len(psutil.Process(proc.pid).children()) >= children:
            return
        assert proc.poll() is None, f"ended before the signal: {proc.returncode}"
    pytest.fail(f"no progress to {at_least} within {PATIENCE} s")


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr, without the styles rich adds for a terminal."""
    out, err = proc.communicate(timeout=PATIENCE)
    return proc.returncode, *(re.sub(r"\x1b\[[0-9;]*m", "", b.decode()) for b in (out, err))


def _alive(pids: list[int]) -> list[int]:
    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return [pid for pid in pids if running(pid)]


def test_ctrl_c_in_a_hunt_says_how_far_it_got() -> None:
    proc = _start("run", "race_remap", "--design", "seq_retry", "--seeds", "1000000")
    _progress(proc, at_least=20)
    os.killpg(proc.pid, signal.SIGINT)
    status, out, err = _finish(proc)
    assert status == 130
    found = re.fullmatch(r"race_remap --design seq_retry: interrupted after (\d+) schedules \(seeds 0-(\d+)\),"
                         r" no violation so far\n", out)
    assert found and int(found[1]) >= 20 and int(found[2]) == int(found[1]) - 1
    assert "Traceback" not in err and "ExceptionGroup" not in err


def test_ctrl_c_in_stress_keep_going_keeps_the_findings() -> None:
    proc = _start("stress", "race_remap", "--design", "setup_time", "--strategy", "random", "--keep-going",
                  "--schedules", "100000000")
    _progress(proc, at_least=100)  # setup_time fails on seed 1: findings are in by then
    os.killpg(proc.pid, signal.SIGINT)
    status, out, err = _finish(proc)
    assert status == 130
    ran = re.search(r"\ninterrupted after (\d+) schedules: (\d+) distinct findings? so far:\n", out)
    assert ran and int(ran[1]) >= 100 and int(ran[2]) >= 1
    assert "found by random --seed 1 as " in out and "not shrunk (interrupted)" in out
    assert f"{ran[1]} schedules in " in out
    assert "Traceback" not in err
    saved = [json.loads(p.read_text()) for p in Path(os.environ["MMURACE_SAVE"]).iterdir()]
    assert len(saved) == int(ran[2]) and not any(f["shrunk"] for f in saved)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_matrix_prints_its_cells_and_leaves_no_worker(how: str) -> None:
    proc = _start("matrix", "--jobs", "2", "--budget", "3000")
    _progress(proc, at_least=1, children=2)
    workers = [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # workers get it too, as from a terminal
    else:
        os.kill(proc.pid, signal.SIGTERM)
    status, out, err = _finish(proc)
    assert status == (130 if how == "ctrl-c" else 143)
    cells = len(CATALOG) * len(DESIGNS)
    judged = re.search(rf"\ninterrupted: (\d+) of {cells} cells judged\n$", out)
    assert judged and int(judged[1]) >= 1
    assert out.startswith("design ") and "race_remap" in out.splitlines()[0]
    assert "Traceback" not in err
    assert _alive(workers) == []


def test_a_second_signal_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)  # not necessarily Python's default: earlier tests may set one
    with stoppable() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop == Stop(signal.SIGTERM)
        with pytest.raises(Interrupted) as second:
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs as soon as kill returns
    assert second.value.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before, "handlers restored"


# ---- the loops stop between two runs and keep what they have ----


def _after(n: int) -> Callable[[], bool]:
    """A ``stop`` that asks after it was consulted ``n`` times."""
    asked = itertools.count(1)
    return lambda: next(asked) > n


RACE = Config(CATALOG["race_remap"], "setup_time", executor=Executor.DIRECT)


async def test_loops_return_what_they_have_when_asked_to_stop() -> None:
    hunt = await api.hunt(attrs.evolve(RACE, design="seq_retry"), range(1000), stop=_after(5))
    assert (hunt.interrupted, hunt.tried, hunt.result) == (True, 5, None)
    found = await stress(RACE, Kind.RANDOM, schedules=1000, keep_going=True, stop=_after(30))
    assert (found.interrupted, found.schedules) == (True, 30) and found.found
    drawn = await stress(RACE, Kind.HYPOTHESIS, schedules=1000, keep_going=True, stop=_after(30))
    assert (drawn.interrupted, drawn.schedules) == (True, 30) and drawn.found
    search = await explore(attrs.evolve(RACE, design="seq_retry"), preemptions=None, stop=_after(4))
    assert (search.verdict, search.executions + search.pruned) == (Verdict.INTERRUPTED, 4)
    assert shrink(RACE, found.groups[0].first.result, stop=_after(0)).runs == 0


def test_an_interrupted_matrix_keeps_only_whole_cells() -> None:
    """Asked before no_retry's verdict is kept: that cell is dropped (its searches may have been
    cut short), and seq_retry is not started."""
    cells = matrix(["race_remap"], ["setup_time", "no_retry", "seq_retry"], budget=50, stop=_after(3))
    assert [(c.design, c.outcome) for c in cells] == [("setup_time", Outcome.BROKEN)]
