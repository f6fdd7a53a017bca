"""What the CLI does, as functions that return results (the CLI only prints them)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

from actors import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_STEPS,
    Executor,
    InternalError,
    RunResult,
    Runtime,
    Schedule,
    ScheduleDiverged,
    ScheduleError,
    Strategy,
    World,
)
from mmu import ORACLES
from scenarios import CATALOG, Scenario

from .errors import UsageError, unknown
from .strategies import RandomWalk as RandomWalk, Replay

T = TypeVar("T")

#: schedules tried per design when none is given
DEFAULT_SEEDS = 1000


def load_scenario(name_or_path: str) -> Scenario:
    """A catalog name (``race_remap``) or a path to a scenario file defining ``SCENARIO``."""
    if name_or_path in CATALOG:
        return CATALOG[name_or_path]
    path = Path(name_or_path)
    if path.suffix != ".py":
        raise unknown("scenario", name_or_path, CATALOG)
    if not path.is_file():
        raise UsageError(f"scenario file {name_or_path!r} does not exist")
    for known in CATALOG.values():  # a catalog file by path: the same object, not a second import
        if path.resolve() == Path(sys.modules[known.build.__module__].__file__ or "").resolve():
            return known
    spec = importlib.util.spec_from_file_location(f"_mmurace_scenario_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise UsageError(f"scenario file {name_or_path!r} does not load: {why}") from None
    scenario = getattr(module, "SCENARIO", None)
    if not isinstance(scenario, Scenario):
        raise UsageError(f"scenario file {name_or_path!r} defines no SCENARIO = Scenario(...)")
    return scenario


def check_design(scenario: Scenario, design: str) -> str:
    if design not in scenario.designs:
        raise unknown("design", design, scenario.designs)
    return design


def check_oracles(names: Sequence[str]) -> tuple[str, ...]:
    for name in names:
        if name not in ORACLES:
            raise unknown("oracle", name, ORACLES)
    return tuple(names)


def parse_params(scenario: Scenario, texts: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``NAME=INTEGER`` strings -> validated parameters of ``scenario``, in the scenario's order."""
    known = scenario.params()
    given: dict[str, int] = {}
    for text in texts:
        name, eq, value = text.partition("=")
        if not eq or not value.strip().lstrip("-").isdigit():
            raise UsageError(f"malformed parameter {text!r}: expected NAME=INTEGER")
        if name not in known:
            raise unknown(f"parameter of {scenario.name}", name, known)
        given[name] = int(value)
    try:
        scenario.build(next(iter(scenario.designs)), **given)
    except ValueError as exc:
        raise UsageError(f"bad parameter for {scenario.name}: {exc}") from None
    return tuple((name, given[name]) for name in known if name in given)


@attrs.frozen
class Config:
    """What every run of a command shares."""

    scenario: Scenario
    design: str
    oracles: tuple[str, ...] = ()  # empty: all of them
    max_steps: int = DEFAULT_MAX_STEPS
    params: tuple[tuple[str, int], ...] = ()  # scenario parameters that differ from the defaults
    executor: Executor = Executor.TRIO  # same trace either way; DIRECT is faster for searches
    max_retries: int = DEFAULT_MAX_RETRIES  # retries of one fault before it is a livelock

    def describe(self) -> str:
        """The command-line words that select this configuration (replayable as they are)."""
        words = [self.scenario.name, "--design", self.design]
        words += [f"-p {name}={value}" for name, value in self.params]
        words += [f"--oracle {name}" for name in self.oracles]
        if self.max_steps != DEFAULT_MAX_STEPS:
            words.append(f"--max-steps {self.max_steps}")
        if self.max_retries != DEFAULT_MAX_RETRIES:
            words.append(f"--max-retries {self.max_retries}")
        return " ".join(words)

    def world(self) -> World:
        """A fresh world for one run."""
        world = self.scenario.build(self.design, **dict(self.params))
        if self.oracles:
            world.oracles = {name: ORACLES[name] for name in self.oracles}
        world.max_retries = self.max_retries
        return world

    async def run(self, strategy: Strategy) -> RunResult:
        """Run one schedule of a fresh world."""
        return await Runtime(self.max_steps, self.executor).run(self.world(), strategy)

    def run_direct(self, strategy: Strategy) -> RunResult:
        """Run one schedule with the direct executor, outside any event loop."""
        return Runtime(self.max_steps, Executor.DIRECT).run_direct(self.world(), strategy)

    def estimate_decisions(self, samples: int = 5) -> int:
        """How many decisions a run takes: the most over a few random walks (PCT's k)."""
        return max(len(self.run_direct(RandomWalk(seed)).schedule.choices) for seed in range(samples)) or 1


@attrs.frozen
class Hunt:
    """The outcome of trying seeds in order: the first violation, or none in ``tried``."""

    config: Config
    tried: int
    seed: int | None
    result: RunResult | None
    last: RunResult | None = None  # the last run tried, violating or not


async def hunt(config: Config, seeds: range, progress: Callable[[int], None] = lambda n: None) -> Hunt:
    """Try ``seeds`` in order with a random walk; stop at the first violation."""
    for n, seed in enumerate(seeds, 1):
        result = await config.run(RandomWalk(seed))
        progress(n)
        if result.finding is not None:
            return Hunt(config, n, seed, result, result)
    return Hunt(config, len(seeds), None, None, result if seeds else None)


async def replay(config: Config, schedule: str) -> RunResult:
    """Run the decisions of ``schedule`` again.

    Raises:
        UsageError: if the string is malformed or does not fit this scenario and design.
    """
    try:
        strategy = Replay(Schedule.decode(schedule))
    except ScheduleError as exc:
        raise UsageError(str(exc)) from None
    try:
        result = await config.run(strategy)
        strategy.check_complete()
    except ScheduleDiverged as exc:
        raise UsageError(
            f"{exc} (was it recorded for {config.scenario.name} --design {config.design}?)"
        ) from None
    return result


def run_sync(
    fn: Callable[..., Coroutine[Any, Any, T]], *args: object, executor: Executor = Executor.TRIO
) -> T:
    """Run an async job of the CLI to its end, its runs on ``executor``.

    On the Trio executor, one ``trio.run`` for all the schedules of a command.
    On the direct executor a job never waits for anything, so it is stepped
    through without an event loop, and Trio is not even imported.
    """
    if executor is Executor.DIRECT:
        coroutine = fn(*args)
        try:
            coroutine.send(None)
        except StopIteration as done:
            return done.value
        coroutine.close()
        raise InternalError("a job on the direct executor waited for an event loop")
    import trio

    return trio.run(fn, *args)
