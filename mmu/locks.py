"""Lock *state*: who holds ``mmu_lock`` and ``mmap_lock``.

The model only records ownership and refuses misuse; blocking is the
runtime's business (an actor whose acquire cannot succeed is simply not
runnable). Holders are actor names.
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


@attrs.define(eq=False)
class RwSem:
    """A sleeping reader/writer semaphore, such as ``mm->mmap_lock``.

    XX: Linux rwsems queue new readers behind a waiting writer; this model
    lets readers in while a writer waits, which only admits more schedules.
    """

    name: str
    writer: str | None = None
    readers: list[str] = attrs.field(factory=list)
    fp: Footprint = attrs.field(factory=Footprint, repr=False)

    def can_acquire(self, who: str, *, write: bool) -> bool:
        """Return whether ``who`` could take the semaphore in that mode now."""
        if write:
            return self.writer is None and not self.readers
        return self.writer is None

    def acquire(self, who: str, *, write: bool) -> None:
        if not self.can_acquire(who, write=write):
            raise LockError(f"{who} took {self.name} while it is held ({self._holders()})")
        self.fp.write(("lock", self.name))
        if write:
            self.writer = who
        else:
            self.readers.append(who)

    def release(self, who: str, *, write: bool) -> None:
        self.fp.write(("lock", self.name))
        if write:
            if self.writer != who:
                raise LockError(f"{who} released {self.name} for write, held by ({self._holders()})")
            self.writer = None
        else:
            if who not in self.readers:
                raise LockError(f"{who} released {self.name} for read, held by ({self._holders()})")
            self.readers.remove(who)

    def held_by(self, who: str, *, write: bool | None = None) -> bool:
        """Return whether ``who`` holds the semaphore (for write, read, or either if None)."""
        if write is None:
            return self.writer == who or who in self.readers
        return self.writer == who if write else who in self.readers

    def _holders(self) -> str:
        if self.writer is not None:
            return f"writer {self.writer}"
        return "readers " + ", ".join(self.readers) if self.readers else "free"
