"""Stress: many schedules of one configuration, findings collected and grouped.

Random walk and PCT try one seed per schedule, on as many processes (or
Dask workers) as asked (``campaign``: the same findings whatever their
number); the Hypothesis strategy draws sparse schedules
(``strategies.Sparse``) in this process and lets Hypothesis's own shrinker
minimise what fails, remembering it in its example database (Hypothesis is
imported only then). Identical findings (same oracle at the same step of
the same actor) are grouped and counted; the first of each group is kept
with how it was found.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from actors import RunResult

from . import interrupt
from .api import Config
from .campaign import Work, campaign, location, seeded_name
from .strategies import Sparse

#: most preemptions the Hypothesis strategy draws for one schedule
MAX_DRAWN_PREEMPTIONS = 6


class Kind(enum.Enum):
    """Which strategy a stress run uses."""

    RANDOM = "random"
    PCT = "pct"
    HYPOTHESIS = "hypothesis"


@attrs.frozen
class Found:
    """A finding with its provenance: enough to replay, report and group it."""

    config: Config
    strategy: str  # e.g. "pct --depth 2 --seed 17"
    seed: int | None
    result: RunResult
    shrunk: RunResult | None = None
    not_fewest: str = ""  # why ``shrunk`` may not have the fewest preemptions (Shrunk.note); "": it has

    @property
    def location(self) -> tuple[str, str, str]:
        """(oracle, actor, step label) of the fatal step: what makes findings the same."""
        return location(self.result)


@attrs.frozen
class Group:
    """Findings at the same location: the first one found, and how many there were."""

    first: Found
    count: int


@attrs.frozen
class Stress:
    """What a stress run tried and found."""

    kind: Kind
    schedules: int
    seconds: float  # wall time, for the schedules/s figure only: never part of a run
    groups: tuple[Group, ...]
    first_at: int | None = None  # how many schedules it took to the first finding
    interrupted: bool = False  # stopped by a signal before the budget ran out

    @property
    def found(self) -> bool:
        return bool(self.groups)


def _group(found: list[Found]) -> tuple[Group, ...]:
    groups: dict[tuple[str, str, str], list[Found]] = {}
    for f in found:
        groups.setdefault(f.location, []).append(f)
    return tuple(Group(fs[0], len(fs)) for fs in groups.values())


async def stress(
    config: Config,
    kind: Kind,
    *,
    schedules: int,
    seed: int = 0,
    depth: int = 2,
    keep_going: bool = False,
    database: Path | None = None,
    progress: Callable[[int], None] = lambda n: None,
    jobs: int = 1,
    cluster: str | None = None,
    stop: Callable[[], bool] = interrupt.requested,
) -> Stress:
    """Try up to ``schedules`` schedules; stop at the first finding unless ``keep_going``,
    or when ``stop()`` says so between two runs (what was found so far is kept).

    Random walk and PCT run on ``jobs`` processes, or on the workers of the
    Dask scheduler at ``cluster``; Hypothesis always in this process.
    """
    started = time.perf_counter()
    first_at: list[int] = []
    if kind is Kind.HYPOTHESIS:
        found, tried = _hypothesis(config, schedules, seed, database, keep_going, progress, first_at, stop)
        groups = _group(found)
    else:
        # PCT's k: the longest run seen so far, the estimate's random walks first
        work = Work.of(config, kind.value, depth, config.estimate_decisions(), keep_going)
        seeds = range(seed, seed + schedules)
        merged, tried = await campaign(
            config, work, seeds, jobs=jobs, cluster=cluster, progress=progress, stop=stop
        )
        groups = tuple(
            Group(Found(config, seeded_name(kind.value, g.seed, depth), g.seed, g.result), g.count)
            for g in merged.groups
        )
        first_at = [merged.first_at] if merged.first_at is not None else []
    seconds = time.perf_counter() - started
    return Stress(kind, tried, seconds, groups, first_at[0] if first_at else None, stop())


class _Failed(Exception):
    def __init__(self, result: RunResult) -> None:
        super().__init__(result.finding)
        self.result = result


class _Stopped(BaseException):
    """Ends a Hypothesis search early: not an Exception, so never taken for a failure."""


def _hypothesis(
    config: Config,
    schedules: int,
    seed: int,
    database: Path | None,
    keep_going: bool,
    progress: Callable[[int], None],
    first_at: list[int],
    stop: Callable[[], bool],
) -> tuple[list[Found], int]:
    """Let Hypothesis draw sparse schedules; its shrinker minimises the one that fails."""
    # imported here: it takes longer to import than most commands take to run
    from hypothesis import (
        HealthCheck,
        Phase,
        Verbosity,
        given,
        seed as hypothesis_seed,
        settings,
        strategies as st,
    )
    from hypothesis.database import DirectoryBasedExampleDatabase

    decisions = config.estimate_decisions()
    pairs = st.lists(
        st.tuples(st.integers(0, decisions - 1), st.integers(0, 2)), max_size=MAX_DRAWN_PREEMPTIONS
    )
    tried = 0
    found: list[Found] = []
    name = f"hypothesis --seed {seed}"

    # @settings above @seed: @seed turns the example database off (it assumes a seed
    # reproduces a failure by itself), and the settings applied last are the ones in force
    @settings(
        max_examples=schedules,
        database=DirectoryBasedExampleDatabase(str(database)) if database else None,
        deadline=None,
        derandomize=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        report_multiple_bugs=False,
    )
    @hypothesis_seed(seed)
    @given(pairs)
    def search(drawn: list[tuple[int, int]]) -> None:
        nonlocal tried
        if stop():
            raise _Stopped
        tried += 1
        progress(min(tried, schedules))
        result = config.run_direct(Sparse.from_pairs(drawn))
        if result.finding is not None:
            first_at[:] = first_at or [tried]
            if keep_going or not found:  # the first is kept in case Hypothesis is stopped shrinking it
                found.append(Found(config, name, seed, result))
            if not keep_going:
                raise _Failed(result)

    # one database entry per configuration, whatever the function's source
    search.hypothesis.inner_test._hypothesis_internal_add_digest = config.describe().encode()  # type: ignore[attr-defined]
    try:
        search()
    except _Failed as failed:  # re-raised by Hypothesis for the shrunk example
        found = [Found(config, name, seed, failed.result)]
    except _Stopped:
        pass
    return found, tried
