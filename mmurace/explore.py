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

Unbounded, a step that touches nothing (an empty footprint) is also run
alone: the other actors' branches at its decision are skipped, since each of
their schedules only moves that step later (a persistent set; it changes
nothing an oracle reads, so no judged state is lost).

The search is complete for the bound when it exhausts the tree: every
interleaving with at most that many preemptions, up to reordering of
independent steps, was run.

Stateful (the default, ``StateTable``): at every decision the state is
fingerprinted (``actors.runtime.fingerprint``: the model, each actor's
coroutine frames and locals, lockdep's history) and a state already explored
is not explored again, as SPIN does; a state is re-reached by replaying its
prefix (the direct executor is deterministic). States are remembered once
their subtree is done (post-order, so a cycle is never cut: it runs into the
step bound, as stateless search does), with the sleep set they were explored
under, combined as Godefroid's sleep sets with state caching (thesis,
LNCS 1032, 1996, section 6.2): a visit with a sleep set Z' of a state stored
with Z is cut if every enabled actor of Z is in Z'; otherwise only the
actors of Z that are not in Z' are explored, with Z ∩ Z', which is what is
stored. A state is also remembered with the longest run explored below it,
and is cut only where that run stays within the step bound (``max_steps``),
so the step bound judges as it would without the table. With a preemption
bound, the preemptions used and the actor that ran last are part of the key.
The table has a size (``max_states``); once full, new states are no longer
remembered (the search goes on stateless below them: slower, never unsound).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator, Sequence
from typing import Any

import attrs

from actors import RunResult, ScheduleDiverged, Strategy
from mmu import Access

from . import interrupt
from .api import Config
from .errors import UsageError


def refused(config: Config, diverged: ScheduleDiverged) -> UsageError:
    """A search's replay that did not repeat its run: the world is not deterministic."""
    return UsageError(
        f"{config.describe()}: nondeterministic scenario ({diverged}): the same decisions gave"
        " another run, so no search can cover its schedules; keep all state in the model or the"
        " actors' locals (docs/exploring.md, section 4)"
    )


def run_direct(config: Config, strategy: Strategy) -> RunResult:
    """One run of a search, on the direct executor (``refused`` if it does not repeat)."""
    try:
        return config.run_direct(strategy)
    except ScheduleDiverged as diverged:
        raise refused(config, diverged) from None


class Counting(enum.Enum):
    """What the preemption bound counts."""

    SWITCHES = "switching away from an actor that could go on"
    CHOICES = "every decision other than the default, as ``Schedule.preemptions`` counts"


class Order(enum.Enum):
    """In which order ``mmurace explore`` visits schedules."""

    DFS = "dfs"  # depth first: the fastest proof
    BFS = "bfs"  # nearest states first: a race found has the fewest steps
    PREEMPTIONS = "preemptions"  # bounds 0, 1, 2 ...: a race found has the fewest preemptions


#: the footprint of a step that read and wrote nothing the model records
_NOTHING = Access()


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
    key: object = None  # the state's key in the table (stateful search)
    steps: int = 0  # steps run before this decision
    height: int = 0  # the most steps of a run explored below it
    #: not to explore here: explored from this state on an earlier visit, or only reordering a quiet step
    skip: frozenset[int] = frozenset()

    def cost(self, actor: int) -> int:
        """Preemptions used after choosing ``actor`` here."""
        return self.preemptions + (self.current in self.runnable and actor != self.current)


#: states a stateful search remembers by default (about 150 bytes each)
DEFAULT_MAX_STATES = 2_000_000


def _mask(actors: object) -> int:
    return sum(1 << a for a in actors)  # type: ignore[attr-defined]


@attrs.define(eq=False)
class StateTable:
    """The states explored so far: key -> (actors asleep when explored, as a bit mask;
    the most steps of a run explored below it; the preemptions used to reach it).

    With a preemption bound a state reached with fewer preemptions used has more
    of its subtree within the bound: a visit is covered by one that used no more.
    """

    max_states: int = DEFAULT_MAX_STATES
    max_steps: int = 2000
    entries: dict[object, tuple[int, int, int]] = attrs.field(factory=dict)
    hits: int = 0  # visits cut because the state was explored already
    full: bool = False  # a state was not remembered: the table was full
    opaque: set[str] = attrs.field(factory=set)  # types the fingerprint could not see into

    def store(self, node: _Node) -> None:
        """Remember ``node``'s state, its subtree done (unless a run below it met the step bound)."""
        if node.key is None or node.steps + node.height >= self.max_steps:
            return
        old = self.entries.get(node.key)
        if old is None and len(self.entries) >= self.max_states:
            self.full = True
            return
        used = node.preemptions if isinstance(node.key, tuple) else 0  # counted under a bound only
        if old is not None and old[2] < used:
            return  # the one kept covers more
        height = node.height if old is None or old[2] > used else max(old[1], node.height)
        self.entries[node.key] = (_mask(node.sleep), height, used)


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
    table: StateTable | None = None
    _execution: Any = None  # the run, for its fingerprint (stateful search)
    #: the most steps a run through here would take, when cut at a state explored already
    end: int | None = None
    cut_by_bound: bool = False  # an actor was not explored because of the bound
    prefix: tuple[int, ...] = ()  # decisions every run starts with (actor indices)
    trail: Sequence[int] = ()  # the actor of each step of the last run (``DirectExecution.trail``)

    def attach(self, execution: Any) -> None:
        """Called by the direct executor at the start of a run: the state is asked of it."""
        self._execution = execution

    def replay(self) -> tuple[Sequence[int], dict[int, int]] | None:
        """The steps before the path's last decision, for the direct executor to run
        without asking (``DirectExecution.replay``): the last run ran them, up to there."""
        path = self.path
        if len(path) < 2 or len(self.trail) < path[-1].steps:
            return None
        self._depth = len(path) - 1
        return self.trail[: path[-1].steps], {n.steps: n.runnable.index(n.chosen) for n in path[:-1]}

    def replaying(self) -> bool:
        """Whether the steps now run lie before the path's last decision: an earlier run
        ran them (the same, the executor being deterministic), judged and observed them."""
        return self._depth < len(self.path)

    def ran(self) -> Sequence[int]:
        """The actor of each step the run closed (none known: the Trio executor's)."""
        return self._execution.trail if self._execution is not None else ()

    def _key(self, current: int | None) -> object:
        digest, opaque = self._execution.fingerprint()
        if opaque:
            assert self.table is not None
            self.table.opaque |= opaque
        return digest if self.bound is None else (digest, current)

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        depth = self._depth
        if depth < len(self.path):
            node = self.path[depth]
            if tuple(runnable) != node.runnable:
                raise ScheduleDiverged("runnable actors differ on replay")
            if depth + 1 < len(self.path):  # replayed: its steps are neither observed nor judged
                self._depth = depth + 1
                self._preemptions = node.cost(node.chosen)
                return node.runnable.index(node.chosen)
        else:
            if self.counting is Counting.CHOICES:
                current = runnable[0]  # the default, whoever ran last: any other choice costs one
            preemptions = self._preemptions
            counted = 0 if self.bound is None else preemptions  # what the table compares
            steps = self._execution.step_index if self._execution is not None else 0
            probe = _Node(tuple(runnable), current, preemptions, dict(self._sleep), -1, steps=steps)
            table = self.table
            if self._depth < len(self.prefix):  # this part of a split search starts here
                fixed = self.prefix[self._depth]
                if fixed not in runnable:
                    raise ScheduleDiverged("a prefix no longer fits")
                probe.sleep, probe.skip = {}, frozenset(a for a in runnable if a != fixed)
            elif table is not None and self._execution is not None:
                probe.key = self._key(current)
                entry = table.entries.get(probe.key)
                if (
                    entry is not None and steps + entry[1] < table.max_steps
                    and entry[2] <= counted
                ):
                    asleep_then, height, used = entry
                    if asleep_then & _mask(runnable) & ~_mask(self._sleep) == 0:
                        table.hits += 1
                        self.end = steps + height
                        raise PrunedRun
                    if used < counted:  # not the same visit: explored afresh
                        asleep_then = -1
                    # explore only what was asleep then and is awake now (Godefroid 1996, 6.2)
                    probe.sleep = {a: acc for a, acc in probe.sleep.items() if asleep_then >> a & 1}
                    probe.skip = frozenset(a for a in runnable if not asleep_then >> a & 1)
            awake = [a for a in runnable if a not in probe.sleep and a not in probe.skip]
            allowed = [a for a in awake if self.bound is None or probe.cost(a) <= self.bound]
            if len(allowed) < len(awake):
                self.cut_by_bound = True
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
            if self.reduce and self.bound is None and access == _NOTHING:
                # a step that touches nothing commutes with every step and stays enabled:
                # {actor} is a persistent set here, the other actors' branches reorder it
                node.skip = node.skip.union(a for a in node.runnable if a != actor)
        if actor in self._sleep:  # a forced step of a sleeping actor: covered elsewhere
            raise PrunedRun
        if self.reduce and self._sleep:
            self._sleep = {a: acc for a, acc in self._sleep.items() if not acc.conflicts(access)}


def _backtrack(path: list[_Node], bound: int | None, table: StateTable | None = None) -> tuple[bool, bool]:
    """Move the path to its next unexplored branch: (False when the tree is exhausted,
    whether the bound kept an actor from being explored)."""
    cut = False
    while path:
        node = path[-1]
        node.done[node.chosen] = node.access or Access()
        for actor in node.runnable:
            if actor in node.done or actor in node.sleep or actor in node.skip:
                continue
            if bound is not None and node.cost(actor) > bound:
                cut = True
                continue
            node.chosen, node.access = actor, None
            return True, cut
        path.pop()
        if table is not None:
            table.store(node)
    return False, cut


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
    pruned: int  # runs cut short: every runnable actor slept, or a state explored already
    bound: int | None
    result: RunResult | None  # the violating run, if any
    states: int | None = None  # distinct states remembered (None: a stateless search)
    revisits: int = 0  # runs cut at a state explored already
    table_full: bool = False  # the table filled up: some states were not remembered
    cut_by_bound: bool = False  # the preemption bound kept some schedule from being run


#: which findings end a search (the default: any)
Accept = Callable[[RunResult], bool]


def _any(result: RunResult) -> bool:
    return True


def _search(
    bound: int | None, reduce: bool, limit: int, accept: Accept, counting: Counting, stop: Callable[[], bool],
    table: StateTable | None = None, prefix: Sequence[int] = (),
) -> Generator[_PathStrategy, RunResult | None, Exploration]:
    """The search, as a generator: yields the strategy of each run and gets back
    its result (None: pruned), so that one loop serves both kinds of run.

    ``prefix``: decisions (actor indices) every run starts with; only what lies
    below them is explored (one part of a search split over processes).
    """
    path: list[_Node] = []
    executions = pruned = 0
    cut = False
    trail: Sequence[int] = ()

    def end(verdict: Verdict, result: RunResult | None = None) -> Exploration:
        return Exploration(
            verdict, executions, pruned, bound, result,
            states=None if table is None else len(table.entries),
            revisits=0 if table is None else table.hits,
            table_full=table is not None and table.full,
            cut_by_bound=cut,
        )

    while True:
        if stop():
            return end(Verdict.INTERRUPTED)
        strategy = _PathStrategy(
            path, bound, reduce, counting, table=table, prefix=tuple(prefix), trail=trail
        )
        result = yield strategy
        trail = strategy.ran()
        cut = cut or strategy.cut_by_bound
        last = len(result.steps) if result is not None else strategy.end
        if last is not None:
            for node in path:
                node.height = max(node.height, last - node.steps)
        if result is None:
            pruned += 1
        else:
            executions += 1
            if result.finding is not None and accept(result):
                return end(Verdict.FOUND, result)
        more, bounded = _backtrack(path, bound, table)
        cut = cut or bounded
        if not more:
            return end(Verdict.EXHAUSTED)
        if executions + pruned >= limit:
            return end(Verdict.LIMIT)


@attrs.frozen
class Progress:
    """How far a search is, after each run: what a progress line shows."""

    runs: int
    states: int | None  # remembered (None: stateless)
    depth: int  # decisions on the current path


def _table(config: Config, stateful: bool, max_states: int) -> StateTable | None:
    return StateTable(max_states, config.max_steps) if stateful else None


def explore_direct(
    config: Config,
    *,
    preemptions: int | None = 2,
    reduce: bool = True,
    limit: int = 100_000,
    accept: Accept = _any,
    counting: Counting = Counting.SWITCHES,
    stop: Callable[[], bool] = interrupt.requested,
    stateful: bool = True,
    max_states: int = DEFAULT_MAX_STATES,
    prefix: Sequence[int] = (),
    progress: Callable[[Progress], None] | None = None,
) -> Exploration:
    """``explore`` with the direct executor, outside any event loop (for the shrinker,
    and for every stateful search: the state is read from coroutines stepped by hand)."""
    table = _table(config, stateful, max_states)
    search = _search(preemptions, reduce, limit, accept, counting, stop, table, prefix)
    runs = 0
    try:
        strategy = next(search)
    except StopIteration as end:
        return end.value
    while True:
        try:
            result: RunResult | None = run_direct(config, strategy)
        except PrunedRun:
            result = None
        runs += 1
        if progress is not None:
            progress(Progress(runs, None if table is None else len(table.entries), len(strategy.path)))
        try:
            strategy = search.send(result)
        except StopIteration as end:
            return end.value


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
    stateful: bool = True,
    max_states: int = DEFAULT_MAX_STATES,
) -> Exploration:
    """Run every schedule of ``config`` within the preemption bound, depth first.

    Stops at the first violation that ``accept`` takes (a run whose finding it
    refuses counts as explored), after ``limit`` runs, when the tree is
    exhausted, or when ``stop()`` says so between two runs. ``stateful``: do
    not explore a state twice (``StateTable``, at most ``max_states``); the runs
    are then on the direct executor whatever ``config.executor`` says.
    """
    if stateful:
        return explore_direct(
            config, preemptions=preemptions, reduce=reduce, limit=limit, accept=accept, counting=counting,
            stop=stop, max_states=max_states, progress=lambda p: progress(p.runs),
        )
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
        except ScheduleDiverged as diverged:
            raise refused(config, diverged) from None
        runs += 1
        progress(runs)
        try:
            strategy = search.send(result)
        except StopIteration as end:
            return end.value
