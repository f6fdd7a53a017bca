"""Exhaustive bounded search: depth-first over every scheduling decision.

Stateless model checking in the style of VeriSoft and CHESS: each execution
re-runs the scenario from scratch, replaying a prefix of decisions and then
extending it; when it ends, the last decision with an unexplored alternative
is changed and the search goes on. Two reductions keep it small:

- a preemption bound (Musuvathi & Qadeer, PLDI 2007): switching away from an
  actor that could go on costs one preemption; alternatives beyond the bound
  are not explored (``None``: unbounded);
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
from collections.abc import Callable, Sequence

import attrs

from actors import RunResult
from mmu import Access

from . import interrupt
from .api import Config


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


async def explore(
    config: Config,
    *,
    preemptions: int | None = 2,
    reduce: bool = True,
    limit: int = 100_000,
    progress: Callable[[int], None] = lambda n: None,
    stop: Callable[[], bool] = interrupt.requested,
) -> Exploration:
    """Run every schedule of ``config`` within the preemption bound, depth first.

    Stops at the first violation, after ``limit`` runs, when the tree is
    exhausted, or when ``stop()`` says so between two runs.
    """
    path: list[_Node] = []
    executions = pruned = 0
    while True:
        if stop():
            return Exploration(Verdict.INTERRUPTED, executions, pruned, preemptions, None)
        strategy = _PathStrategy(path, preemptions, reduce)
        try:
            result = await config.run(strategy)
        except PrunedRun:
            pruned += 1
        else:
            executions += 1
            if result.finding is not None:
                return Exploration(Verdict.FOUND, executions, pruned, preemptions, result)
        progress(executions + pruned)
        if not _backtrack(path, preemptions):
            return Exploration(Verdict.EXHAUSTED, executions, pruned, preemptions, None)
        if executions + pruned >= limit:
            return Exploration(Verdict.LIMIT, executions, pruned, preemptions, None)
