"""Schedules per second on the real scenario, against the hand-off baseline.

Run ``python bench/hunt.py`` (``--help`` for sizes). For each design of
``race_remap`` it runs the same seeds with ``RandomWalk`` through
``mmurace.api.Config.run``, all inside one ``trio.run`` as the CLI does, and
divides the time per step by the Event baseline's time per point (see
``handoff.py``) measured next to it in the same process: that ratio, not the
microseconds, is what compares across machines and commits.

A step here is everything a schedule costs, spread over its steps: building
the world, the actors' model work, the oracles after every step, the
strategy, the hand-offs and the result. Unlike ``mmurace.api.hunt`` the runs
do not stop at the first violation, so every design runs all its seeds; a run
ends at its first finding, so designs that break have shorter runs.

The machine's speed drifts within seconds, so the seeds are run in chunks of
a few tens of milliseconds, and each round samples the baseline next to one
chunk of every design; the ratios are medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Sequence

import attrs
import trio
from handoff import DEFAULT_ACTORS, Figure, Job, in_rounds, point_jobs, ratio_text, versions, warm_up

from mmurace.api import Config
from mmurace.strategies import RandomWalk
from scenarios.race_remap import SCENARIO

DEFAULT_SEEDS = 500
DEFAULT_PASSES = 3
DEFAULT_CHUNK = 25  # seeds per sample: about as long as a baseline sample
DEFAULT_POINTS = 300  # per task, per baseline sample
#: --quick: a smoke run (the test suite's), figures too noisy to quote
QUICK = {"seeds": 50, "passes": 1, "points": 100}

BASELINE = "event baseline"
RUNTIME_POINT = "runtime, switching"


@attrs.define(eq=False)
class SeedChunks:
    """A job running the next ``chunk`` seeds at each call, cycling, and tallying them.

    The units are steps; every pass over the seeds runs the same schedules.
    """

    config: Config
    seeds: range
    chunk: int
    runs: int = 0
    steps: int = 0
    violations: int = 0
    _next: int = 0

    @property
    def chunks(self) -> int:
        return -(-len(self.seeds) // self.chunk)

    def __call__(self) -> Awaitable[int]:
        start = self._next
        self._next = start + self.chunk if start + self.chunk < len(self.seeds) else 0
        return self._run(self.seeds[start : start + self.chunk])

    async def _run(self, seeds: range) -> int:
        steps = 0
        for seed in seeds:
            result = await self.config.run(RandomWalk(seed))
            steps += len(result.steps)
            self.violations += result.finding is not None
        self.runs += len(seeds)
        self.steps += steps
        return steps


async def measure(
    designs: Sequence[str], seeds: range, chunk: int, passes: int, actors: int, points: int
) -> tuple[dict[str, Figure], dict[str, SeedChunks]]:
    """us/step per design and us/point of the hand-offs, sampled in the same rounds."""
    handoffs = point_jobs(actors, points)
    baselines: dict[str, Job] = {name: handoffs[name] for name in (BASELINE, RUNTIME_POINT)}

    def hunts() -> dict[str, SeedChunks]:
        return {d: SeedChunks(Config(SCENARIO, d), seeds, chunk) for d in designs}

    await warm_up({**baselines, **hunts()})  # throwaway tallies: the real ones count timed runs only
    tallies = hunts()
    rounds = passes * tallies[designs[0]].chunks
    return await in_rounds({**baselines, **tallies}, rounds), tallies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Schedules per second on race_remap, against a baseline.")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="schedules per design per pass")
    parser.add_argument("--passes", type=int, default=DEFAULT_PASSES, help="passes over the seeds")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="seeds per sample")
    parser.add_argument(
        "--design", action="append", choices=SCENARIO.designs, help="only this design (repeatable)"
    )
    parser.add_argument("--actors", type=int, default=DEFAULT_ACTORS, help="baseline: Trio tasks, >= 2")
    parser.add_argument("--points", type=int, default=DEFAULT_POINTS, help="baseline: points per task")
    parser.add_argument("--quick", action="store_true", help=f"smoke-test sizes: {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    if args.actors < 2 or min(args.seeds, args.passes, args.chunk, args.points) < 1:
        parser.error("need --actors >= 2 and --seeds, --passes, --chunk, --points >= 1")
    designs: list[str] = args.design or list(SCENARIO.designs)

    print(
        f"hunt: {SCENARIO.name}, RandomWalk seeds 0-{args.seeds - 1} per design per pass,"
        f" {args.passes} passes, {args.chunk} seeds a sample ({versions()})"
    )
    figures, tallies = trio.run(
        measure, designs, range(args.seeds), args.chunk, args.passes, args.actors, args.points
    )
    base, point = figures[BASELINE], figures[RUNTIME_POINT]
    print(
        f"  us/point: {base.name} {base.median:.2f}, {point.name} {point.median:.2f}"
        f" (medians; {args.actors} tasks x {args.points} points a sample)"
    )
    print(
        f"  {'design':<12}{'sched/s':>8}{'steps/run':>10}{'found':>10}{'us/step':>9}"
        f"  {'/ event point (q1-q3)':<22}{'/ runtime point (q1-q3)'}"
    )
    for design in designs:
        figure, tally = figures[design], tallies[design]
        steps_per_run = tally.steps / tally.runs
        found = f"{tally.violations // args.passes}/{tally.runs // args.passes}"
        print(
            f"  {design:<12}{1e6 / (figure.median * steps_per_run):8.0f}{steps_per_run:10.2f}{found:>10}"
            f"{figure.median:9.2f}  {ratio_text(figure.ratios(base)):<22}{ratio_text(figure.ratios(point))}"
        )
    print("  (sched/s and us/step from the median us/step over samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
