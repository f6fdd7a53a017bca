"""An exhaustive search split over processes: each part is the subtree below one prefix.

The first decisions are expanded breadth first (``split``) until there are
a few parts per process; every run starts with exactly one of those prefixes,
so the parts together are the whole tree. Each part is searched on its own
(stateful, with its own table, and sleep sets that start empty at the end of
its prefix: more work than one search wherever the parts share states, never
less coverage; docs/exploring.md has figures), and the
results are merged in prefix order: the violation of the first part that has
one (the same one whatever the timing), and a proof only if every part was
exhausted.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Callable, Sequence

import attrs

from actors import RunResult

from . import interrupt
from .api import Config, configure
from .explore import DEFAULT_MAX_STATES, Exploration, Verdict, explore_direct, run_direct
from .explore_order import _Halt, _Probe
from .workers import POLL_SECONDS, pool

#: parts per process: each part repeats the states it shares with the others
#: (below the first decisions most states are reachable from every prefix), so few
PARTS_PER_JOB = 1


def split(config: Config, parts: int) -> list[tuple[int, ...]]:
    """Prefixes (actor indices at the first decisions) whose subtrees cover every run."""
    frontier: deque[tuple[int, ...]] = deque([()])
    done: list[tuple[int, ...]] = []  # prefixes after which a run makes no more decisions
    while frontier and len(frontier) + len(done) < parts:
        prefix = frontier.popleft()
        probe = _Probe(prefix)
        try:
            run_direct(config, probe)
        except _Halt:
            frontier.extend((*prefix, actor) for actor in probe.runnable)
            continue
        done.append(prefix)
    return sorted([*frontier, *done])


@attrs.frozen
class _Part:
    """What a worker process needs to search one part (plain data: it is pickled)."""

    scenario: str
    design: str
    oracles: tuple[str, ...]
    params: tuple[str, ...]
    max_steps: int
    max_retries: int
    prefix: tuple[int, ...]
    preemptions: int | None
    reduce: bool
    limit: int
    max_states: int


def _search_part(part: _Part) -> Exploration:
    config = configure(part.scenario, part.design, part.oracles, part.params,
                       max_steps=part.max_steps, max_retries=part.max_retries)
    e = explore_direct(config, preemptions=part.preemptions, reduce=part.reduce, limit=part.limit,
                       max_states=part.max_states, prefix=part.prefix, stop=lambda: False)
    if e.result is not None:  # a RunResult travels back; nothing else of the run is needed
        assert isinstance(e.result, RunResult)
    return e


def explore_jobs(
    config: Config,
    jobs: int,
    *,
    preemptions: int | None = None,
    reduce: bool = True,
    limit: int = 100_000,
    max_states: int = DEFAULT_MAX_STATES,
    stop: Callable[[], bool] = interrupt.requested,
    progress: Callable[[int, int, int], None] = lambda done, parts, runs: None,
) -> Exploration:
    """``explore_direct`` over ``jobs`` processes; ``limit`` and ``max_states`` hold for each part."""
    prefixes = split(config, jobs * PARTS_PER_JOB)
    parts = [
        _Part(config.scenario_ref or config.scenario.name, config.design_ref or config.design.name,
              config.oracles, tuple(f"{k}={v}" for k, v in config.params), config.max_steps,
              config.max_retries, prefix, preemptions, reduce, limit, max_states)
        for prefix in prefixes
    ]
    results: list[Exploration | None] = [None] * len(parts)
    with pool(min(jobs, len(parts))) as (executor, _):
        futures = [executor.submit(_search_part, part) for part in parts]
        for i, future in enumerate(futures):
            while True:
                if stop():
                    return _merge(results, Verdict.INTERRUPTED, preemptions)
                try:
                    results[i] = future.result(timeout=POLL_SECONDS)
                    break
                except cf.TimeoutError:
                    continue
            progress(i + 1, len(parts), sum(r.executions + r.pruned for r in results if r is not None))
            found = results[i]
            if found is not None and found.verdict is Verdict.FOUND:  # the first part's, in prefix order
                return _merge(results, Verdict.FOUND, preemptions, found.result)
    limited = any(r is not None and r.verdict is not Verdict.EXHAUSTED for r in results)
    return _merge(results, Verdict.LIMIT if limited else Verdict.EXHAUSTED, preemptions)


def _merge(
    results: Sequence[Exploration | None], verdict: Verdict, bound: int | None,
    result: RunResult | None = None,
) -> Exploration:
    done = [r for r in results if r is not None]
    return Exploration(
        verdict,
        sum(r.executions for r in done),
        sum(r.pruned for r in done),
        bound,
        result,
        states=sum(r.states or 0 for r in done),
        revisits=sum(r.revisits for r in done),
        table_full=any(r.table_full for r in done),
        cut_by_bound=any(r.cut_by_bound for r in done),
    )
