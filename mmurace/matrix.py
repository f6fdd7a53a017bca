"""Every design against every scenario: one table that answers the thread.

Each cell is hunted on its own, in a process pool (or on a Dask cluster):
random walk and PCT with a budget of schedules each; a race found is shrunk
and shown by its oracle and the preemptions of its shortest schedule. A cell with no race found is
then handed to the exhaustive search (with a run limit): if it exhausts the
tree, the cell is proved for that bound, not just survived. Designs that do
not apply to a scenario are n/a.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed

import attrs
import trio

from actors import Executor, RunResult, Schedule
from scenarios import CATALOG

from .api import Config
from .explore import Verdict, explore
from .shrink import shrink
from .stress import Kind, stress
from .workers import pool

#: schedules per strategy per cell when no --budget is given
DEFAULT_BUDGET = 300
#: runs the exhaustive search may spend on a cell, per preemption bound
EXPLORE_LIMIT = 3000
#: preemption bounds the exhaustive search tries in turn (None: unbounded)
EXPLORE_BOUNDS: tuple[int | None, ...] = (1, 2, None)


class Outcome(enum.Enum):
    BROKEN = "broken"
    EXHAUSTED = "exhausted"
    SURVIVED = "survived"
    NA = "n/a"


@attrs.frozen
class Cell:
    """The verdict on one (scenario, design) pair."""

    scenario: str
    design: str
    outcome: Outcome
    oracle: str = ""
    schedule: str = ""  # the shortest failing schedule found
    schedules: int = 0  # schedules run for this cell, searches included
    bound: int | None = None  # the preemption bound an EXHAUSTED cell was proved for
    minimal: bool = True  # a BROKEN cell's schedule has the fewest preemptions: proved

    def text(self) -> str:
        if self.outcome is Outcome.BROKEN:
            p = Schedule.decode(self.schedule).preemptions
            at_most = "" if self.minimal else "<="
            return f"{self.oracle} ({at_most}{p} preemption{'' if p == 1 else 's'})"
        if self.outcome is Outcome.EXHAUSTED:
            if self.bound is None:
                return f"exhausted ({self.schedules} runs)"
            plural = "" if self.bound == 1 else "s"
            return f"exhausted <={self.bound} preemption{plural} ({self.schedules} runs)"
        if self.outcome is Outcome.SURVIVED:
            return f"survived {self.schedules}"
        return "n/a"

    def replay(self) -> str:
        return f"mmurace replay {self.scenario} --design {self.design} --schedule {self.schedule}"


def _broken(config: Config, result: RunResult, tried: int) -> Cell:
    """The race found, shrunk to its fewest preemptions (confirmed by the shrinker's search)."""
    shrunk = shrink(config, result)
    best = shrunk.result
    assert best.finding is not None, "shrinking keeps the failure"
    name = config.scenario.name
    return Cell(
        name, config.design, Outcome.BROKEN, best.finding.oracle, best.schedule.encode(),
        tried + shrunk.runs, minimal=shrunk.minimal,
    )


def judge(scenario: str, design: str, budget: int) -> Cell:
    """Hunt one cell (runs in a worker process: arguments and result are plain data)."""
    sc = CATALOG[scenario]
    if design not in sc.designs:
        return Cell(scenario, design, Outcome.NA)
    config = Config(sc, design, executor=Executor.DIRECT)
    tried = 0
    for kind in (Kind.RANDOM, Kind.PCT):
        outcome = trio.run(functools.partial(stress, config, kind, schedules=budget))
        tried += outcome.schedules
        if outcome.groups:
            return _broken(config, outcome.groups[0].first.result, tried)
    proved: Cell | None = None  # the largest bound exhausted so far
    for bound in EXPLORE_BOUNDS:
        search = trio.run(functools.partial(explore, config, preemptions=bound, limit=EXPLORE_LIMIT))
        runs = search.executions + search.pruned
        tried += runs
        if search.result is not None:
            return _broken(config, search.result, tried)
        if search.verdict is not Verdict.EXHAUSTED:
            break
        proved = Cell(scenario, design, Outcome.EXHAUSTED, schedules=runs, bound=bound)
    return proved or Cell(scenario, design, Outcome.SURVIVED, schedules=tried)


def matrix(
    scenarios: Sequence[str],
    designs: Sequence[str],
    *,
    budget: int = DEFAULT_BUDGET,
    jobs: int = 1,
    cluster: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> list[Cell]:
    """Judge every cell, ``jobs`` at a time (or on the Dask scheduler at ``cluster``);
    cells come back in table order.

    No more processes than cells to judge are started, and the longest
    cells go first, so that none is left to run alone at the end: a cell's
    length is guessed from the decisions its runs take (a few random walks),
    since the exhaustive search that a surviving cell ends in grows with them.
    """
    pairs = [(s, d) for s in scenarios for d in designs]
    cells = {(s, d): Cell(s, d, Outcome.NA) for s, d in pairs if d not in CATALOG[s].designs}
    todo = [pair for pair in pairs if pair not in cells]
    progress(len(cells))
    if (jobs <= 1 or len(todo) <= 1) and cluster is None:
        for s, d in todo:
            cells[s, d] = judge(s, d, budget)
            progress(len(cells))
        return [cells[pair] for pair in pairs]
    todo.sort(key=_length, reverse=True)
    with pool(min(jobs, len(todo)), cluster) as (executor, _):
        futures = {executor.submit(judge, s, d, budget): (s, d) for s, d in todo}
        for future in as_completed(futures):
            cells[futures[future]] = future.result()
            progress(len(cells))
    return [cells[pair] for pair in pairs]


def _length(pair: tuple[str, str]) -> int:
    scenario, design = pair
    return Config(CATALOG[scenario], design, executor=Executor.DIRECT).estimate_decisions()
