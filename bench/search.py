"""Search benchmarks: the runtime against hand-driven coroutines, schedules to
the first finding per strategy (plain and with the race buried), and the
executions an exhaustive search needs with and without partial-order reduction.

    python bench/search.py            # a few minutes on 2 cores
    python bench/search.py --quick    # fewer seeds, for a smoke test

Every time figure is printed next to a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import trio

from actors import ActorContext, Executor, World
from mmurace import Config
from mmurace.explore import Verdict, explore
from mmurace.strategies import RandomWalk
from mmurace.stress import Kind, stress
from scenarios import CATALOG

RACE = CATALOG["race_remap"]


# ---- 1. scheduling points: the runtime against coroutines driven by hand ----


class _Yield:
    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield None


class _Bare:
    """The baseline: the same actor coroutines, a random runnable one resumed at each
    point, and nothing else: no trace, no oracles, no footprints, no schedule."""

    def __init__(self, world: World, seed: int) -> None:
        self.world, self.rng = world, random.Random(seed)
        self.guards: dict[int, Callable[[], bool] | None] = {}
        self.steps = 0

    async def point(self, actor: Any, label: str, guard: Any, waits_for: Any) -> None:
        self.guards[actor] = guard
        await _Yield()

    def relabel(self, label: str) -> None:
        pass

    def run(self) -> int:
        coros: dict[int, Coroutine[Any, Any, None]] = {}
        for i, spec in enumerate(self.world.actors):
            coros[i] = spec.fn(ActorContext(spec.name, self.world.model, self, i))  # type: ignore[arg-type]
            self._send(i, coros)
        while True:
            ready = [i for i, g in self.guards.items() if g is None or g()]
            if not ready:
                break
            i = self.rng.choice(ready)
            del self.guards[i]
            self.steps += 1
            self._send(i, coros)
        for c in coros.values():
            c.close()
        return self.steps

    def _send(self, i: int, coros: dict[int, Coroutine[Any, Any, None]]) -> None:
        try:
            coros[i].send(None)
        except StopIteration:
            pass


def points(runs: int) -> None:
    print(f"1. scheduling points on race_remap/seq_retry, full model, {runs} runs a sample, 5 rounds")
    config = {e: Config(RACE, "seq_retry", executor=e) for e in Executor}

    def bare() -> tuple[float, int]:
        t, steps = time.perf_counter(), 0
        for s in range(runs):
            steps += _Bare(RACE.build("seq_retry"), s).run()
        return time.perf_counter() - t, steps

    def runtime(executor: Executor) -> tuple[float, int]:
        async def go() -> int:
            steps = 0
            for s in range(runs):
                steps += len((await config[executor].run(RandomWalk(s))).steps)
            return steps

        t = time.perf_counter()
        steps = trio.run(go)
        return time.perf_counter() - t, steps

    jobs = {"hand-driven send() baseline": bare, "direct executor": lambda: runtime(Executor.DIRECT),
            "trio executor": lambda: runtime(Executor.TRIO)}
    per_step: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(5):  # round-robin so that drift hits every job alike
        for name, job in jobs.items():
            seconds, steps = job()
            per_step[name].append(seconds / steps * 1e6)
    base = statistics.median(per_step["hand-driven send() baseline"])
    for name, samples in per_step.items():
        m = statistics.median(samples)
        print(f"   {name:<30} {m:7.2f} us/step  {1e6 / m:9.0f} steps/s  {m / base:5.2f}x baseline")


# ---- 2. schedules to the first finding ----


def _first(design: str, kind: Kind, seed: int, noise: int, budget: int) -> int | None:
    config = Config(RACE, design, params=(("noise", noise),) if noise else (), executor=Executor.DIRECT)
    first_seed = seed if kind is Kind.HYPOTHESIS else seed * budget  # disjoint seed ranges
    outcome = trio.run(functools.partial(stress, config, kind, schedules=budget, seed=first_seed))
    return outcome.first_at


def first_finding(seeds: int, budget: int) -> None:
    print(f"\n2. schedules to the first finding, {seeds} seeds each, budget {budget}"
          " (median / max; '>' = not found within the budget)")
    for noise in (0, 40):
        for design in ("no_retry", "setup_time"):
            cells = []
            for kind in Kind:
                found = [_first(design, kind, s, noise, budget) for s in range(seeds)]
                hits = sorted(f for f in found if f is not None)
                missed = len(found) - len(hits)
                med = statistics.median([f if f is not None else budget + 1 for f in found])
                worst = f">{budget}" if missed else str(max(hits))
                cells.append(f"{kind.value} {med:>6.0f} / {worst:>6}")
            print(f"   noise={noise:<3} {design:<11} " + "   ".join(cells))


# ---- 3. exhaustive search ----


def exhaustive(limit: int) -> None:
    print("\n3. exhaustive search on race_remap: complete executions (+ pruned), with and without sleep sets"
          f" ('>': stopped at {limit} runs)")
    for params in ((), (("remaps", 2),)):
        for design in RACE.designs:
            for bound in (1, 2, None):
                config = Config(RACE, design, params=params, executor=Executor.DIRECT)
                row = []
                for reduce in (True, False):
                    t = time.perf_counter()
                    e = trio.run(
                        functools.partial(explore, config, preemptions=bound, reduce=reduce, limit=limit)
                    )
                    more = ">" if e.verdict is Verdict.LIMIT else " "
                    row.append(f"{more}{e.executions:>6} (+{e.pruned:<5}) {time.perf_counter() - t:5.2f}s")
                    verdict = e.verdict.value
                label = f"{' '.join(f'{k}={v}' for k, v in params) or 'default':<9} {design:<11}"
                bound_s = "unbounded" if bound is None else f"bound {bound}"
                print(f"   {label} {bound_s:<10} POR {row[0]}   no POR {row[1]}   {verdict}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and seeds")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, trio {trio.__version__}")
    points(100 if args.quick else 400)
    first_finding(5 if args.quick else 30, 1000)
    exhaustive(5_000 if args.quick else 20_000)


if __name__ == "__main__":
    main(sys.argv[1:])
