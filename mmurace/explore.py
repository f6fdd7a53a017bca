"""Exhaustive bounded search: depth-first over every scheduling decision.

Stateless model checking in the style of VeriSoft and CHESS: each execution
re-runs the scenario from scratch, replaying a prefix of decisions and then
extending it; when it ends, the last decision with an unexplored alternative
is changed and the search goes on. Two reductions keep it small:

- a preemption bound (Musuvathi & Qadeer, PLDI 2007): switching away from an
  actor that could go on costs one preemption; alternatives beyond the bound
  are not explored (``None``: unbounded). The shrinker counts as schedule
  strings do instead (``Counting.CHOICES``): every decision other than the
  default costs one, even when the actor that ran last cannot go on;
- sleep sets (Godefroid, "Partial-Order Methods for the Verification of
  Concurrent Systems", 1996), from the footprints the model records: after
  exploring actor a at a state, a sleeps in the sibling branches until some
  executed step conflicts with what a's step touched, because running a
  there would only reorder independent steps. An execution in which every
  runnable actor sleeps is redundant and cut short (pruned).

The search is complete for the bound when it exhausts the tree: every
interleaving with at most that many preemptions, up to reordering of
independent steps, was run.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator, Sequence

import attrs

from actors import RunResult
from mmu import Access

from . import interrupt
from .api import Config


class Counting(enum.Enum):
    """What the preemption bound counts."""

    SWITCHES = "switching away from an actor that could go on"
    CHOICES = "every decision other than the default, as ``Schedule.preemptions`` counts"


class PrunedRun(Exception):
    """Raised inside a run whose every runnable actor sleeps: nothing new down here."""


@attrs.define(eq=False)
class _Node:
    """One decision on the current path."""

    runnable: tuple[int, ...]
    current: int | None
    preemptions: int  # used before this decision
    sleep: dict[int, Access]  # asleep here, with the footprint of their next step
    chosen: int
    access: Access | None = None  # of the chosen actor's step, once it ran
    done: dict[int, Access] = attrs.field(factory=dict)  # explored here, with footprints

    def cost(self, actor: int) -> int:
        """Preemptions used after choosing ``actor`` here."""
        return self.preemptions + (self.current in self.runnable and actor != self.current)


@attrs.define(eq=False)
class _PathStrategy:
    """Replays the path's decisions, then extends it; keeps the sleep set up to date."""

    path: list[_Node]
    bound: int | None
    reduce: bool
    counting: Counting = Counting.SWITCHES
    _depth: int = 0
    _sleep: dict[int, Access] = attrs.field(factory=dict)
    _pending: _Node | None = None  # the node whose chosen step runs next
    _preemptions: int = 0

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        if self._depth < len(self.path):
            node = self.path[self._depth]
            if tuple(runnable) != node.runnable:
                raise AssertionError("nondeterministic scenario: runnable actors differ on replay")
        else:
            if self.counting is Counting.CHOICES:
                current = runnable[0]  # the default, whoever ran last: any other choice costs one
            awake = [a for a in runnable if a not in self._sleep]
            preemptions = self._preemptions
            probe = _Node(tuple(runnable), current, preemptions, dict(self._sleep), -1)
            allowed = [a for a in awake if self.bound is None or probe.cost(a) <= self.bound]
            if not allowed:
                raise PrunedRun
            probe.chosen = current if current in allowed else allowed[0]
            node = probe
            self.path.append(node)
        self._depth += 1
        if self.reduce:
            self._sleep = {**node.sleep, **node.done}
            self._sleep.pop(node.chosen, None)
        self._pending = node
        self._preemptions = node.cost(node.chosen)
        return node.runnable.index(node.chosen)

    def observe(self, actor: int, access: Access) -> None:
        node = self._pending
        if node is not None and actor == node.chosen:
            node.access, self._pending = access, None
        if actor in self._sleep:  # a forced step of a sleeping actor: covered elsewhere
            raise PrunedRun
        if self.reduce and self._sleep:
            self._sleep = {a: acc for a, acc in self._sleep.items() if not acc.conflicts(access)}


def _backtrack(path: list[_Node], bound: int | None) -> bool:
    """Move the path to its next unexplored branch; False when the tree is exhausted."""
    while path:
        node = path[-1]
        node.done[node.chosen] = node.access or Access()
        for actor in node.runnable:
            if actor in node.done or actor in node.sleep:
                continue
            if bound is not None and node.cost(actor) > bound:
                continue
            node.chosen, node.access = actor, None
            return True
        path.pop()
    return False


class Verdict(enum.Enum):
    """How an exploration ended."""

    FOUND = "found a violation"
    EXHAUSTED = "exhausted"
    LIMIT = "stopped at the execution limit"
    INTERRUPTED = "interrupted"


@attrs.frozen
class Exploration:
    """What the search ran and what it concluded."""

    verdict: Verdict
    executions: int  # complete runs
    pruned: int  # runs cut short because every runnable actor slept
    bound: int | None
    result: RunResult | None  # the violating run, if any


#: which findings end a search (the default: any)
Accept = Callable[[RunResult], bool]


def _any(result: RunResult) -> bool:
    return True


def _search(
    bound: int | None, reduce: bool, limit: int, accept: Accept, counting: Counting, stop: Callable[[], bool]
) -> Generator[_PathStrategy, RunResult | None, Exploration]:
    """The search, as a generator: yields the strategy of each run and gets back
    its result (None: pruned), so that one loop serves both kinds of run."""
    path: list[_Node] = []
    executions = pruned = 0
    while True:
        if stop():
            return Exploration(Verdict.INTERRUPTED, executions, pruned, bound, None)
        result = yield _PathStrategy(path, bound, reduce, counting)
        if result is None:
            pruned += 1
        else:
            executions += 1
            if result.finding is not None and accept(result):
                return Exploration(Verdict.FOUND, executions, pruned, bound, result)
        if not _backtrack(path, bound):
            return Exploration(Verdict.EXHAUSTED, executions, pruned, bound, None)
        if executions + pruned >= limit:
            return Exploration(Verdict.LIMIT, executions, pruned, bound, None)


async def explore(
    config: Config,
    *,
    preemptions: int | None = 2,
    reduce: bool = True,
    limit: int = 100_000,
    progress: Callable[[int], None] = lambda n: None,
    accept: Accept = _any,
    counting: Counting = Counting.SWITCHES,
    stop: Callable[[], bool] = interrupt.requested,
) -> Exploration:
    """Run every schedule of ``config`` within the preemption bound, depth first.

    Stops at the first violation that ``accept`` takes (a run whose finding it
    refuses counts as explored), after ``limit`` runs, when the tree is
    exhausted, or when ``stop()`` says so between two runs.
    """
    search = _search(preemptions, reduce, limit, accept, counting, stop)
    runs = 0
    try:
        strategy = next(search)
    except StopIteration as end:
        return end.value
    while True:
        try:
            result: RunResult | None = await config.run(strategy)
        except PrunedRun:
            result = None
        runs += 1
        progress(runs)
        try:
            strategy = search.send(result)
        except StopIteration as end:
            return end.value


def explore_direct(
    config: Config,
    *,
    preemptions: int | None = 2,
    reduce: bool = True,
    limit: int = 100_000,
    accept: Accept = _any,
    counting: Counting = Counting.SWITCHES,
    stop: Callable[[], bool] = interrupt.requested,
) -> Exploration:
    """``explore`` with the direct executor, outside any event loop (for the shrinker)."""
    search = _search(preemptions, reduce, limit, accept, counting, stop)
    try:
        strategy = next(search)
    except StopIteration as end:
        return end.value
    while True:
        try:
            result: RunResult | None = config.run_direct(strategy)
        except PrunedRun:
            result = None
        try:
            strategy = search.send(result)
        except StopIteration as end:
            return end.value
