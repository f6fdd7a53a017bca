"""Campaigns on many cores, or on a Dask cluster: seeds in batches, findings merged in seed order.

A seeded campaign (random walk, PCT) is a pure function of its seeds: seed s
always gives the same schedule. So the seeds are cut into disjoint,
consecutive batches, each batch is run where there is a free core (a
standard-library process pool, or the workers of an existing Dask scheduler
with ``cluster=ADDRESS``), each worker groups what its batch found, and the
batches are merged back in seed order. The result is the one a single
process gives for the same seeds, whatever the number of workers or the
order in which batches end: the same groups, in the same order, with the
same first finding and the same counts; when a campaign stops at its first
finding, it is the lowest failing seed, found after the same number of
schedules.

The first few seeds are run in this process (``PROBE``): most races here
show in their first few dozen schedules, and then no pool is started at all;
nor is one when the rest would take one process less than ``POOL_WORTH``
seconds (timed on those first seeds), since starting it costs about half a
second. Where the seeds run never changes what they find.

Configurations travel as cloudpickle bytes, so that a scenario loaded from a
file (a module no worker can import) runs on workers too. Local workers are
started by a fork server; as with ``spawn``, each imports the program's
main module again, so a script that runs a campaign on several processes
must keep its work under ``if __name__ == "__main__":`` (the ``mmurace``
command and pytest do).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import time
from collections.abc import Callable, Sequence

import attrs
import cloudpickle
import trio

from actors import Executor, RunResult, Strategy

from .api import Config
from .strategies import Pct, RandomWalk
from .workers import pool

#: seeds run in this process before any pool is started
PROBE = 50
#: bounds on the seeds of one batch sent to a worker: small enough to share the
#: work out, large enough that a batch's round trip stays a small part of it
#: (bench/jobs.py --schedules 1650: batches of 104 race_remap schedules, tens
#: of milliseconds each, cost 0.96x the CPU of running them in one process)
MIN_BATCH, MAX_BATCH = 100, 2000
#: batches in flight per worker: one running, one waiting
IN_FLIGHT = 2
#: seconds of work left (on one process) under which no local pool is started
POOL_WORTH = 2.0

Location = tuple[str, str, str]


def location(result: RunResult) -> Location:
    """(oracle, actor, step label) of the fatal step: what makes findings the same."""
    f = result.finding
    assert f is not None
    step = result.steps[f.step] if 0 <= f.step < len(result.steps) else None
    return (f.oracle, step.actor if step else "-", step.label if step else "-")


def seeded(kind: str, seed: int, depth: int, decisions: int) -> Strategy:
    """The strategy a seed stands for (``kind``: random or pct)."""
    return Pct(seed, depth, decisions) if kind == "pct" else RandomWalk(seed)


def seeded_name(kind: str, seed: int, depth: int) -> str:
    """How a seeded strategy is named in reports."""
    return f"pct --depth {depth} --seed {seed}" if kind == "pct" else f"random --seed {seed}"


@attrs.frozen
class Group:
    """Findings at one location within some seeds: the first, and how many."""

    location: Location
    seed: int
    result: RunResult
    count: int


@attrs.frozen
class Batch:
    """What consecutive seeds found: groups in order of their first seed."""

    tried: int
    first_at: int | None  # schedules into the batch at its first finding
    groups: tuple[Group, ...]


@attrs.frozen
class Work:
    """A seeded campaign, as plain data: what every batch needs but its seeds."""

    config: bytes  # cloudpickled Config
    kind: str
    depth: int
    decisions: int
    keep_going: bool

    @classmethod
    def of(cls, config: Config, kind: str, depth: int, decisions: int, keep_going: bool) -> Work:
        return cls(cloudpickle.dumps(config), kind, depth, decisions, keep_going)


@functools.lru_cache(maxsize=4)
def _config(pickled: bytes) -> Config:
    config = cloudpickle.loads(pickled)
    assert isinstance(config, Config)
    return config


@attrs.define
class _Tally:
    """Runs of consecutive seeds, grouped as they come."""

    keep_going: bool
    progress: Callable[[int], None] = lambda n: None
    tried: int = 0
    first_at: int | None = None
    groups: dict[Location, Group] = attrs.field(factory=dict)

    def add(self, seed: int, result: RunResult) -> bool:
        """Count one run; False once the batch should stop."""
        self.tried += 1
        self.progress(self.tried)
        if result.finding is None:
            return True
        self.first_at = self.first_at or self.tried
        where = location(result)
        known = self.groups.get(where)
        self.groups[where] = Group(where, seed, result, 1) if known is None else attrs.evolve(
            known, count=known.count + 1
        )
        return self.keep_going

    def batch(self) -> Batch:
        return Batch(self.tried, self.first_at, tuple(self.groups.values()))


def run_batch(work: Work, start: int, stop: int) -> Batch:
    """Run seeds ``start`` to ``stop - 1`` in a worker (arguments and result are plain data)."""
    config = _config(work.config)
    tally = _Tally(work.keep_going)
    if config.executor is Executor.DIRECT:
        for seed in range(start, stop):
            if not tally.add(seed, config.run_direct(seeded(work.kind, seed, work.depth, work.decisions))):
                break
        return tally.batch()
    trio.run(_run_seeds, config, work, range(start, stop), tally)
    return tally.batch()


async def _run_seeds(config: Config, work: Work, seeds: range, tally: _Tally) -> None:
    for seed in seeds:
        if not tally.add(seed, await config.run(seeded(work.kind, seed, work.depth, work.decisions))):
            break


async def _run_here(
    config: Config, work: Work, seeds: range, progress: Callable[[int], None], base: int
) -> Batch:
    """Run ``seeds`` in this process, in its running Trio loop."""
    tally = _Tally(work.keep_going, functools.partial(_offset, progress, base))
    await _run_seeds(config, work, seeds, tally)
    return tally.batch()


def _offset(progress: Callable[[int], None], base: int, n: int) -> None:
    progress(base + n)


def merge(batches: Sequence[Batch]) -> Batch:
    """Batches of consecutive seeds, in seed order, as one: what one process would have found.

    A batch that stopped at a finding ends the merge there: later batches
    were run only because the workers could not know.
    """
    groups: dict[Location, Group] = {}
    tried, first_at = 0, None
    for batch in batches:
        if first_at is None and batch.first_at is not None:
            first_at = tried + batch.first_at
        tried += batch.tried
        for g in batch.groups:
            known = groups.get(g.location)
            groups[g.location] = attrs.evolve(known, count=known.count + g.count) if known else g
    return Batch(tried, first_at, tuple(groups.values()))


def cut(seeds: range, workers: int) -> list[range]:
    """Cut ``seeds`` into disjoint batches of one size, in order: about 8 per worker."""
    size = max(MIN_BATCH, min(MAX_BATCH, -(-len(seeds) // (workers * 8))))
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


async def campaign(
    config: Config,
    work: Work,
    seeds: range,
    *,
    jobs: int = 1,
    cluster: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[Batch, int]:
    """Run ``seeds`` of ``work`` (which is ``config``'s) on ``jobs`` processes or the cluster's workers.

    Returns the merged batch, and the schedules actually run: more than the
    merged count when the campaign stopped at a finding that other workers
    ran past.
    """
    started = time.perf_counter()
    probe = await _run_here(config, work, seeds[:PROBE], progress, 0)
    rest = seeds[probe.tried :]
    if not rest or (probe.first_at is not None and not work.keep_going):
        return probe, probe.tried
    left = (time.perf_counter() - started) / probe.tried * len(rest)
    if cluster is None and (jobs == 1 or left < POOL_WORTH):
        done, run = [probe], probe.tried
        for r in cut(rest, 1):
            done.append(await _run_here(config, work, r, progress, run))
            run += done[-1].tried
            if done[-1].first_at is not None and not work.keep_going:
                break
        return merge(done), run
    with pool(jobs, cluster) as (executor, workers):
        return _spread(executor, workers, work, probe, cut(rest, workers), progress)


def _spread(
    executor: cf.Executor,
    workers: int,
    work: Work,
    probe: Batch,
    ranges: list[range],
    progress: Callable[[int], None],
) -> tuple[Batch, int]:
    """Keep every worker busy with the next batches; merge them in order once
    every batch up to the first that stopped at a finding is in."""
    results: dict[int, Batch] = {}
    pending: dict[cf.Future[Batch], int] = {}
    upcoming = 0
    stop_at = len(ranges)  # the lowest batch that stopped at a finding: none after it counts
    run = probe.tried
    while not all(i in results for i in range(min(stop_at + 1, len(ranges)))):
        while upcoming < min(stop_at, len(ranges)) and len(pending) < IN_FLIGHT * workers:
            r = ranges[upcoming]
            pending[executor.submit(run_batch, work, r.start, r.stop)] = upcoming
            upcoming += 1
        finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for future in finished:
            i = pending.pop(future)
            results[i] = batch = future.result()
            run += batch.tried
            progress(run)
            if batch.first_at is not None and not work.keep_going:
                stop_at = min(stop_at, i)
    for future in pending:
        future.cancel()
    return merge([probe, *(results[i] for i in range(min(stop_at + 1, len(ranges))))]), run
