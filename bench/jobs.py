"""Schedules per second of ``stress --jobs 2`` over ``--jobs 1``, and what the pool costs.

Run ``python bench/jobs.py`` (``--quick`` for a smoke-test size, ``--help``
for sizes). Both sides run the same seeds of ``race_remap`` with the random
walk and ``--keep-going`` (so that every seed runs, whatever it finds),
through ``mmurace.stress.stress`` as the CLI calls it, the pool's start
included.
They alternate, round after round, and a ratio is the median of the
per-round ratios (with its q1-q3 range: a wide one means the machine was
busy, so run again). The target on an idle 2-core machine is 1.8x.

Wall time only shows the target on an idle machine: with other processes
on the cores, the second worker gets what they leave. So the pool's own
cost is also measured in CPU time, which others' load barely changes: the
CPU seconds a schedule takes on a pool of 2 (its workers' and this
process's, read from /proc: Linux only) against in this process
(``--jobs 1``). What is left beyond 1.00 is batching, pickling and the round
trips; it should stay under 5% (``CPU in the pool``, >= 0.95x), and then
``--jobs 2`` on an idle 2-core machine is about twice that.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trio

from actors import Executor
from mmurace.api import Config
from mmurace.campaign import Batch, Work, _spread, cut, merge
from mmurace.stress import Kind, stress
from mmurace.workers import pool
from scenarios import CATALOG

DEFAULT_SCHEDULES = 12000
DEFAULT_ROUNDS = 4

Rates = tuple[float, float]  # schedules per wall second, per CPU second


def config(design: str) -> Config:
    return Config(CATALOG["race_remap"], design, executor=Executor.DIRECT)


def by_stress(cfg: Config, schedules: int, jobs: int) -> Rates:
    """Schedules per wall second and per CPU second of this process, one stress run on ``jobs``."""
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = trio.run(lambda: stress(cfg, Kind.RANDOM, schedules=schedules, keep_going=True, jobs=jobs))
    assert outcome.schedules == schedules
    return schedules / (time.perf_counter() - wall), schedules / (time.process_time() - cpu)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def on_a_pool(cfg: Config, schedules: int, workers: int = 2) -> Rates:
    """Schedules per wall second and per CPU second (workers' and ours) of every seed sent
    to a pool of ``workers`` (none run here)."""
    work = Work.of(cfg, Kind.RANDOM.value, 2, cfg.estimate_decisions(), True)
    wall, ours = time.perf_counter(), time.process_time()
    with pool(workers) as (executor, n):
        nothing_here = Batch(0, None, (), work.decisions, work.decisions)
        merged, run = _spread(executor, n, work, nothing_here, cut(range(schedules), n), lambda n: None,
                              lambda: False)
        pids = [process.pid for process in executor._pool._pool]  # type: ignore[attr-defined]
        theirs = sum(_cpu_seconds(pid) for pid in pids)  # fresh workers: all they ever ran
        seconds = time.perf_counter() - wall
    assert merge([merged]).tried == run == schedules
    return schedules / seconds, schedules / (theirs + time.process_time() - ours)


def in_rounds(jobs: dict[str, Callable[[], Rates]], rounds: int) -> dict[str, list[Rates]]:
    rates: dict[str, list[Rates]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            rates[name].append(job())
    return rates


def ratio(over: list[float], under: list[float]) -> str:
    per_round = sorted(a / b for a, b in zip(over, under, strict=True))
    q = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else per_round * 3
    return f"{statistics.median(per_round):.2f}x (q1-q3 {q[0]:.2f}-{q[2]:.2f})"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=DEFAULT_SCHEDULES, help="seeds per sample")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="samples of each job")
    parser.add_argument("--design", default="seq_retry",
                        help="race_remap design (seq_retry: no run stops early)")
    parser.add_argument("--quick", action="store_true", help="400 schedules, 1 round: a smoke test")
    args = parser.parse_args(argv)
    schedules, rounds = (400, 1) if args.quick else (args.schedules, args.rounds)
    cfg = config(args.design)
    print(f"jobs: race_remap --design {args.design}, random, {schedules} seeds a sample, {rounds} rounds"
          f" ({os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()})")
    print(f"  load average before: {load()}")
    on_a_pool(cfg, 200)  # warm-up
    rates = in_rounds({
        "--jobs 1": lambda: by_stress(cfg, schedules, 1),
        "--jobs 2": lambda: by_stress(cfg, schedules, 2),
        "pool of 2": lambda: on_a_pool(cfg, schedules),
    }, rounds)
    print(f"  load average after:  {load()}")
    wall = {name: [w for w, _ in samples] for name, samples in rates.items()}
    cpu = {name: [c for _, c in samples] for name, samples in rates.items()}
    for name in ("--jobs 1", "--jobs 2"):
        median, best = statistics.median(wall[name]), max(wall[name])
        print(f"  {name:<10} {median:8.0f} schedules/s (median), best {best:.0f}")
    print(f"  --jobs 2 / --jobs 1: {ratio(wall['--jobs 2'], wall['--jobs 1'])}   target >= 1.8x when idle")
    print(f"  CPU in the pool:     {ratio(cpu['pool of 2'], cpu['--jobs 1'])}   schedules per CPU second,"
          " pool of 2 / in this process: >= 0.95x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
