"""Campaigns on many cores, or on a Dask cluster: seeds in batches, findings merged in seed order.

A seeded campaign (random walk, PCT) tries seeds in order. The seeds are
cut into disjoint, consecutive batches, each batch is run where there is a
free core (``workers``: a local process pool, or the workers of an existing
Dask scheduler), each worker groups what its batch found, and the batches
are merged back in seed order. The result is the one a single process gives
for the same seeds, whatever the number of workers or the order in which
batches end: the same groups, in the same order, with the same first
finding and the same counts; when a campaign stops at its first finding, it
is the lowest failing seed, after the same number of schedules.

A random walk's seed alone makes its schedule. PCT's also depends on k, the
decisions its change points are drawn from, which grows to the longest run
the campaign has seen so far (``strategies.pct``): a batch must start from
the k that every seed before it left. A batch is run with the k known when
it is handed out, says which k it started from and which it left, and is
taken in seed order only if it started from the k its predecessors left;
otherwise it is run again with that k. k settles within the first runs, so
a batch is rarely run twice.

The first seeds are run in this process (``PROBE``): most races here show
in their first few dozen schedules, and then no pool is started at all; nor
is one when the rest would take one process less than ``POOL_WORTH``
seconds (timed on those first seeds): too little to share out. Where the
seeds run never changes what they find. A signal asking
to stop (``interrupt``) ends the campaign between two runs here or when the
next batch comes back, with what the batches taken so far found.

Configurations travel as cloudpickle bytes, so that a scenario or design
loaded from a file (a module no spawned or remote worker can import) runs
on workers too.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import time
from collections.abc import Callable, Sequence
from typing import overload

import attrs
import cloudpickle

from actors import Executor, RunResult, Strategy

from . import interrupt
from .api import Config
from .strategies import Pct, RandomWalk
from .workers import POLL_SECONDS, pool

#: seeds run in this process before any pool is started
PROBE = 50
#: bounds on the seeds of one batch sent to a worker: small enough to share the
#: work out, large enough that a batch's round trip stays a small part of it
#: (bench/jobs.py --schedules 1650: batches of 104 race_remap schedules, tens
#: of milliseconds each, cost 0.96x the CPU of running them in one process)
MIN_BATCH, MAX_BATCH = 100, 2000
#: batches in flight per worker: one running, one waiting
IN_FLIGHT = 2
#: seconds of work left (on one process) under which no local pool is started:
#: starting one costs a few tens of milliseconds, and a batch must be worth sending
POOL_WORTH = 0.5

Location = tuple[str, str, str]


def location(result: RunResult) -> Location:
    """(oracle, actor, step label) of the fatal step: what makes findings the same."""
    f = result.finding
    assert f is not None
    step = result.steps[f.step] if 0 <= f.step < len(result.steps) else None
    return (f.oracle, step.actor if step else "-", step.label if step else "-")


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
    k_in: int = 0  # PCT's k at the batch's first seed
    k_out: int = 0  # and after its last run


@attrs.frozen
class Work:
    """A seeded campaign, as plain data: what every batch needs but its seeds."""

    config: bytes  # cloudpickled Config
    kind: str  # random or pct
    depth: int
    decisions: int  # PCT's first k: the random walks' estimate
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

    work: Work
    k: int
    progress: Callable[[int], None] = lambda n: None
    k_in: int = attrs.field(init=False)
    tried: int = 0
    first_at: int | None = None
    groups: dict[Location, Group] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.k_in = self.k

    def strategy(self, seed: int) -> Strategy:
        """The strategy ``seed`` stands for, here."""
        return Pct(seed, self.work.depth, self.k) if self.work.kind == "pct" else RandomWalk(seed)

    def add(self, seed: int, result: RunResult) -> bool:
        """Count one run; False once the batch should stop."""
        self.tried += 1
        if self.work.kind == "pct":  # a random walk has no k
            self.k = max(self.k, len(result.schedule.choices))
        self.progress(self.tried)
        if result.finding is None:
            return True
        self.first_at = self.first_at or self.tried
        where = location(result)
        known = self.groups.get(where)
        self.groups[where] = Group(where, seed, result, 1) if known is None else attrs.evolve(
            known, count=known.count + 1
        )
        return self.work.keep_going

    def batch(self) -> Batch:
        return Batch(self.tried, self.first_at, tuple(self.groups.values()), self.k_in, self.k)


def run_batch(work: Work, start: int, stop: int, k: int) -> Batch:
    """Run seeds ``start`` to ``stop - 1`` from PCT's ``k``, in a worker (plain data in and out)."""
    config = _config(work.config)
    tally = _Tally(work, k)
    if config.executor is Executor.DIRECT:
        for seed in range(start, stop):
            if not tally.add(seed, config.run_direct(tally.strategy(seed))):
                break
        return tally.batch()
    import trio  # only those who run on the Trio executor import it

    # in a thread of its own: a worker forked from inside a Trio run would inherit the run
    with cf.ThreadPoolExecutor(1) as thread:
        thread.submit(trio.run, _run_seeds, config, range(start, stop), tally, lambda: False).result()
    return tally.batch()


async def _run_seeds(config: Config, seeds: range, tally: _Tally, stop: Callable[[], bool]) -> None:
    for seed in seeds:
        if stop() or not tally.add(seed, await config.run(tally.strategy(seed))):
            break


def merge(batches: Sequence[Batch]) -> Batch:
    """Batches of consecutive seeds, in seed order, as one: what one process would have found.

    A batch that stopped at a finding must be the last: later batches were
    run only because the workers could not know.
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
    k_in = batches[0].k_in if batches else 0
    return Batch(tried, first_at, tuple(groups.values()), k_in, batches[-1].k_out if batches else k_in)


@attrs.frozen
class Batches(Sequence[range]):
    """``seeds`` cut into disjoint batches of ``size``, in order (made as asked: a billion
    seeds is half a million batches)."""

    seeds: range
    size: int

    def __len__(self) -> int:
        return -(-len(self.seeds) // self.size)

    @overload
    def __getitem__(self, i: int) -> range: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[range]: ...

    def __getitem__(self, i: int | slice) -> range | Sequence[range]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        start = (i % len(self)) * self.size
        return self.seeds[start : start + self.size]


def cut(seeds: range, workers: int) -> Batches:
    """Cut ``seeds`` into disjoint batches of one size, in order: about 8 per worker."""
    return Batches(seeds, max(MIN_BATCH, min(MAX_BATCH, -(-len(seeds) // (workers * 8)))))


def _done(batch: Batch, work: Work) -> bool:
    return batch.first_at is not None and not work.keep_going


async def campaign(
    config: Config,
    work: Work,
    seeds: range,
    *,
    jobs: int = 1,
    cluster: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
    stop: Callable[[], bool] = interrupt.requested,
) -> tuple[Batch, int]:
    """Run ``seeds`` of ``work`` (which is ``config``'s) on ``jobs`` processes or the cluster's workers.

    Returns the merged batch, and the schedules actually run: more than the
    merged count when other workers ran past the first finding, or a batch
    was run again.
    """

    async def here(r: range, k: int, base: int) -> Batch:
        tally = _Tally(work, k, lambda n: progress(base + n))
        await _run_seeds(config, r, tally, stop)
        return tally.batch()

    started = time.perf_counter()
    done = [await here(seeds[:PROBE], work.decisions, 0)]
    run = done[0].tried
    rest = seeds[run:]
    if not rest or _done(done[0], work) or stop():
        return done[0], run
    left = (time.perf_counter() - started) / run * len(rest)
    if cluster is None and (jobs == 1 or left < POOL_WORTH):
        for r in cut(rest, 1):
            done.append(await here(r, done[-1].k_out, run))
            run += done[-1].tried
            if _done(done[-1], work) or stop():
                break
        return merge(done), run
    with pool(jobs, cluster) as (executor, workers):
        return _spread(executor, workers, work, done[0], cut(rest, workers), progress, stop)


def _spread(
    executor: cf.Executor,
    workers: int,
    work: Work,
    first: Batch,
    ranges: Sequence[range],
    progress: Callable[[int], None],
    stop: Callable[[], bool],
) -> tuple[Batch, int]:
    """Keep every worker busy with the next batches, and take them in seed order: each
    one from the k the batches before it left (run again if it started from another),
    up to the first that stopped at a finding."""
    taken, k = [first], first.k_out
    back: dict[int, Batch] = {}
    pending: dict[cf.Future[Batch], int] = {}
    upcoming, run = 0, first.tried

    def hand_out(i: int) -> None:
        pending[executor.submit(run_batch, work, ranges[i].start, ranges[i].stop, k)] = i

    while len(taken) <= len(ranges) and not _done(taken[-1], work) and not stop():
        while upcoming < len(ranges) and len(pending) < IN_FLIGHT * workers:
            hand_out(upcoming)
            upcoming += 1
        finished, _ = cf.wait(pending, timeout=POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
        for future in finished:
            back[pending.pop(future)] = batch = future.result()
            run += batch.tried
            progress(run)
        while (i := len(taken) - 1) in back and not _done(taken[-1], work):
            batch = back.pop(i)
            if batch.k_in != k:  # k grew in a batch before it: run it again from there
                hand_out(i)
                break
            taken.append(batch)
            k = batch.k_out
    for future in pending:
        future.cancel()
    return merge(taken), run
