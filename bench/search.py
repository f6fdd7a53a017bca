"""Search benchmarks: the runtime against hand-driven coroutines, schedules to
the first finding per strategy (plain and with the race buried), PCT on every
broken cell and on races that need two preemptions, the executions an
exhaustive search needs stateful and stateless, with and without partial-order
reduction, and unbounded stateful proofs.

    python bench/search.py            # a few minutes on 2 cores
    python bench/search.py --quick    # a few seconds: a smoke test, figures too small to quote
    python bench/search.py --only 5   # one section: here the unbounded stateful proofs

Every time figure is printed next to a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from unittest import mock

import attrs
import trio

from actors import DEFAULT_MAX_RETRIES, ActorContext, Executor, World
from mmurace import Config, explore as explore_module
from mmurace.explore import Verdict, _PathStrategy, explore, explore_direct
from mmurace.strategies import RandomWalk
from mmurace.stress import Kind, stress
from scenarios import CATALOG

RACE = CATALOG["race_remap"]


# ---- 1. scheduling points: the runtime against coroutines driven by hand ----


class _NoLockdep:
    """Lock validation left out of the baseline: it is the runtime's work."""

    def acquired(self, thread: str, lock: str, *, spins: bool, where: str, trylock: bool = False) -> None:
        return None

    def released(self, thread: str, lock: str) -> None:
        pass


@attrs.define(eq=False)
class _Parked:
    """The baseline's record of an actor: what ``ActorContext`` reads of it, and where
    it parks (its guard, in the baseline's table)."""

    index: int
    guards: dict[int, Callable[[], bool] | None]
    thread: str = ""

    def park(self, label: str, guard: Callable[[], bool] | None, waits_for: Any) -> None:
        self.guards[self.index] = guard


class _Bare:
    """The baseline: the same actor coroutines, a random runnable one resumed at each
    point, and nothing else: no trace, no oracles, no footprints, no lockdep, no schedule."""

    lockdep = _NoLockdep()
    step_index = 0
    max_retries = DEFAULT_MAX_RETRIES

    def __init__(self, world: World, seed: int) -> None:
        self.world, self.rng = world, random.Random(seed)
        self.guards: dict[int, Callable[[], bool] | None] = {}
        self.steps = 0

    def relabel(self, label: str) -> None:
        pass

    def report(self, kind: str, message: str) -> None:
        pass

    def run(self) -> int:
        coros: dict[int, Coroutine[Any, Any, None]] = {}
        for i, spec in enumerate(self.world.actors):
            coros[i] = spec.fn(ActorContext(spec.name, self.world.model, self, _Parked(i, self.guards)))  # type: ignore[arg-type]
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
    print(f"\n1. scheduling points on race_remap/seq_retry, full model, {runs} runs a sample, 5 rounds")
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


def _first(config: Config, kind: Kind, start: int, budget: int, depth: int = 2) -> int | None:
    """Schedules ``kind`` tries before its first finding (None: not within ``budget``)."""
    first_seed = start if kind is Kind.HYPOTHESIS else start * budget  # disjoint seed ranges
    outcome = trio.run(
        functools.partial(stress, config, kind, schedules=budget, seed=first_seed, depth=depth)
    )
    return outcome.first_at


def _spread(found: Sequence[int | None], budget: int) -> str:
    """median / max schedules to the first finding; a miss counts as budget + 1 and shows as '>'."""
    hits = [f for f in found if f is not None]
    median = statistics.median([f if f is not None else budget + 1 for f in found])
    worst = f">{budget}" if len(hits) < len(found) else str(max(hits))
    return f"{median:>6.0f} / {worst:>6}"


def _row(config: Config, kinds: Sequence[Kind], seeds: int, budget: int) -> str:
    """Each strategy's spread over ``seeds`` starting seeds, side by side."""
    return "   ".join(
        f"{k.value} {_spread([_first(config, k, s, budget) for s in range(seeds)], budget)}" for k in kinds
    )


def first_finding(seeds: int, budget: int, noises: Sequence[int]) -> None:
    print(f"\n2. schedules to the first finding on race_remap, {seeds} seeds each, budget {budget}"
          " (median / max; '>' = not found within the budget)")
    for noise in noises:
        for design in ("no_retry", "setup_time"):
            params = (("noise", noise),) if noise else ()
            config = Config(RACE, design, params=params, executor=Executor.DIRECT)
            print(f"   noise={noise:<3} {design:<11} {_row(config, list(Kind), seeds, budget)}")


# ---- 3. PCT on every broken cell, and on races that need two preemptions ----

#: races that random walk and exhaustive search find but that need two
#: preemptions (PCT depth 3): the vcpu must be preempted, and the actor that
#: took over preempted in turn while it could still run
DEEP_RACES = (
    ("race_remap", "setup_time", (("move", 1),), "spurious_efault"),
    ("migrate_page", "no_retry", (), "corruption"),
    ("migrate_page", "no_retry", (("migrations", 2),), "corruption"),
    ("ksm_merge", "no_retry", (), "ksm_write"),
)


def _broken_cells(scenarios: Sequence[str], budget: int) -> list[Config]:
    """The cells where a random walk finds a race within ``budget`` schedules."""
    cells = []
    for name in scenarios:
        for design in CATALOG[name].designs:
            config = Config(CATALOG[name], design, executor=Executor.DIRECT)
            if trio.run(functools.partial(stress, config, Kind.RANDOM, schedules=budget)).found:
                cells.append(config)
    return cells


def pct_cells(scenarios: Sequence[str], seeds: int, budget: int) -> None:
    print(f"\n3. PCT (depth 2) on every broken cell: schedules to the first finding, {seeds} seeds each,"
          f" budget {budget} (median / max), random walk alongside")
    for config in _broken_cells(scenarios, budget):
        row = _row(config, (Kind.PCT, Kind.RANDOM), seeds, budget)
        print(f"   {config.scenario.name:<13} {config.design.name:<12} {row}")


def pct_deep(races: Sequence[tuple[str, str, tuple[tuple[str, int], ...], str]], seeds: int) -> None:
    print(f"\n   races that need two preemptions: PCT runs that find them, of {seeds} seeds, by depth")
    for scenario, design, params, oracle in races:
        config = Config(CATALOG[scenario], design, (oracle,), params=params, executor=Executor.DIRECT)
        hits = []
        for depth in (2, 3, 4):
            outcome = trio.run(functools.partial(
                stress, config, Kind.PCT, schedules=seeds, depth=depth, keep_going=True))
            hits.append(f"depth {depth} {sum(g.count for g in outcome.groups):>5}")
        print(f"   {config.describe():<62} " + "   ".join(hits))


# ---- 4. exhaustive search ----


def _searched(config: Config, bound: int | None, limit: int, **how: bool) -> tuple[str, str]:
    t = time.perf_counter()
    e = trio.run(functools.partial(explore, config, preemptions=bound, limit=limit, **how))
    more = ">" if e.verdict is Verdict.LIMIT else " "
    return f"{more}{e.executions:>6} (+{e.pruned:<5}) {time.perf_counter() - t:5.2f}s", e.verdict.value


def exhaustive(limit: int, sizes: Sequence[tuple[tuple[str, int], ...]]) -> None:
    print("\n4. exhaustive search on race_remap: complete executions (+ pruned), stateful (the default),"
          f" stateless with and without sleep sets ('>': stopped at {limit} runs)")
    for params in sizes:
        for design in RACE.designs:
            for bound in (1, 2, None):
                config = Config(RACE, design, params=params, executor=Executor.DIRECT)
                stateful, verdict = _searched(config, bound, limit)
                por, _ = _searched(config, bound, limit, stateful=False)
                no_por, _ = _searched(config, bound, limit, stateful=False, reduce=False)
                label = f"{' '.join(f'{k}={v}' for k, v in params) or 'default':<9} {design:<11}"
                bound_s = "unbounded" if bound is None else f"bound {bound}"
                print(f"   {label} {bound_s:<10} stateful {stateful}   POR {por}   no POR {no_por}"
                      f"   {verdict}")


#: unbounded proofs the stateful search is measured on (scenario, design, parameters)
PROOFS = (
    *(("race_remap", "seq_retry", (("remaps", n),)) for n in range(1, 6)),
    ("ksm_merge", "seq_retry", ()),
    ("migrate_page", "seq_retry", (("migrations", 2),)),
)


def _asking_at_every_step() -> Any:
    """The baseline of section 5: replayed steps ask the strategy, as before trails."""
    return mock.patch.object(_PathStrategy, "replay", None)


def _every_branch_of_a_quiet_step() -> Any:
    """The other baseline of section 5: a step that touches nothing gets no persistent set
    (no footprint equals a bare ``object()``)."""
    return mock.patch.object(explore_module, "_NOTHING", object())


def _proof(config: Config, limit: int) -> tuple[float, explore_module.Exploration]:
    t = time.process_time()
    e = explore_direct(config, preemptions=None, limit=limit)
    return time.process_time() - t, e


def proofs(cases: Sequence[tuple[str, str, tuple[tuple[str, int], ...]]], limit: int) -> None:
    print(f"\n5. unbounded stateful proofs, in this process (no start-up): states remembered, runs, CPU time"
          f" ('>': stopped at {limit} runs); baselines: every replayed step asks the strategy (asking),"
          " a step that touches nothing is interleaved like any other (quiet)")
    for scenario, design, params in cases:
        config = Config(CATALOG[scenario], design, params=params, executor=Executor.DIRECT)
        with _asking_at_every_step():
            asking, _ = _proof(config, limit)
        with _every_branch_of_a_quiet_step():
            interleaved, quiet = _proof(config, limit)
        seconds, e = _proof(config, limit)
        more = ">" if e.verdict is Verdict.LIMIT else " "
        print(f"   {config.describe():<52} {e.states:>8} states {more}{e.executions + e.pruned:>7} runs"
              f" {seconds:7.2f}s   asking {asking:6.2f}s: {asking / seconds:4.2f}x"
              f"   quiet {quiet.states:>8} states {quiet.executions + quiet.pruned:>7} runs"
              f" {interleaved:6.2f}s: {interleaved / seconds:4.2f}x   {e.verdict.value}")


@attrs.frozen
class Sizes:
    """How much each section runs."""

    runs: int  # 1: runs a sample
    seeds: int  # 2, 3: seeds per cell
    noises: tuple[int, ...]  # 2: noise levels
    scenarios: tuple[str, ...]  # 3: scenarios whose broken cells PCT hunts
    deep: int  # 3: seeds per depth on each race that needs two preemptions
    deep_races: int  # 3: how many of DEEP_RACES
    limit: int  # 4: run limit of one exhaustive search
    remaps: tuple[int, ...]  # 4: race_remap sizes
    proofs: int  # 5: how many of PROOFS


FULL = Sizes(400, 30, (0, 40), tuple(CATALOG), 2000, len(DEEP_RACES), 20_000, (1, 2), len(PROOFS))
#: a smoke run (the test suite's): every section, figures too small to quote
QUICK = Sizes(20, 2, (0,), ("race_remap",), 40, 1, 500, (1,), 1)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: every section, tiny sizes")
    parser.add_argument("--only", type=int, choices=range(1, 6), metavar="N", help="run section N alone")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    print(f"Python {sys.version.split()[0]}, trio {trio.__version__}")
    sections = {
        1: lambda: points(size.runs),
        2: lambda: first_finding(size.seeds, 1000, size.noises),
        3: lambda: (pct_cells(size.scenarios, size.seeds, 1000),
                    pct_deep(DEEP_RACES[: size.deep_races], size.deep)),
        4: lambda: exhaustive(size.limit, [(("remaps", n),) if n > 1 else () for n in size.remaps]),
        5: lambda: proofs(PROOFS[: size.proofs], 1_000_000),
    }
    for number, section in sections.items():
        if args.only in (None, number):
            section()


if __name__ == "__main__":
    main(sys.argv[1:])
