"""What one scheduling point costs in the runtime, against a naive Event hand-off.

Run ``python bench/handoff.py`` (``--help`` for sizes). Every figure is
measured in this process, and the ones that matter are printed as ratios
against the Event baseline, so that they compare across machines:

* event baseline: Trio tasks passing a baton with one ``trio.Event`` each
  (wait on your own, reset it, set the next one's), the obvious way to run
  one task at a time;
* runtime, switching: as many actors doing nothing but ``await ctx.point("x")``
  under a strategy that always picks the next actor, so that every point is a
  Trio task switch;
* runtime, no switch: the same world under a strategy that keeps the current
  actor: a point is then the runtime's bookkeeping alone;
* reschedule ring: the baton passed with bare ``trio.lowlevel.reschedule``,
  the runtime's hand-off without its bookkeeping (the floor under "switching").

It also prices an empty ``trio.run`` against one small ``Runtime.run`` inside
a running loop: the reason one ``trio.run`` is shared by many schedules.

The machine's speed drifts (2x within seconds on a shared VM), so the
variants are sampled round-robin and each ratio is the median of the ratios
within a round, never a best of one variant over a best of another.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import attrs
import trio

from actors import ActorContext, ActorSpec, RunResult, Runtime, Strategy, World
from mmu import Model

DEFAULT_ROUNDS = 41
DEFAULT_ACTORS = 3
DEFAULT_POINTS = 300  # per actor, per sample: short, so the machine drifts little within a round
DEFAULT_STARTS = 30  # trio.run / Runtime.run calls per start-up sample
#: --quick: a smoke run (the test suite's), figures too noisy to quote
QUICK = {"rounds": 3, "points": 50, "starts": 5}

#: builds what it needs (before the clock starts) and returns the job to time,
#: which returns how many units (points, steps, calls) it did
Job = Callable[[], Awaitable[int]]


@attrs.frozen
class Figure:
    """Microseconds per unit, one sample per round."""

    name: str
    samples: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def ratios(self, baseline: Figure) -> tuple[float, ...]:
        """This over ``baseline``, round by round (both measured in the same rounds)."""
        return tuple(s / b for s, b in zip(self.samples, baseline.samples, strict=True))


def ratio_text(ratios: Sequence[float]) -> str:
    """The median of per-round ratios, and their interquartile range."""
    if len(ratios) < 2:
        return f"{ratios[0]:6.2f}"
    # inclusive: with few rounds the default (exclusive) method extrapolates beyond the
    # samples, even below zero
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return f"{median:6.2f} ({q1:.2f}-{q3:.2f})"


def print_table(unit: str, figures: Sequence[Figure], baseline: Figure) -> None:
    width = max(len(f.name) for f in figures) + 2
    print(f"  {unit:<{width}}{'best':>8}{'median':>8}  / {baseline.name} (median, q1-q3)")
    for f in figures:
        print(f"  {f.name:<{width}}{f.best:8.2f}{f.median:8.2f}  {ratio_text(f.ratios(baseline))}")


def versions() -> str:
    return f"Python {platform.python_version()}, trio {trio.__version__}, {platform.machine()}"


# ---- what is timed ----


class Alternate:
    """Always the next runnable actor: a Trio task switch at every point."""

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        return 1


class Stay:
    """Always the actor that ran last: a point with no Trio switch."""

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        return 0


def points_world(actors: int, points: int) -> World:
    """``actors`` actors doing ``points`` bare points each, no model mutation."""

    async def spin(ctx: ActorContext) -> None:
        for _ in range(points):
            await ctx.point("x")

    # No oracles: nothing changes the model, and the figure is the runtime's own.
    specs = tuple(ActorSpec(f"a{i}", spin) for i in range(actors))
    return World(Model.build(), specs, oracles={})


def runtime_for(actors: int, points: int) -> Runtime:
    # One step per point; the bound must not end the run early.
    return Runtime(max_steps=actors * points + actors)


async def run_points(runtime: Runtime, world: World, strategy: Strategy, expected: int) -> int:
    """Run a points world; return the points (= steps) done, checking none was cut short."""
    result = await runtime.run(world, strategy)
    if result.finding is not None or len(result.steps) != expected:
        # A figure for a run that stopped early would be a lie.
        raise AssertionError(f"points run cut short: {result.finding}, {len(result.steps)} steps")
    return len(result.steps)


async def event_ring(actors: int, points: int) -> int:
    """The naive hand-off: each task waits on its own Event and sets the next one's."""
    events = [trio.Event() for _ in range(actors)]

    async def task(i: int) -> None:
        following = (i + 1) % actors
        for _ in range(points):
            await events[i].wait()
            events[i] = trio.Event()  # a trio.Event cannot be cleared: a fresh one is the reset
            events[following].set()

    async with trio.open_nursery() as nursery:
        for i in range(actors):
            nursery.start_soon(task, i)
        events[0].set()
    return actors * points


async def _park() -> None:
    await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)


async def reschedule_ring(actors: int, points: int) -> int:
    """The runtime's hand-off and nothing else: wake the next task directly, park."""
    tasks: list[trio.lowlevel.Task] = []

    async def task(i: int, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        tasks.append(trio.lowlevel.current_task())
        task_status.started()  # no checkpoint until the park: parked when start() returns
        following = (i + 1) % actors
        for k in range(points):
            await _park()
            if k < points - 1 or following != 0:  # task 0 has ended by the very last hand-off
                trio.lowlevel.reschedule(tasks[following])

    async with trio.open_nursery() as nursery:
        for i in range(actors):
            await nursery.start(task, i)
        trio.lowlevel.reschedule(tasks[0])
    return actors * points


def switches(result: RunResult) -> int:
    """How many steps were run by another actor than the step before."""
    return sum(a.actor != b.actor for a, b in itertools.pairwise(result.steps))


# ---- how it is timed ----


async def sample(job: Job) -> float:
    """Microseconds per unit of one run of ``job``."""
    gc.collect()  # so that collecting earlier garbage does not land inside the sample
    awaitable = job()  # builds the world (if any) now; a coroutine runs only when awaited
    t0 = time.perf_counter()
    units = await awaitable
    return (time.perf_counter() - t0) / units * 1e6


async def warm_up(jobs: Mapping[str, Job]) -> None:
    """Run every job once untimed: first runs pay for imports and cold caches."""
    for job in jobs.values():
        await job()


async def in_rounds(jobs: Mapping[str, Job], rounds: int) -> dict[str, Figure]:
    """Sample every job once per round, round-robin.

    A slow spell of the machine then hits every job of a round alike, and
    ratios taken within a round cancel it.
    """
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            samples[name].append(await sample(job))
    return {name: Figure(name, tuple(s)) for name, s in samples.items()}


def point_jobs(actors: int, points: int) -> dict[str, Job]:
    """The four ways to hand over ``actors * points`` points, baseline first."""
    runtime = runtime_for(actors, points)

    def on_runtime(strategy: Callable[[], Strategy]) -> Job:
        return lambda: run_points(runtime, points_world(actors, points), strategy(), actors * points)

    return {
        "event baseline": lambda: event_ring(actors, points),
        "runtime, switching": on_runtime(Alternate),
        "runtime, no switch": on_runtime(Stay),
        "reschedule ring": lambda: reschedule_ring(actors, points),
    }


async def check_strategies(actors: int, points: int) -> None:
    """The strategies do what their names say, or the figures mean nothing."""
    runtime = runtime_for(actors, points)
    if switches(await runtime.run(points_world(actors, points), Alternate())) != actors * points - 1:
        raise AssertionError("Alternate did not switch at every point")
    if switches(await runtime.run(points_world(actors, points), Stay())) != actors - 1:
        raise AssertionError("Stay switched between points (not only when an actor ended)")


async def measure_points(actors: int, points: int, rounds: int) -> dict[str, Figure]:
    await check_strategies(actors, points)
    jobs = point_jobs(actors, points)
    await warm_up(jobs)
    return await in_rounds(jobs, rounds)


def measure_start_up(actors: int, starts: int, rounds: int) -> tuple[Figure, Figure]:
    """(us per empty ``trio.run``, us per ``Runtime.run`` of ``actors`` x 1 point in a loop).

    The in-loop figure includes building the world: it is what a schedule
    costs once the loop is shared. ``trio.run`` cannot nest, so each in-loop
    sample gets its own ``trio.run``, started outside the clock.
    """
    runtime = runtime_for(actors, 1)

    async def small_runs() -> int:
        for _ in range(starts):
            await run_points(runtime, points_world(actors, 1), Alternate(), actors)
        return starts

    async def in_loop() -> float:
        await small_runs()  # warm-up: the first runs in a fresh loop are slower
        return await sample(small_runs)

    async def empty() -> None:
        pass

    def empty_runs() -> float:
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(starts):
            trio.run(empty)
        return (time.perf_counter() - t0) / starts * 1e6

    empty_runs()  # warm-up
    empties: list[float] = []
    runs: list[float] = []
    for _ in range(rounds):
        empties.append(empty_runs())
        runs.append(trio.run(in_loop))
    return Figure("empty trio.run", tuple(empties)), Figure(f"Runtime.run {actors}x1 point", tuple(runs))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cost of one scheduling point, against an Event hand-off.")
    parser.add_argument("--actors", type=int, default=DEFAULT_ACTORS, help="actors (Trio tasks), >= 2")
    parser.add_argument("--points", type=int, default=DEFAULT_POINTS, help="points per actor per sample")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="samples per figure")
    parser.add_argument("--starts", type=int, default=DEFAULT_STARTS, help="calls per start-up sample")
    parser.add_argument("--quick", action="store_true", help=f"smoke-test sizes: {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    if args.actors < 2 or min(args.points, args.rounds, args.starts) < 1:
        parser.error("need --actors >= 2 and --points, --rounds, --starts >= 1")

    print(
        f"handoff: {args.actors} actors x {args.points} points = {args.actors * args.points} points"
        f" a sample, {args.rounds} rounds ({versions()})"
    )
    figures = trio.run(measure_points, args.actors, args.points, args.rounds)
    print_table("us/point", list(figures.values()), figures["event baseline"])

    empty, in_loop = measure_start_up(args.actors, args.starts, args.rounds)
    print(f"start-up: {args.starts} calls a sample, {args.rounds} rounds")
    print_table("us/call", [empty, in_loop], in_loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
