"""Every design against every scenario: one table that answers the thread.

Each cell is hunted on its own, in a process pool (or on a Dask cluster):
random walk and PCT with a budget of schedules each; a race found is shrunk
to its fewest preemptions (``shrink``: confirmed by an exhaustive search) and
shown by its oracle and that count. A cell with no race found is
then handed to the exhaustive search (with a run limit): if it exhausts the
tree, the cell is proved for that bound, not just survived. Designs that do
not apply to a scenario are n/a.
"""

from __future__ import annotations

import concurrent.futures as cf
import enum
import functools
from collections.abc import Callable, Sequence

import attrs

from actors import Executor, RunResult, Schedule
from mmu import Memory

from . import interrupt
from .api import Config, configure, run_sync
from .explore import Exploration, Verdict, explore
from .library import applies, resolve_design_anywhere, resolve_scenario
from .shrink import shrink
from .stress import Kind, stress
from .workers import POLL_SECONDS, pool

#: schedules per strategy per cell when no --budget is given
DEFAULT_BUDGET = 300
#: runs the exhaustive search may spend on a cell, per preemption bound
EXPLORE_LIMIT = 3000
#: runs the unbounded search may spend (--limit): stateful, it proves every catalog cell
#: within about 25,000; the bounded searches before it keep EXPLORE_LIMIT
PROOF_LIMIT = 50_000
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
    memory: Memory = Memory.SC  # the memory model it was judged in (mmu/weak.py)

    def text(self) -> str:
        if self.outcome is Outcome.BROKEN:
            p = Schedule.decode(self.schedule.partition("@")[0]).preemptions
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
        memory = "" if self.memory is Memory.SC else f" --memory {self.memory.value}"
        return f"mmurace replay {self.scenario} --design {self.design}{memory} --schedule {self.schedule}"

    @property
    def row(self) -> str:
        """The design's name, as the table's row shows it (``FILE.py:NAME`` shows NAME)."""
        return self.design.rpartition(":")[2] if ":" in self.design else self.design


def _explore(config: Config, bound: int | None, limit: int) -> Exploration:
    runs = limit if bound is None else min(limit, EXPLORE_LIMIT)
    return run_sync(functools.partial(explore, config, preemptions=bound, limit=runs),
                    executor=config.executor)


def _broken(config: Config, result: RunResult, tried: int) -> Cell:
    """The race found, shrunk to its fewest preemptions (confirmed by the shrinker's search)."""
    shrunk = shrink(config, result)
    best = shrunk.result
    assert best.finding is not None, "shrinking keeps the failure"
    assert config.scenario_ref is not None and config.design_ref is not None
    schedule = config.schedule_string(best.schedule)
    return Cell(
        config.scenario_ref, config.design_ref, Outcome.BROKEN, best.finding.oracle, schedule,
        tried + shrunk.runs, minimal=shrunk.minimal, memory=config.memory,
    )


def judge(
    scenario: str, design: str, budget: int, memory: Memory = Memory.SC, limit: int = PROOF_LIMIT
) -> Cell:
    """Hunt one cell (runs in a worker process: arguments and result are plain data).

    ``scenario`` and ``design`` are as a command line names them: catalog names,
    or files (``FILE.py:NAME``), which the worker loads again.
    """
    sc, scenario_file = resolve_scenario(scenario)
    candidate, _ = resolve_design_anywhere(design, scenario_file)
    if not applies(candidate, sc):
        return Cell(scenario, design, Outcome.NA, memory=memory)
    # no event loop: Trio not even imported
    config = configure(scenario, design, executor=Executor.DIRECT, memory=memory)
    tried = 0
    for kind in (Kind.RANDOM, Kind.PCT):
        hunt = functools.partial(stress, config, kind, schedules=budget)
        outcome = run_sync(hunt, executor=config.executor)
        tried += outcome.schedules
        if outcome.groups:
            return _broken(config, outcome.groups[0].first.result, tried)
    proved: Cell | None = None  # the largest bound exhausted so far
    for bound in EXPLORE_BOUNDS:
        search = _explore(config, bound, limit)
        runs = search.executions + search.pruned
        tried += runs
        if search.result is not None:
            return _broken(config, search.result, tried)
        if search.verdict is not Verdict.EXHAUSTED:
            break
        proved = Cell(scenario, design, Outcome.EXHAUSTED, schedules=runs, bound=bound, memory=memory)
    return proved or Cell(scenario, design, Outcome.SURVIVED, schedules=tried, memory=memory)


def matrix(
    scenarios: Sequence[str],
    designs: Sequence[str],
    *,
    budget: int = DEFAULT_BUDGET,
    jobs: int = 1,
    cluster: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
    stop: Callable[[], bool] = interrupt.requested,
    memory: Memory = Memory.SC,
    limit: int = PROOF_LIMIT,
) -> list[Cell]:
    """Judge every cell, ``jobs`` at a time (or on the Dask scheduler at ``cluster``);
    cells come back in table order.

    No more processes than cells to judge are started, and the longest cells
    go first, so that none is left to run alone at the end: a cell's length
    is guessed from the decisions its runs take (a few random walks), since
    the exhaustive search that a surviving cell ends in grows with them.

    When ``stop()`` says so, returns the cells judged so far, still in table
    order: a cell being judged is dropped (its searches were cut short, so it
    has no verdict) and the worker processes are terminated.
    """
    pairs = [(s, d) for s in scenarios for d in designs]
    if jobs <= 1 and cluster is None:
        cells: list[Cell] = []
        for s, d in pairs:
            cell = None if stop() else judge(s, d, budget, memory, limit)
            if cell is None or stop():
                break
            cells.append(cell)
            progress(len(cells))
        return cells
    judged: dict[int, Cell] = {}
    todo: list[tuple[int, int]] = []  # (length, index) of the cells a worker judges
    for i, (s, d) in enumerate(pairs):
        length = _length(s, d)
        if length is None:
            judged[i] = Cell(s, d, Outcome.NA, memory=memory)
        else:
            todo.append((length, i))
    progress(len(judged))
    todo.sort(key=lambda cell: (-cell[0], cell[1]))
    with pool(max(1, min(jobs, len(todo))), cluster) as (executor, _):
        pending = {executor.submit(judge, *pairs[i], budget, memory, limit): i for _, i in todo}
        while pending and not stop():
            finished, _ = cf.wait(pending, timeout=POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                judged[pending.pop(future)] = future.result()
                progress(len(judged))
    return [judged[i] for i in sorted(judged)]


def _length(scenario: str, design: str) -> int | None:
    """How long judging a cell may take, roughly: the decisions of its runs (None: n/a)."""
    sc, scenario_file = resolve_scenario(scenario)
    candidate, _ = resolve_design_anywhere(design, scenario_file)
    if not applies(candidate, sc):
        return None
    return configure(scenario, design, executor=Executor.DIRECT).estimate_decisions()
