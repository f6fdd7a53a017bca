"""Shrinking a failing schedule to the few decisions that matter.

A schedule is shrunk in its sparse form (``strategies.Sparse``: the
preemptions only), by a list of passes in the style of Hypothesis's
shrinker: drop a preemption, switch to the nearest actor instead, preempt
one decision earlier. A candidate is kept only if it still fails with the
same oracle and its recorded schedule is simpler by ``actors.sort_key``
(fewer preemptions, then fewer decisions, then lower choices), so every
accepted step makes progress and the result is never longer than the input.
Passes repeat until none makes progress; everything is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from actors import RunResult, sort_key

from . import interrupt
from .api import Config
from .strategies import Sparse

#: candidate runs a shrink may try before it settles for what it has
MAX_SHRINK_RUNS = 2000

Preemptions = dict[int, int]


@attrs.frozen
class Shrunk:
    """The simplest failing run found, and what it took."""

    result: RunResult
    runs: int


def _drop(p: Preemptions) -> Iterator[Preemptions]:
    for i in sorted(p, reverse=True):
        yield {k: v for k, v in p.items() if k != i}


def _lower_target(p: Preemptions) -> Iterator[Preemptions]:
    for i in sorted(p):
        for target in range(p[i]):
            yield {**p, i: target}


def _earlier(p: Preemptions) -> Iterator[Preemptions]:
    for i in sorted(p):
        if i > 0 and i - 1 not in p:
            moved = {k: v for k, v in p.items() if k != i}
            moved[i - 1] = p[i]
            yield moved


PASSES: tuple[Callable[[Preemptions], Iterator[Preemptions]], ...] = (_drop, _lower_target, _earlier)


def shrink(
    config: Config,
    result: RunResult,
    *,
    max_runs: int = MAX_SHRINK_RUNS,
    stop: Callable[[], bool] = interrupt.requested,
) -> Shrunk:
    """Shrink the failing ``result`` of ``config``; returns it unchanged if nothing simpler fails.

    When ``stop()`` says so, returns the simplest failing run found so far.

    Raises:
        ValueError: if ``result`` did not fail.
    """
    if result.finding is None:
        raise ValueError("only a failing run can be shrunk")
    oracle = result.finding.oracle
    best = result
    current = Sparse.from_schedule(result.schedule).preemptions
    runs = 0
    progress = True
    while progress and runs < max_runs:
        progress = False
        for shrink_pass in PASSES:
            for candidate in shrink_pass(current):
                if runs >= max_runs or stop():
                    return Shrunk(best, runs)
                runs += 1
                tried = config.run_direct(Sparse(dict(candidate)))
                if (
                    tried.finding is not None
                    and tried.finding.oracle == oracle
                    and sort_key(tried.schedule) < sort_key(best.schedule)
                ):
                    best, current, progress = tried, Sparse.from_schedule(tried.schedule).preemptions, True
                    break  # restart this pass from the simpler schedule
    return Shrunk(best, runs)
