"""Searches that also say which race is the simplest: fewest steps, or fewest preemptions.

- ``explore_bfs``: uniform-cost search over states (breadth-first by steps
  run): every state is reached first by a shortest run, so the first violation
  popped has the fewest steps of any. Each state is expanded by replaying its
  prefix and each child by one more decision; states are deduplicated by their
  fingerprint (no partial-order reduction: sleep sets would skip the short
  orders of independent steps). A proof needs more than the states being
  exhausted: the stateless search also judges runs by the step bound, so if
  the graph of states it built has a cycle, or a path as long as the bound,
  or the table filled up, the verdict is left to the depth-first search.
- ``explore_fewest_preemptions``: iterative deepening of the preemption bound
  (0, 1, 2 ...), each bound exhausted statefully without sleep sets (which,
  combined with a bound, may reach a race only through a schedule with more
  preemptions: Coons et al., "Bounded partial-order reduction", OOPSLA 2013).
  The first violation is found at the smallest bound that has one; a bound
  that cut nothing is a proof.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from actors import RunResult, ScheduleDiverged

from . import interrupt
from .api import Config
from .explore import (
    DEFAULT_MAX_STATES,
    Accept,
    Exploration,
    Progress,
    Verdict,
    _any,
    explore_direct,
    run_direct,
)


class _Halt(Exception):
    """Raised at the first decision after a probe's prefix: its state is read, the run stops."""


@attrs.define(eq=False)
class _Probe:
    """Replays ``prefix`` (actor indices), then records the state it reaches and stops."""

    prefix: tuple[int, ...]
    steps: int = 0
    key: bytes = b""
    runnable: tuple[int, ...] = ()
    _execution: Any = None
    _depth: int = 0

    def attach(self, execution: Any) -> None:
        self._execution = execution

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        if self._depth < len(self.prefix):
            actor = self.prefix[self._depth]
            self._depth += 1
            if actor not in runnable:
                raise ScheduleDiverged("a prefix no longer fits")
            return list(runnable).index(actor)
        self.key = self._execution.fingerprint()[0]
        self.runnable = tuple(sorted(runnable))
        raise _Halt

    def observe(self, actor: int, access: object) -> None:
        self.steps += 1


def _longest(root: bytes, edges: dict[bytes, list[tuple[bytes | None, int]]]) -> float:
    """The most steps of a path from ``root`` (inf if the graph has a cycle)."""
    best: dict[bytes, float] = {}
    on_stack: set[bytes] = set()
    stack: list[tuple[bytes, int]] = [(root, 0)]
    on_stack.add(root)
    while stack:
        node, i = stack.pop()
        out = edges.get(node, [])
        if i < len(out):
            stack.append((node, i + 1))
            child, _ = out[i]
            if child is None or child in best:
                continue
            if child in on_stack:
                return float("inf")
            on_stack.add(child)
            stack.append((child, 0))
            continue
        on_stack.discard(node)
        best[node] = max((w + (0 if c is None else best[c]) for c, w in out), default=0)
    return best[root]


def explore_bfs(
    config: Config,
    *,
    limit: int = 100_000,
    accept: Accept = _any,
    stop: Callable[[], bool] = interrupt.requested,
    max_states: int = DEFAULT_MAX_STATES,
    progress: Callable[[Progress], None] | None = None,
) -> Exploration:
    """Search every state, nearest first: a violation found has the fewest steps of any."""
    order = itertools.count()
    runs = 0
    found: RunResult | None = None
    seen: dict[bytes, int] = {}  # state -> fewest steps to it
    edges: dict[bytes, list[tuple[bytes | None, int]]] = {}
    full = False

    def probe(prefix: tuple[int, ...]) -> _Probe | RunResult:
        nonlocal runs
        runs += 1
        if progress is not None:
            progress(Progress(runs, len(seen), len(prefix)))
        strategy = _Probe(prefix)
        try:
            return run_direct(config, strategy)
        except _Halt:
            return strategy

    def end(verdict: Verdict, result: RunResult | None = None) -> Exploration:
        return Exploration(verdict, runs, 0, None, result, states=len(seen), table_full=full)

    first = probe(())
    if isinstance(first, RunResult):  # a run without any decision
        hit = first.finding is not None and accept(first)
        return end(Verdict.FOUND if hit else Verdict.EXHAUSTED, first if hit else None)
    root = first.key
    seen[root] = first.steps
    heap: list[tuple[int, int, tuple[int, ...], bytes, tuple[int, ...]]] = [
        (first.steps, next(order), (), root, first.runnable)
    ]
    while heap:
        steps, _, prefix, key, runnable = heapq.heappop(heap)
        if found is not None and len(found.steps) <= steps + 1:
            break  # nothing left can fail in fewer steps
        if seen.get(key, steps) < steps:
            continue  # reached by a shorter run since
        for actor in runnable:
            if stop():
                return end(Verdict.INTERRUPTED, found)
            if runs >= limit:
                return end(Verdict.LIMIT, found)
            child = probe((*prefix, actor))
            if isinstance(child, RunResult):
                edges.setdefault(key, []).append((None, len(child.steps) - steps))
                if child.finding is not None and accept(child):
                    if found is None or len(child.steps) < len(found.steps):
                        found = child
                continue
            edges.setdefault(key, []).append((child.key, child.steps - steps))
            known = seen.get(child.key)
            if known is not None and known <= child.steps:
                continue
            if known is None and len(seen) >= max_states:
                full = True  # not remembered: explored again wherever it is reached
            else:
                seen[child.key] = child.steps
            heapq.heappush(heap, (child.steps, next(order), (*prefix, actor), child.key, child.runnable))
    if found is not None:
        return end(Verdict.FOUND, found)
    if full or first.steps + _longest(root, edges) >= config.max_steps:
        # a cycle, or a run as long as the step bound: the step bound judges, as depth first does
        shown = None if progress is None else lambda p: progress(attrs.evolve(p, runs=runs + p.runs))
        dfs = explore_direct(config, preemptions=None, limit=max(limit - runs, 1), accept=accept, stop=stop,
                             max_states=max_states, progress=shown)
        return attrs.evolve(dfs, executions=dfs.executions + runs)
    return end(Verdict.EXHAUSTED)


def explore_fewest_preemptions(
    config: Config,
    *,
    limit: int = 100_000,
    accept: Accept = _any,
    stop: Callable[[], bool] = interrupt.requested,
    max_states: int = DEFAULT_MAX_STATES,
    progress: Callable[[Progress], None] | None = None,
) -> Exploration:
    """Exhaust bound 0, 1, 2 ...: a violation found has the fewest preemptions of any."""
    executions = pruned = 0
    for bound in itertools.count():
        e = explore_direct(config, preemptions=bound, reduce=False, limit=max(limit - executions - pruned, 1),
                           accept=accept, stop=stop, max_states=max_states, progress=progress)
        executions, pruned = executions + e.executions, pruned + e.pruned
        e = attrs.evolve(e, executions=executions, pruned=pruned)
        if e.verdict is not Verdict.EXHAUSTED:
            return e
        if not e.cut_by_bound:  # the bound kept nothing out: every schedule was run
            return attrs.evolve(e, bound=None)
    raise AssertionError("unreachable")
