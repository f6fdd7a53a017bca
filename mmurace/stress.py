"""Stress: many schedules of one configuration, findings collected and grouped.

Random walk and PCT try one seed per schedule; the Hypothesis strategy
draws sparse schedules (``strategies.Sparse``) and lets Hypothesis's own
shrinker minimise what fails, remembering it in its example database
(Hypothesis is imported only then).
Identical findings (same oracle at the same step of the same actor) are
grouped and counted; the first of each group is kept with how it was found.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from actors import RunResult, Strategy

from . import interrupt
from .api import Config
from .strategies import Pct, RandomWalk, Sparse

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

    @property
    def location(self) -> tuple[str, str, str]:
        """(oracle, actor, step label) of the fatal step: what makes findings the same."""
        f = self.result.finding
        assert f is not None
        step = self.result.steps[f.step] if 0 <= f.step < len(self.result.steps) else None
        return (f.oracle, step.actor if step else "-", step.label if step else "-")


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


def _seeded(kind: Kind, seed: int, depth: int, steps: int) -> tuple[Strategy, str]:
    if kind is Kind.PCT:
        return Pct(seed, depth, steps), f"pct --depth {depth} --seed {seed}"
    return RandomWalk(seed), f"random --seed {seed}"


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
    stop: Callable[[], bool] = interrupt.requested,
) -> Stress:
    """Try up to ``schedules`` schedules; stop at the first finding unless ``keep_going``,
    or when ``stop()`` says so between two runs (what was found so far is kept)."""
    started = time.perf_counter()
    first_at: list[int] = []
    if kind is Kind.HYPOTHESIS:
        found, tried = _hypothesis(config, schedules, seed, database, keep_going, progress, first_at, stop)
    else:
        # PCT's k: the longest run seen so far, the estimate's random walks first
        steps = config.estimate_decisions()
        found, tried = [], 0
        for s in range(seed, seed + schedules):
            if stop():
                break
            strategy, name = _seeded(kind, s, depth, steps)
            result = await config.run(strategy)
            steps = max(steps, len(result.schedule.choices))
            tried += 1
            progress(tried)
            if result.finding is not None:
                first_at = first_at or [tried]
                found.append(Found(config, name, s, result))
                if not keep_going:
                    break
    seconds = time.perf_counter() - started
    return Stress(kind, tried, seconds, _group(found), first_at[0] if first_at else None, stop())


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
