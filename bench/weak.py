"""Weak memory against SC: what ``--memory weak`` costs on the same scenario.

For each design, an exhaustive search (``explore``) in SC and in weak memory:
the runs it takes to exhaust the bound (complete + pruned) and the time, then
the weak/SC ratios; and random walks: schedules per second in each mode. Both
modes are measured in the same run, one after the other, each time the median
of ``--repeat`` measurements.

    python bench/weak.py            # about two minutes on 2 cores
    python bench/weak.py --quick    # a few seconds: a smoke test, figures too small to quote
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

from actors import Executor
from mmu import Memory
from mmurace.api import Config, configure
from mmurace.explore import explore_direct
from mmurace.strategies import RandomWalk

#: (design, preemption bound) proved in both modes; None: unbounded
FULL = (("seq_retry", None), ("unsafe_precheck", None), ("unsafe_precheck_no_wmb", 2), ("power7_hpt", 3))
QUICK = (("seq_retry", 1), ("unsafe_precheck", 1), ("power7_hpt", 1))
SCENARIO = "race_remap"


def _median_seconds(job: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _config(design: str, memory: Memory) -> Config:
    return configure(SCENARIO, design, executor=Executor.DIRECT, memory=memory)


def prove(design: str, bound: int | None, repeat: int) -> None:
    """One row: the exhaustive search in both modes, and the ratios."""
    cells = []
    for memory in Memory:
        config = _config(design, memory)
        search = functools.partial(explore_direct, config, preemptions=bound, limit=1_000_000)
        e = search()
        seconds = _median_seconds(search, repeat)
        cells.append((e.executions + e.pruned, seconds, e.verdict.value))
    (sc_runs, sc_s, sc_v), (weak_runs, weak_s, weak_v) = cells
    shown = "unbounded" if bound is None else f"bound {bound}"
    print(f"  {design:<24} {shown:<10} sc {sc_runs:>6} runs {sc_s:8.2f}s   weak {weak_runs:>6} runs"
          f" {weak_s:8.2f}s   x{weak_runs / sc_runs:.1f} runs x{weak_s / sc_s:.1f} time   {sc_v} / {weak_v}")


def walk(design: str, schedules: int, repeat: int) -> None:
    """One row: random walks per second in both modes."""
    rates = []
    for memory in Memory:
        config = _config(design, memory)

        def run(c: Config = config) -> None:
            for seed in range(schedules):
                c.run_direct(RandomWalk(seed))

        rates.append(schedules / _median_seconds(run, repeat))
    sc, weak = rates
    print(f"  {design:<24} random     sc {sc:8.0f} schedules/s   weak {weak:8.0f} schedules/s"
          f"   x{sc / weak:.1f} slower")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: small bounds, one repetition")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per figure (the median is shown)")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    print(f"{SCENARIO}: exhaustive search, SC against weak memory (weak/SC ratios)")
    for design, bound in QUICK if args.quick else FULL:
        prove(design, bound, repeat)
    print(f"{SCENARIO}: random walks")
    for design, _ in QUICK if args.quick else FULL:
        walk(design, 20 if args.quick else 300, repeat)


if __name__ == "__main__":
    main()
