"""What the CLI does, as functions that return results (the CLI only prints them)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
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
    design_named,
)
from actors.kvm import Design
from actors.runtime import weaken
from mmu import ORACLES, Memory
from mmu.oracles import Oracle
from scenarios import Scenario

from . import interrupt
from .errors import UsageError, unknown
from .library import check_build, oracle_table, resolve_design, resolve_scenario
from .strategies import RandomWalk as RandomWalk, Replay

T = TypeVar("T")

#: schedules tried per design when none is given
DEFAULT_SEEDS = 1000


def load_scenario(ref: str) -> Scenario:
    """A catalog name (``race_remap``), or a file defining scenarios (``FILE.py``, ``FILE.py:NAME``)."""
    return resolve_scenario(ref)[0]


def configure(
    scenario_ref: str,
    design_ref: str,
    oracles: Sequence[str] = (),
    params: Sequence[str] = (),
    **options: object,
) -> Config:
    """The configuration a command line names: scenario and design by catalog name or
    file, oracles by name, parameters as ``NAME=N`` strings; ``options`` are the other
    fields of ``Config``.

    Raises:
        UsageError: anything named that does not exist, load or fit (one line each).
    """
    scenario, scenario_file = resolve_scenario(scenario_ref)
    design, design_file = resolve_design(design_ref, scenario, scenario_file)
    table = oracle_table(scenario_file, design_file)
    for name in oracles:
        if name not in table:
            raise unknown("oracle", name, table)
    check_build(scenario, design)
    return Config(
        scenario,
        design,
        tuple(oracles),
        params=parse_params(scenario, params, design),
        scenario_ref=scenario_ref,
        design_ref=design_ref,
        known_oracles=table,
        **options,  # type: ignore[arg-type]
    )


def parse_params(
    scenario: Scenario, texts: Sequence[str], design: Design | str | None = None
) -> tuple[tuple[str, int], ...]:
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
        scenario.build(design if design is not None else next(iter(scenario.designs)), **given)
    except ValueError as exc:
        raise UsageError(f"bad parameter for {scenario.name}: {exc}") from None
    return tuple((name, given[name]) for name in known if name in given)


@attrs.frozen
class Config:
    """What every run of a command shares.

    ``design`` is a ``Design`` or a catalog design's name. ``scenario_ref`` and
    ``design_ref`` are how a command line names them (a catalog name, or a
    file), so that the printed replay command works; by default their names.
    """

    scenario: Scenario
    design: Design = attrs.field(converter=design_named)
    oracles: tuple[str, ...] = ()  # empty: all of them
    max_steps: int = DEFAULT_MAX_STEPS
    params: tuple[tuple[str, int], ...] = ()  # scenario parameters that differ from the defaults
    executor: Executor = Executor.TRIO  # same trace either way; DIRECT is faster for searches
    max_retries: int = DEFAULT_MAX_RETRIES  # retries of one fault before it is a livelock
    #: the memory model: SC, or weak memory for the lockless fields (mmu/weak.py)
    memory: Memory = Memory.SC
    scenario_ref: str | None = attrs.field(default=None, kw_only=True)
    design_ref: str | None = attrs.field(default=None, kw_only=True)
    #: the oracles ``oracles`` may name: the catalog's, and those of the files named
    known_oracles: Mapping[str, Oracle] = attrs.field(default=ORACLES, kw_only=True, eq=False, repr=False)

    def describe(self) -> str:
        """The command-line words that select this configuration (replayable as they are)."""
        words = [self.scenario_ref or self.scenario.name, "--design", self.design_ref or self.design.name]
        words += [f"-p {name}={value}" for name, value in self.params]
        words += [f"--oracle {name}" for name in self.oracles]
        if self.max_steps != DEFAULT_MAX_STEPS:
            words.append(f"--max-steps {self.max_steps}")
        if self.max_retries != DEFAULT_MAX_RETRIES:
            words.append(f"--max-retries {self.max_retries}")
        if self.memory is not Memory.SC:
            words.append(f"--memory {self.memory.value}")
        return " ".join(words)

    def world(self) -> World:
        """A fresh world for one run."""
        world = self.scenario.build(self.design, **dict(self.params))
        if self.oracles:
            world.oracles = {name: self.known_oracles[name] for name in self.oracles}
        world.max_retries = self.max_retries
        for name, value in self.design.words.items():  # the design's own words of struct kvm
            world.model.kvm.words.setdefault(name, value)
        if self.memory is not Memory.WEAK:
            return world
        return weaken(world, self.design.weak_cells(world.model))

    async def run(self, strategy: Strategy) -> RunResult:
        """Run one schedule of a fresh world."""
        return await Runtime(self.max_steps, self.executor).run(self.world(), strategy)

    def run_direct(self, strategy: Strategy) -> RunResult:
        """Run one schedule with the direct executor, outside any event loop."""
        return Runtime(self.max_steps, Executor.DIRECT).run_direct(self.world(), strategy)

    def fingerprint(self) -> str:
        """Six hex digits naming scenario, design, parameters and a memory model other
        than SC: a schedule string carries them, so that one pasted against another
        configuration is refused (an SC schedule replayed in weak memory, too)."""
        text = f"{self.scenario.name}|{self.design.name}|{sorted(self.params)}"
        if self.memory is not Memory.SC:
            text += f"|{self.memory.value}"
        return hashlib.blake2s(text.encode(), digest_size=3).hexdigest()

    def schedule_string(self, schedule: Schedule) -> str:
        """``schedule`` as printed: its decisions and this configuration's fingerprint."""
        return f"{schedule.encode()}@{self.fingerprint()}"

    def parse_schedule(self, text: str) -> Schedule:
        """A schedule string printed for this configuration (or one without a fingerprint).

        Raises:
            UsageError: malformed, or recorded for another scenario, design or parameters.
        """
        decisions, at, fingerprint = text.strip().partition("@")
        if at and fingerprint != self.fingerprint():
            raise UsageError(
                f"schedule {text.strip()} was recorded for another scenario, design, parameters"
                " or memory model"
                f" (fingerprint {fingerprint}; {self.describe()} has {self.fingerprint()})"
            )
        try:
            return Schedule.decode(decisions, self.max_steps)
        except ScheduleError as exc:
            raise UsageError(str(exc)) from None

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
    interrupted: bool = False  # stopped by a signal before the seeds ran out


async def hunt(
    config: Config,
    seeds: range,
    progress: Callable[[int], None] = lambda n: None,
    stop: Callable[[], bool] = interrupt.requested,
) -> Hunt:
    """Try ``seeds`` in order with a random walk; stop at the first violation, or when ``stop()``."""
    last = None
    for n, seed in enumerate(seeds):
        if stop():
            return Hunt(config, n, None, None, last, interrupted=True)
        last = await config.run(RandomWalk(seed))
        progress(n + 1)
        if last.finding is not None:
            return Hunt(config, n + 1, seed, last, last)
    return Hunt(config, len(seeds), None, None, last)


async def replay(config: Config, schedule: str) -> RunResult:
    """Run the decisions of ``schedule`` again.

    Raises:
        UsageError: if the string is malformed or does not fit this scenario and design.
    """
    strategy = Replay(config.parse_schedule(schedule))
    try:
        result = await config.run(strategy)
        strategy.check_complete()
    except ScheduleDiverged as exc:
        raise UsageError(
            f"{exc} (was it recorded for {config.describe()}?)"
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
