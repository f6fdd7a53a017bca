"""Fingerprints per second: the stateful search's state digest, against the walk it replaced.

For each cell, the stateful exhaustive search (``explore_direct``) runs as
``mmurace explore`` does, and at every decision where it asks for the state,
the current fingerprint (``DirectExecution.fingerprint``) and the baseline
(``fingerprint_baseline.py`` beside this file: the walk as it was before it
was made cheaper) both fingerprint that same state, in alternating order,
``--repeat`` times each. So both are timed on exactly the same states, in
the same process, interleaved at the scale of a hundred microseconds: the
machine's drift hits both alike. Times are the thread's CPU time
(``time.thread_time``, around the ``--repeat`` calls of one walk on one
state), so that other processes on a shared machine do not count. The search
goes on with the current fingerprint's answer.

Printed per cell: the fingerprints taken, the distinct states each walk
told apart, fingerprints per CPU second for each (calls over the total
time), and the ratio baseline/new time as the median of the per-state
ratios (q1-q3): 2.00 is a fingerprint taking half the time. The
last column checks that the two digests partition the states alike: "same
states" when a state is new to one exactly when it is new to the other (a
new digest merging two old ones would be unsound, splitting one would prune
less).

    python bench/fingerprint.py            # about a minute on 2 cores
    python bench/fingerprint.py --quick    # a few seconds: a smoke test, figures too small to quote
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import fingerprint_baseline

from actors import Executor
from actors.runtime.direct import DirectExecution
from mmu import Memory
from mmurace.api import configure
from mmurace.explore import explore_direct

#: (scenario, design, parameters, memory, runs in a full bench: None for the whole search)
CELLS: tuple[tuple[str, str, tuple[str, ...], Memory, int | None], ...] = (
    ("race_remap", "seq_retry", ("remaps=3",), Memory.SC, None),
    ("race_remap", "seq_retry", ("remaps=4",), Memory.SC, 4000),
    ("ksm_merge", "seq_retry", (), Memory.SC, 3000),
    ("race_remap", "power7_hpt", (), Memory.SC, None),
    ("memslot_delete", "memslot_retry", (), Memory.SC, None),
    ("race_remap", "power7_hpt", (), Memory.WEAK, 3000),
)
QUICK_RUNS = 25


class Sampler:
    """Stands in for ``DirectExecution.fingerprint``: times both walks on each state."""

    def __init__(self, new: Callable[[Any], tuple[bytes, set[str]]], repeat: int) -> None:
        self.new = new
        self.repeat = repeat
        self.new_seconds: list[float] = []
        self.old_seconds: list[float] = []
        self.pairs: list[tuple[bytes, bytes]] = []
        self.calls = 0

    def __call__(self, execution: Any) -> tuple[bytes, set[str]]:
        clock, repeat = time.thread_time, range(self.repeat)
        new_fp, old_fp = self.new, fingerprint_baseline.fingerprint
        times = {}
        first = new_fp if self.calls % 2 == 0 else old_fp
        for walk in (first, old_fp if first is new_fp else new_fp):
            start = clock()
            for _ in repeat:
                answer = walk(execution)
            times[walk] = (clock() - start) / self.repeat
            if walk is new_fp:
                new = answer
            else:
                old = answer
        self.calls += 1
        self.new_seconds.append(times[new_fp])
        self.old_seconds.append(times[old_fp])
        self.pairs.append((new[0], old[0]))
        return new


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4)
    return median, q1, q3


def cell(scenario: str, design: str, params: tuple[str, ...], memory: Memory, runs: int, repeat: int) -> None:
    """One row: the search up to ``runs`` runs, both walks timed on every state it fingerprints."""
    config = configure(scenario, design, params=params, executor=Executor.DIRECT, memory=memory)
    sampler = Sampler(DirectExecution.fingerprint, repeat)
    DirectExecution.fingerprint = lambda self: sampler(self)  # type: ignore[method-assign]
    gc.collect()
    try:
        e = explore_direct(config, preemptions=None, limit=runs)
    finally:
        DirectExecution.fingerprint = sampler.new  # type: ignore[method-assign]
    pairs = sampler.pairs
    new_states, old_states = len({n for n, _ in pairs}), len({o for _, o in pairs})
    same = new_states == old_states == len(set(pairs))
    median, q1, q3 = quartiles([o / n for n, o in zip(sampler.new_seconds, sampler.old_seconds, strict=True)])
    name = " ".join((scenario, "--design", design, *(f"-p {p}" for p in params),
                     *(("--memory", memory.value) if memory is not Memory.SC else ())))
    print(f"  {name:<48} {sampler.calls:>7} {new_states:>7} {sampler.calls / sum(sampler.old_seconds):>9.0f}"
          f" {sampler.calls / sum(sampler.new_seconds):>9.0f}   {median:.2f} ({q1:.2f}-{q3:.2f})"
          f"   {e.executions + e.pruned} runs {e.verdict.value}   "
          f"{'same states' if same else f'DIFFERENT states: {new_states} new, {old_states} baseline'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke test: {QUICK_RUNS} runs a cell, one repetition")
    parser.add_argument("--repeat", type=int, default=3, help="times each walk fingerprints each state")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs of the search per cell (default: as listed in CELLS)")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    print(f"fingerprint: the current walk against fingerprint_baseline.py on the same states, {repeat} each, "
          f"alternating (Python {sys.version.split()[0]})")
    print(f"  {'cell':<48} {'calls':>7} {'states':>7} {'base fp/s':>9} {'new fp/s':>9}"
          "   new/base (median, q1-q3)")
    for scenario, design, params, memory, runs in CELLS:
        limit = args.runs or (QUICK_RUNS if args.quick else runs or 1_000_000)
        cell(scenario, design, params, memory, limit, repeat)


if __name__ == "__main__":
    main()
