"""Campaigns on a Dask cluster find what one local process finds, for the same seeds.

The cluster is a ``distributed.LocalCluster`` of 2 worker processes on the
loopback address, started once for this module.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import Executor
from mmurace import Config
from mmurace.cli import main
from mmurace.matrix import matrix
from mmurace.stress import Kind, stress
from scenarios import CATALOG

distributed = pytest.importorskip(
    "distributed", reason="Dask's distributed is not installed (pip install 'mmurace[cluster]')"
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
    ) as local:
        yield local.scheduler_address


def config(design: str) -> Config:
    return Config(CATALOG["race_remap"], design, executor=Executor.DIRECT)


async def test_a_campaign_on_the_cluster_finds_what_one_process_finds(cluster: str) -> None:
    here = await stress(config("setup_time"), Kind.PCT, schedules=500, keep_going=True, jobs=1)
    there = await stress(config("setup_time"), Kind.PCT, schedules=500, keep_going=True, cluster=cluster)
    assert here.groups and here.groups == there.groups
    assert here.first_at == there.first_at


async def test_the_first_finding_on_the_cluster_is_the_lowest_failing_seed(cluster: str) -> None:
    here = await stress(config("no_retry"), Kind.PCT, schedules=600, seed=518, jobs=1)
    there = await stress(config("no_retry"), Kind.PCT, schedules=600, seed=518, cluster=cluster)
    assert here.groups == there.groups and here.first_at == there.first_at


def test_a_matrix_on_the_cluster_is_the_local_one(cluster: str) -> None:
    scenarios, designs = ["race_remap", "mprotect_ro"], ["no_retry", "seq_retry"]
    assert matrix(scenarios, designs, budget=40, cluster=cluster) == matrix(scenarios, designs, budget=40, jobs=1)


def test_the_commands_take_a_cluster(cluster: str, capsys: pytest.CaptureFixture[str]) -> None:
    # PCT, which finds no_retry past the first batch (random walks catch it one seed in three)
    argv = ["stress", "race_remap", "--design", "no_retry", "--strategy", "pct", "--seed", "518",
            "--schedules", "400", "--no-shrink"]
    assert main([*argv, "--jobs", "1"]) == 1
    here = capsys.readouterr().out
    assert main([*argv, "--cluster", cluster]) == 1
    there = capsys.readouterr().out

    def runs(out: str) -> list[str]:
        return [line for line in out.splitlines() if "schedules/s" not in line]

    assert "found by pct --depth 2 --seed 589 as " in here and runs(here) == runs(there)


def test_a_design_from_a_users_file_runs_on_the_cluster(
    cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a file workers never saw, loaded under a module name only this process knows
    mine = tmp_path / "my_design.py"
    shutil.copy(Path(__file__).parent.parent / "examples" / "in_progress_only.py", mine)
    argv = ["stress", "race_remap", "--design", str(mine), "--strategy", "random", "--seed", "7",
            "--schedules", "300", "--keep-going", "--no-shrink", "--save", str(tmp_path / "found")]
    assert main([*argv, "--jobs", "1"]) == 1
    here = capsys.readouterr().out
    assert main([*argv, "--cluster", cluster]) == 1
    there = capsys.readouterr().out

    def runs(out: str) -> list[str]:
        return [line for line in out.splitlines() if "schedules/s" not in line]

    assert "divergence" in here and runs(here) == runs(there)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("tcp://127.0.0.1:1", "cannot reach the Dask scheduler at 'tcp://127.0.0.1:1': "),
        ("nonsense", "malformed Dask scheduler address 'nonsense': "),
    ],
)
def test_an_unreachable_scheduler_is_one_line_and_exit_2_within_seconds(
    address: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    assert main(["stress", "race_remap", "--design", "seq_retry", "--cluster", address]) == 2
    assert time.monotonic() - started < 30, "the connection gives up after CONNECT_SECONDS"
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"mmurace: error: {why}") and err.count("\n") == 1
