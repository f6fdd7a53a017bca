"""The fair rwsem in the runtime: a waiter is queued in a step of its own, the
queue decides who goes next, and the deadlocks that need it are found."""

from __future__ import annotations

import attrs

from actors import DESIGNS, ActorContext, ActorSpec, Design, Executor, SeqRetry, World
from mmu import Model, RwSem, SpinLock
from mmurace import Config
from mmurace.explore import Verdict, explore
from scenarios import CATALOG, Scenario

from .toys import Fixed, world


def _toy(*actors: ActorSpec, lockdep: bool = True) -> Config:
    def build(design: str) -> World:
        w = world(*actors)
        w.lockdep = lockdep
        return w

    return Config(Scenario("toy", "toy", "toy", build, ("toy",)), Design("toy", "toy"), executor=Executor.DIRECT)


def _sem(model: Model) -> RwSem:
    return model.mm.mmap_lock


async def _reads_twice(ctx: ActorContext) -> None:
    sem = _sem(ctx.model)
    await ctx.down_read(sem, "first read")
    await ctx.down_read(sem, "second read")
    ctx.up_read(sem)
    ctx.up_read(sem)


async def _writes(ctx: ActorContext) -> None:
    sem = _sem(ctx.model)
    await ctx.down_write(sem, "write")
    ctx.up_write(sem)


# ---- the runtime ----


def test_a_waiter_queues_in_a_step_of_its_own_and_takes_the_lock_in_the_next() -> None:
    """w takes it; r tries, is queued (the step is renamed for the slowpath), and
    starts holding it once w released: the release granted it."""
    async def writer_holds(ctx: ActorContext) -> None:
        sem = _sem(ctx.model)
        await ctx.down_write(sem, "write")
        await ctx.point("still writing")
        ctx.up_write(sem)

    toy = _toy(ActorSpec("w", writer_holds), ActorSpec("r", _reads_twice), lockdep=False)
    result = toy.run_direct(Fixed([0, 1]))  # w, then r tries; r waits, so w again
    labels = [(s.actor, s.label) for s in result.steps]
    assert labels == [
        ("w", "write"),
        ("r", "first read: rwsem_down_read_slowpath, wait"),
        ("w", "still writing"),
        ("r", "first read"),
        ("r", "second read"),
    ]
    assert result.finding is None


def test_lockdep_sees_the_attempt_before_the_wait() -> None:
    spin = SpinLock("mmu_lock")

    async def gup_under_spin(ctx: ActorContext) -> None:
        await ctx.spin_lock(spin)
        await ctx.down_read(_sem(ctx.model), "get_user_pages")

    async def writer_holds(ctx: ActorContext) -> None:
        await ctx.down_write(_sem(ctx.model), "write")
        await ctx.point("writing")

    result = _toy(ActorSpec("w", writer_holds), ActorSpec("v", gup_under_spin)).run_direct(Fixed([0, 1]))
    assert result.finding is not None
    fatal = result.steps[result.finding.step]
    assert (result.finding.oracle, fatal.label) == ("sleep_in_atomic", "get_user_pages: rwsem_down_read_slowpath, wait")


def test_lockdep_reports_a_second_down_read_in_every_schedule() -> None:
    """As the kernel's does: down_read is a non-recursive read lock, whether or not
    a writer happens to queue in between."""
    result = _toy(ActorSpec("r", _reads_twice)).run_direct(Fixed([]))
    assert result.finding is not None
    assert (result.finding.oracle, result.finding.message) == (
        "recursive_lock",
        "r takes mmap_lock, which it already holds: possible recursive locking",
    )


async def test_a_recursive_read_deadlocks_only_with_a_writer_queued_in_between() -> None:
    """Without lockdep, only the hang is left to find: it needs w to queue after r's
    first read and before its second."""
    found = await explore(_toy(ActorSpec("r", _reads_twice), ActorSpec("w", _writes), lockdep=False), preemptions=None)
    assert found.verdict is Verdict.FOUND and found.result is not None and found.result.finding is not None
    assert found.result.finding.message == (
        "deadlock: nobody can run; r waits for mmap_lock for read (held by readers r, queued behind w (write));"
        " w waits for mmap_lock for write (held by readers r)"
    )
    labels = [(s.actor, s.label) for s in found.result.steps]
    assert labels.index(("r", "first read")) < labels.index(("w", "write: rwsem_down_write_slowpath, wait"))
    alone = await explore(_toy(ActorSpec("r", _reads_twice), lockdep=False), preemptions=None)
    assert alone.verdict is Verdict.EXHAUSTED


# ---- a design that takes mmap_lock twice: hidden by an unfair rwsem ----


class UnfairRwSem(RwSem):
    """The model's rwsem before it was fair: a reader never waits for a waiter."""

    def can_acquire(self, who: str, *, write: bool) -> bool:
        return self.writer is None and not (write and self.readers)


#: mmap_locked whose slow path takes mmap_lock again (get_user_pages_unlocked)
RECURSIVE = DESIGNS["mmap_locked"].replace(resolve_slow=SeqRetry.resolve_slow, name="mmap_locked_twice")


def _race_munmap(*, unfair: bool = False) -> Config:
    """race_munmap without lockdep (a production kernel), on the 2011 host, whose
    munmap holds the write lock throughout, so that mmap_locked has no race: QEMU's
    munmap and its mmap are the writers; a fault after the munmap finds no pte and
    takes the slow path."""
    scenario = CATALOG["race_munmap"]

    def build(design: Design | str, **params: int) -> World:
        w = scenario.build(design, **params)
        w.lockdep = False
        if unfair:
            mm = w.model.mm
            mm.mmap_lock = UnfairRwSem("mmap_lock", fp=mm.fp)
        return w

    return Config(attrs.evolve(scenario, build=build), RECURSIVE, params=(("era", 2011),), executor=Executor.DIRECT)


async def test_a_recursive_mmap_read_lock_deadlocks_behind_qemus_mmap() -> None:
    found = await explore(_race_munmap(), preemptions=None)
    assert found.result is not None and found.result.finding is not None
    assert found.result.finding.message == (
        "deadlock: nobody can run; vcpu0 waits for mmap_lock for read (held by readers vcpu0, queued behind"
        " qemu (write)); qemu waits for mmap_lock for write (held by readers vcpu0)"
    )


async def test_an_unfair_rwsem_hides_that_deadlock() -> None:
    proof = await explore(_race_munmap(unfair=True), preemptions=None)
    assert proof.verdict is Verdict.EXHAUSTED, proof.result


def test_with_lockdep_the_second_read_is_reported_as_it_is_tried() -> None:
    """QEMU unmaps first, so the fault finds no pte and takes the slow path: lockdep
    reports its down_read under the fault's own, writer or no writer."""
    config = Config(CATALOG["race_munmap"], RECURSIVE, params=(("era", 2011),), executor=Executor.DIRECT)
    result = config.run_direct(Fixed([1]))
    assert result.finding is not None
    fatal = result.steps[result.finding.step]
    assert (result.finding.oracle, fatal.actor, fatal.label) == ("recursive_lock", "vcpu0", "get_user_pages")
