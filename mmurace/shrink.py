"""Shrinking a failing schedule to the few decisions that matter.

A schedule is shrunk in its sparse form (``strategies.Sparse``: the
preemptions only), by a list of passes in the style of Hypothesis's
shrinker: drop a preemption, switch to the nearest actor instead, preempt
one decision earlier. A candidate is kept only if it still fails with the
same oracle and its recorded schedule is simpler by ``actors.sort_key``
(fewer preemptions, then fewer decisions, then lower choices), so every
accepted step makes progress and the result is never longer than the input.
Passes repeat until none makes progress; everything is deterministic.

Passes stop in local minima: a race reached with 6 preemptions from one seed
may need 1 from another, and no single drop, lower target or earlier move
leads from the one to the other. So the pass-based result is then confirmed
by a bounded exhaustive search (``explore``) for the same oracle with 0, 1,
... fewer preemptions than it has: what that finds is shrunk again and
returned, and when every smaller bound is exhausted the count is the true
minimum for that oracle (``Shrunk.minimal``). The search runs without the
partial-order reduction: sleep sets keep one interleaving of each class of
equivalent ones, not the one with the fewest preemptions (Coons, Musuvathi
and McKinley, "Bounded Partial-Order Reduction", OOPSLA 2013). It has a run
limit; a confirmation cut short by it says so (``Shrunk.cut_short``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from actors import RunResult, sort_key

from . import interrupt
from .api import Config
from .explore import Counting, Verdict, explore_direct
from .strategies import Sparse

#: candidate runs a shrink may try before it settles for what it has
MAX_SHRINK_RUNS = 2000
#: runs the confirmation may spend searching for fewer preemptions, over all bounds
MAX_CONFIRM_RUNS = 3000

Preemptions = dict[int, int]


@attrs.frozen
class Shrunk:
    """The simplest failing run found, and what it took."""

    result: RunResult
    runs: int  # the passes' candidate runs and the confirmation's, together
    #: the preemption bound whose exhaustive search stopped at its run limit
    #: (None: every bound below the result's count was exhausted, or not searched)
    cut_short: int | None = None
    confirm_limit: int = MAX_CONFIRM_RUNS
    interrupted: bool = False  # stopped by a signal (interrupt.requested), not by a limit

    @property
    def minimal(self) -> bool:
        """No schedule with fewer preemptions fails with the same oracle: proved."""
        return self.cut_short is None and not self.interrupted

    def note(self) -> str:
        """Whether the count is the fewest, in words."""
        if self.minimal:
            return "no schedule with fewer preemptions fails this way"
        if self.interrupted:
            return "fewer not ruled out: shrinking was interrupted"
        plural = "" if self.cut_short == 1 else "s"
        return (
            f"fewer not ruled out: the search of schedules with at most {self.cut_short}"
            f" preemption{plural} stopped at its limit of {self.confirm_limit} runs"
        )


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
    confirm_runs: int = MAX_CONFIRM_RUNS,
    stop: Callable[[], bool] = interrupt.requested,
) -> Shrunk:
    """Shrink the failing ``result`` of ``config`` to its fewest preemptions.

    The passes first, then the confirmation (``confirm_runs=0`` skips it);
    returns ``result`` unchanged if nothing simpler fails.

    When ``stop()`` says so, returns the simplest failing run found so far.

    Raises:
        ValueError: if ``result`` did not fail.
    """
    if result.finding is None:
        raise ValueError("only a failing run can be shrunk")
    oracle = result.finding.oracle
    best, runs = _by_passes(config, result, max_runs, stop)
    spent = 0
    for bound in range(best.schedule.preemptions):
        if spent >= confirm_runs or stop():
            return Shrunk(best, runs + spent, bound, confirm_runs, interrupted=stop())

        def fewer(tried: RunResult, bound: int = bound) -> bool:
            assert tried.finding is not None
            return tried.finding.oracle == oracle and tried.schedule.preemptions <= bound

        limit = confirm_runs - spent
        search = explore_direct(
            config, preemptions=bound, reduce=False, limit=limit, accept=fewer, counting=Counting.CHOICES,
            stop=stop,
        )
        spent += search.executions + search.pruned
        if search.result is not None:  # fewer preemptions than the passes found: the minimum
            simpler, more = _by_passes(config, search.result, max_runs, stop)
            return Shrunk(simpler, runs + more + spent, None, confirm_runs)
        if search.verdict in (Verdict.LIMIT, Verdict.INTERRUPTED):
            interrupted = search.verdict is Verdict.INTERRUPTED
            return Shrunk(best, runs + spent, bound, confirm_runs, interrupted=interrupted)
    return Shrunk(best, runs + spent, None, confirm_runs)  # every smaller bound exhausted


def _by_passes(
    config: Config, result: RunResult, max_runs: int, stop: Callable[[], bool]
) -> tuple[RunResult, int]:
    """The passes, repeated until none makes progress: the simplest run, and the runs tried."""
    assert result.finding is not None
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
                    return best, runs
                runs += 1
                tried = config.run_direct(Sparse(dict(candidate)))
                if (
                    tried.finding is not None
                    and tried.finding.oracle == oracle
                    and sort_key(tried.schedule) < sort_key(best.schedule)
                ):
                    best, current, progress = tried, Sparse.from_schedule(tried.schedule).preemptions, True
                    break  # restart this pass from the simpler schedule
    return best, runs
