"""What an actor can await: scheduling points, locks, and request/reply.

Actors are ``async def f(ctx)`` functions that await nothing but these
methods, so any executor the runtime offers can drive the same code.
A step runs from one point to the next: ``await ctx.point("label")`` parks
the actor *before* the step called ``label``, and the code after it, up to
the next point, is that step, run atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from mmu import Model, RwSem, SpinLock

from .awaits import SUSPEND
from .lockdep import Lockdep
from .mailbox import Mailbox, Request

#: an actor: an async function of its context that awaits nothing but the context
ActorFn = Callable[["ActorContext"], Coroutine[Any, Any, None]]
#: when a parked actor may run again
Guard = Callable[[], bool]
#: how a daemon waiting for work says what it waits for (ActorContext.receive)
IDLE = "a request in "


class ParkedActor(Protocol):
    """What a context knows of its actor's record in the execution."""

    thread: str  # the kernel thread of the step it runs now

    def park(self, label: str, guard: Guard | None, waits_for: Callable[[], str] | str) -> None: ...


class Stepper(Protocol):
    """What a context needs of the execution driving it; every executor provides it."""

    lockdep: Lockdep

    @property
    def step_index(self) -> int: ...

    @property
    def max_retries(self) -> int: ...

    def relabel(self, label: str) -> None: ...

    def report(self, kind: str, message: str) -> None: ...


class ActorContext:
    """One actor's handle on the runtime and the model."""

    def __init__(self, name: str, model: Model, execution: Stepper, actor: ParkedActor) -> None:
        self.name = name
        self.model = model
        self._execution = execution
        self._actor = actor
        self._serving: str | None = None  # the requester whose thread a served request runs in

    async def point(
        self, label: str, *, guard: Guard | None = None, waits_for: Callable[[], str] | str = ""
    ) -> None:
        """Let the scheduler run others before the step ``label``.

        With a ``guard``, the actor is not runnable until ``guard()`` holds
        (``waits_for`` then names what it waits for in deadlock reports).
        """
        actor = self._actor  # parked here rather than through ``_park``: every step resumes each frame
        actor.park(label, guard, waits_for)
        await SUSPEND
        actor.thread = self._serving or self.name
        if guard is not None:
            # what the guard read is not in any footprint: the step is dependent with
            # every step, or a reduction could reorder it past the step that enabled it
            self.model.fp.read_unseen()

    async def _park(self, label: str, guard: Guard | None, waits_for: Callable[[], str] | str = "") -> None:
        """``point`` for the runtime's own primitives, whose guards read only what their
        steps' footprints record (a lock's, a mailbox's, a request's key)."""
        actor = self._actor
        actor.park(label, guard, waits_for)
        await SUSPEND  # the executor resumes us when it chooses this actor
        # the step that answers a request still ran in the requester's thread
        actor.thread = self.thread

    def relabel(self, label: str) -> None:
        """Rename the running step, once it knows what it stands for."""
        self._execution.relabel(label)

    @property
    def retry_bound(self) -> int:
        """How many times one fault may retry before the vcpu counts as livelocked."""
        return self._execution.max_retries

    def report(self, kind: str, message: str) -> None:
        """Report a finding of this actor's own (livelock): the run ends at the next point."""
        self._execution.report(kind, message)

    def note(self, text: str) -> None:
        """Add a line to the running step's description in the trace."""
        self.model.log.append(text)

    # ---- locks: acquiring is a point; the step that acquires holds the lock ----

    @property
    def thread(self) -> str:
        """The kernel thread this actor runs in now (a served request runs in its sender's)."""
        return self._serving or self.name

    def _recorded(self, lock: SpinLock | RwSem) -> None:
        """Make ``lock`` record what steps do to it in the model's footprint. A lock the
        model did not make (a design's or a test's own) records in one of its own, and
        two steps that take it would look independent to the search's reductions."""
        if lock.fp is not self.model.fp:
            lock.fp = self.model.fp

    def _acquired(self, lock: str, *, spins: bool, trylock: bool = False) -> None:
        ex = self._execution
        where = f"step {ex.step_index} ({self.name})"
        problem = ex.lockdep.acquired(self.thread, lock, spins=spins, where=where, trylock=trylock)
        if problem is not None:
            ex.report(*problem)

    async def spin_lock(self, lock: SpinLock, label: str | None = None) -> None:
        """``spin_lock``: step ``label`` starts once ``lock`` is free, holding it.

        In weak memory (``mmu.weak``) the lock is free once the stores its last
        owner made before releasing it have left that CPU's store buffer, and
        taking it is an acquire. That guard reads the buffers, which no footprint
        records, so there the step goes through ``point`` (dependent with every step)."""
        self._recorded(lock)
        memory = self.model.kvm.memory
        name = label or f"spin_lock({lock.name})"
        waits_for = lambda: f"{lock.name} (held by {lock.owner})"  # noqa: E731
        if memory is None:
            await self._park(name, lambda: lock.can_acquire(self.name), waits_for)
        else:
            await self.point(
                name,
                guard=lambda: lock.can_acquire(self.name) and memory.lock_visible(lock.name),
                waits_for=waits_for,
            )
        lock.acquire(self.name)
        if memory is not None:
            memory.lock_acquired(self.name, lock.name)
        self._acquired(lock.klass, spins=True)

    def try_spin_lock(self, lock: SpinLock) -> bool:
        """``spin_trylock`` (``try_lock_hpte``): take ``lock`` in the running step if it is
        free and say whether it was; never waits, so lockdep orders nothing before it.
        In weak memory (``mmu.weak``) it is free only once its last owner's stores
        before the release have committed, and taking it is an acquire."""
        self._recorded(lock)
        memory = self.model.kvm.memory
        if not lock.can_acquire(self.name) or (memory is not None and not memory.lock_visible(lock.name)):
            lock.fp.read(("lock", lock.name))
            return False
        lock.acquire(self.name)
        if memory is not None:
            memory.lock_acquired(self.name, lock.name)
        self._acquired(lock.klass, spins=True, trylock=True)
        return True

    def spin_unlock(self, lock: SpinLock, *, release: bool = True) -> None:
        """``spin_unlock``: a release in weak memory (``mmu.weak``); with ``release``
        False, a lock word cleared by a plain store with no barrier before it
        (``__clear_bit``), which the CPU's earlier stores may follow. SC: the same."""
        self._recorded(lock)
        lock.release(self.name)
        if self.model.kvm.memory is not None:
            self.model.kvm.memory.lock_released(self.name, lock.name, release=release)
        self._execution.lockdep.released(self.thread, lock.klass)

    async def down_read(self, sem: RwSem, label: str | None = None) -> None:
        """``down_read``: step ``label`` starts holding ``sem`` for read.

        If ``sem`` cannot be taken when the actor runs, that step queues it
        instead (``rwsem_down_read_slowpath``) and the actor waits, in the
        queue, until the lock is granted; ``label`` is then the step that
        starts holding it. Lockdep sees the acquisition when it is attempted,
        before any wait, as ``down_read``'s ``rwsem_acquire_read`` does.
        """
        await self._down(sem, label or f"{sem.name} read lock", write=False)

    async def down_write(self, sem: RwSem, label: str | None = None) -> None:
        """``down_write``: step ``label`` starts holding ``sem`` for write, after
        waiting in its queue if it is held (``rwsem_down_write_slowpath``)."""
        await self._down(sem, label or f"{sem.name} write lock", write=True)

    async def _down(self, sem: RwSem, label: str, *, write: bool) -> None:
        # The wait begins in a step of its own, so that a waiter is queued at the
        # moment it starts waiting: the queue, not the scheduler, decides who is next.
        self._recorded(sem)
        await self._park(label, None)
        self._acquired(sem.name, spins=False)
        if sem.can_acquire(self.name, write=write):
            sem.acquire(self.name, write=write)
            self._weak_acquired(sem.name)
            return
        sem.enqueue(self.name, write=write)
        slowpath = "rwsem_down_write_slowpath" if write else "rwsem_down_read_slowpath"
        self.relabel(f"{label}: {slowpath}, wait")
        if write:
            await self._park(label, lambda: sem.may_take(self.name), lambda: sem.waiting(self.name))
            sem.acquire(self.name, write=True)
            self._weak_acquired(sem.name)
            return
        await self._park(
            label,
            lambda: sem.held_by(self.name, write=False) and not sem.queued(self.name),
            lambda: sem.waiting(self.name),
        )
        self._weak_acquired(sem.name)

    def _weak_acquired(self, lock: str) -> None:
        """Taking a sleeping lock is an acquire in weak memory (``mmu.weak``)."""
        if self.model.kvm.memory is not None:
            self.model.kvm.memory.lock_acquired(self.name, lock)

    def downgrade_write(self, sem: RwSem) -> None:
        """``downgrade_write`` (``mmap_write_downgrade``): keep ``sem`` for read, letting
        readers in; lockdep's ``lock_downgrade`` keeps it held."""
        self._recorded(sem)
        sem.downgrade(self.name)

    def up_read(self, sem: RwSem) -> None:
        self._recorded(sem)
        self._full_barrier()
        sem.release(self.name, write=False)
        self._execution.lockdep.released(self.thread, sem.name)

    def up_write(self, sem: RwSem) -> None:
        self._recorded(sem)
        self._full_barrier()
        sem.release(self.name, write=True)
        self._execution.lockdep.released(self.thread, sem.name)

    def _full_barrier(self) -> None:
        """Releasing a sleeping lock drains this CPU's store buffer in weak memory
        (stronger than a release: docs/model.md 6.3)."""
        if self.model.kvm.memory is not None:
            self.model.kvm.memory.mb(self.name)

    # ---- request/reply ----

    async def call(self, box: Mailbox, message: Any, *, label: str, resume: str) -> Any:
        """Send ``message`` in step ``label`` and wait for the reply.

        The code after ``call`` returns is the step ``resume``: it starts
        once the reply is in, as a synchronous callback returns to its caller.
        """
        await self._park(label, None)
        fp = self.model.fp
        fp.write(("mailbox", box.name))
        request = box.post(message, self.name)
        await self._park(resume, lambda: request.answered, f"reply from {box.name}")
        fp.read(request.key)
        return request.reply

    async def receive(self, box: Mailbox, label: str) -> Request:
        """Step ``label`` starts with the oldest request in ``box`` taken."""
        await self._park(label, lambda: bool(box), f"{IDLE}{box.name}")
        self.model.fp.write(("mailbox", box.name))
        request = box.take()
        self._serving = self._actor.thread = request.sender
        return request

    def answer(self, request: Request, value: Any = None) -> None:
        """Reply to ``request``: its sender becomes runnable again."""
        self.model.fp.write(request.key)
        request.answer(value)
        self._serving = None
