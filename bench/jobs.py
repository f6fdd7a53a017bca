"""Schedules per second of ``stress --jobs 2`` over ``--jobs 1``, and what the pool costs.

Run ``python bench/jobs.py`` (``--quick`` for a smoke-test size, ``--help``
for sizes). Both sides run the same seeds of ``race_remap`` with the random
walk and ``--keep-going`` (so that every seed runs, whatever it finds),
through ``mmurace.stress.stress`` as the CLI calls it, the pool's start
included (but not its server's, started once per process: about 0.4 s).
They alternate, round after round, and the ratio is the median of the
per-round ratios (with its q1-q3 range: a wide one means the machine was
busy, so run again). The target on an idle 2-core machine is 1.8x.

The pool's own cost is measured apart: the same seeds on a pool of one
worker against the same seeds in this process (``--jobs 1``), so that what
is left is batching, pickling and the round trips: it should stay under 5%.
The load average is printed before and after: another process on a core
takes it from the second worker.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import trio

from actors import Executor
from mmurace.api import Config
from mmurace.campaign import Batch, Work, _spread, cut, merge
from mmurace.stress import Kind, stress
from mmurace.workers import pool
from scenarios import CATALOG

DEFAULT_SCHEDULES = 12000
DEFAULT_ROUNDS = 4


def config(design: str) -> Config:
    return Config(CATALOG["race_remap"], design, executor=Executor.DIRECT)


def by_stress(cfg: Config, schedules: int, jobs: int) -> float:
    """Schedules per second of one stress run on ``jobs`` processes."""
    started = time.perf_counter()
    outcome = trio.run(lambda: stress(cfg, Kind.RANDOM, schedules=schedules, keep_going=True, jobs=jobs))
    assert outcome.schedules == schedules
    return schedules / (time.perf_counter() - started)


def on_one_worker(cfg: Config, schedules: int) -> float:
    """Schedules per second of every seed sent to a pool of one worker (nothing run here)."""
    work = Work.of(cfg, Kind.RANDOM.value, 2, cfg.estimate_decisions(), True)
    started = time.perf_counter()
    with pool(1) as (executor, workers):
        nothing_here = Batch(0, None, ())
        merged, run = _spread(executor, workers, work, nothing_here, cut(range(schedules), 1), lambda n: None)
    assert merge([merged]).tried == run == schedules
    return schedules / (time.perf_counter() - started)


def in_rounds(jobs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            rates[name].append(job())
    return rates


def ratio(over: list[float], under: list[float]) -> str:
    per_round = sorted(a / b for a, b in zip(over, under, strict=True))
    q = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else per_round * 3
    return f"{statistics.median(per_round):.2f}x (q1-q3 {q[0]:.2f}-{q[2]:.2f})"


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
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    on_one_worker(cfg, 200)  # warm-up: the pool's server process starts once per process
    rates = in_rounds({
        "--jobs 1": lambda: by_stress(cfg, schedules, 1),
        "--jobs 2": lambda: by_stress(cfg, schedules, 2),
        "pool of 1": lambda: on_one_worker(cfg, schedules),
    }, rounds)
    print(f"  load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, samples in rates.items():
        print(f"  {name:<10} {statistics.median(samples):8.0f} schedules/s (median), best {max(samples):.0f}")
    print(f"  --jobs 2 / --jobs 1:  {ratio(rates['--jobs 2'], rates['--jobs 1'])}   target >= 1.8x when idle")
    print(f"  pool of 1 / --jobs 1: {ratio(rates['pool of 1'], rates['--jobs 1'])}   the pool's cost:"
          " >= 0.95x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
