"""Lock *state*: who holds ``mmu_lock`` and ``mmap_lock``.

The model only records ownership, the rwsem's wait list, and refuses
misuse; blocking is the runtime's business (an actor waiting for a lock is
simply not runnable). Holders are actor names.
"""

from __future__ import annotations

import attrs

from .footprint import Footprint


class LockError(AssertionError):
    """Raised when a lock is used against its rules (the model's lockdep)."""


@attrs.define(eq=False)
class SpinLock:
    """A non-sleeping mutual-exclusion lock, such as ``kvm->mmu_lock``.

    Re-acquiring a lock you hold is never possible (``can_acquire`` is
    False), so the runtime reports it as a deadlock, as the kernel would hang.
    """

    name: str
    owner: str | None = None
    fp: Footprint = attrs.field(factory=Footprint, repr=False)
    #: the lockdep class (the kernel's ``lock_class_key``): every lock of a class
    #: shares its ordering rules, as every HPTE lock bit does; by default its own
    klass: str = attrs.field(
        kw_only=True, default=attrs.Factory(lambda self: self.name, takes_self=True), repr=False
    )

    def can_acquire(self, who: str) -> bool:
        """Return whether ``who`` could take the lock now."""
        return self.owner is None

    def acquire(self, who: str) -> None:
        if self.owner is not None:
            raise LockError(f"{who} took {self.name} held by {self.owner}")
        self.fp.write(("lock", self.name))
        self.owner = who

    def release(self, who: str) -> None:
        if self.owner != who:
            raise LockError(f"{who} released {self.name} held by {self.owner or '(free)'}")
        self.fp.write(("lock", self.name))
        self.owner = None

    def held_by(self, who: str) -> bool:
        """Return whether ``who`` holds the lock."""
        return self.owner == who


@attrs.frozen
class Waiter:
    """One entry of an rwsem's wait list (``struct rwsem_waiter``)."""

    who: str
    write: bool  # RWSEM_WAITING_FOR_WRITE, else RWSEM_WAITING_FOR_READ


@attrs.define(eq=False)
class RwSem:
    """A sleeping reader/writer semaphore, such as ``mm->mmap_lock``, fair as
    ``kernel/locking/rwsem.c`` makes it (v5.11 and later; docs/model.md 1.1).

    A task that cannot take it joins the FIFO wait list (``rwsem_down_read_slowpath``,
    ``rwsem_down_write_slowpath``), and a waiter queued there holds new readers
    back: with anybody waiting, a reader may take a semaphore that readers
    already hold only by queueing behind them (the slowpath's ``rcnt > 1`` test).
    So a reader that takes it twice, with a writer queued in between, waits on
    itself: the deadlock an unfair rwsem hides.

    What a task not queued may take (``can_acquire``): a free semaphore, in
    either mode, waiters or not (optimistic lock stealing, which the kernel
    allows until the first waiter has waited ``RWSEM_WAIT_TIMEOUT`` and sets
    ``RWSEM_FLAG_HANDOFF``; the model has no clock and always allows it, which
    only admits more orders), or one held by readers, for read, if nobody waits.
    A release that leaves it free with a reader first in the queue, or a
    ``downgrade``, grants the read lock to every queued reader at once
    (``rwsem_mark_wake``: writers keep their place); a writer first in the
    queue is only woken, and takes it, if it is still free, when it runs.
    """

    name: str
    writer: str | None = None
    readers: list[str] = attrs.field(factory=list)
    #: ``sem->wait_list``, oldest first; a granted reader leaves it for ``readers``
    waiters: list[Waiter] = attrs.field(factory=list)
    fp: Footprint = attrs.field(factory=Footprint, repr=False)

    def can_acquire(self, who: str, *, write: bool) -> bool:
        """Return whether ``who``, not queued, could take the semaphore in that mode now
        (the fast path, or the slowpath's lock stealing)."""
        if write:
            return self.writer is None and not self.readers
        return self.writer is None and not (self.waiters and self.readers)

    def acquire(self, who: str, *, write: bool) -> None:
        """Take the semaphore: ``who`` may steal it (``can_acquire``), or, queued, take it
        when its turn has come (``may_take``)."""
        queued = self.queued(who)
        if queued and not write:
            raise LockError(f"{who} took {self.name} for read while queued: a reader is granted it")
        if not (self.may_take(who) if queued else self.can_acquire(who, write=write)):
            raise LockError(f"{who} took {self.name} while it is held ({self._holders()})")
        self.fp.write(("lock", self.name))
        if queued:
            self.waiters.pop(0)
        if write:
            self.writer = who
        else:
            self.readers.append(who)
            self._wake()  # the first reader of a stolen lock wakes the readers queued

    def release(self, who: str, *, write: bool) -> None:
        """``up_read``/``up_write``; the last holder out wakes the wait list (``rwsem_wake``)."""
        self.fp.write(("lock", self.name))
        if write:
            if self.writer != who:
                raise LockError(f"{who} released {self.name} for write, held by ({self._holders()})")
            self.writer = None
        else:
            if who not in self.readers:
                raise LockError(f"{who} released {self.name} for read, held by ({self._holders()})")
            self.readers.remove(who)
        if self.writer is None and not self.readers:
            self._wake()

    def downgrade(self, who: str) -> None:
        """``downgrade_write``: the writer becomes a reader without letting go, and the
        readers queued are granted the lock with it (``rwsem_downgrade_wake``)."""
        if self.writer != who:
            raise LockError(f"{who} downgraded {self.name}, held by ({self._holders()})")
        self.fp.write(("lock", self.name))
        self.writer = None
        self.readers.append(who)
        self._wake()

    def enqueue(self, who: str, *, write: bool) -> None:
        """Join the wait list (``rwsem_add_waiter``): from now on ``who`` waits its turn,
        even for a semaphore it holds itself (then it waits for ever)."""
        if self.queued(who):
            raise LockError(f"{who} queued for {self.name} twice")
        self.fp.write(("lock", self.name))
        self.waiters.append(Waiter(who, write))
        self._wake()  # a reader queued first behind readers only is granted at once

    def queued(self, who: str) -> bool:
        """Return whether ``who`` is on the wait list."""
        return any(w.who == who for w in self.waiters)

    def may_take(self, who: str) -> bool:
        """Return whether ``who``, a queued writer, may take the semaphore now: it is
        free and ``who`` is first in the queue, the one ``rwsem_mark_wake`` wakes."""
        return self.writer is None and not self.readers and self.waiters[:1] == [Waiter(who, True)]

    def held_by(self, who: str, *, write: bool | None = None) -> bool:
        """Return whether ``who`` holds the semaphore (for write, read, or either if None)."""
        if write is None:
            return self.writer == who or who in self.readers
        return self.writer == who if write else who in self.readers

    def waiting(self, who: str) -> str:
        """What ``who``, queued, waits for, as a deadlock report says it."""
        mine = next((i for i, w in enumerate(self.waiters) if w.who == who), None)
        if mine is None:
            return f"{self.name} (granted)"
        ahead = [f"{w.who} ({'write' if w.write else 'read'})" for w in self.waiters[:mine]]
        mode = "write" if self.waiters[mine].write else "read"
        queue = f", queued behind {', '.join(ahead)}" if ahead else ""
        return f"{self.name} for {mode} (held by {self._holders()}{queue})"

    def _wake(self) -> None:
        """``rwsem_mark_wake``: with a reader first in the queue and no writer holding,
        every queued reader is granted the lock and leaves the queue."""
        if not self.waiters or self.waiters[0].write or self.writer is not None:
            return
        granted = [w for w in self.waiters if not w.write]
        self.waiters = [w for w in self.waiters if w.write]
        self.readers.extend(w.who for w in granted)

    def _holders(self) -> str:
        if self.writer is not None:
            return f"writer {self.writer}"
        return "readers " + ", ".join(self.readers) if self.readers else "free"
