"""Lock validation in the spirit of the kernel's lockdep, over one run.

Three checks, made at every acquisition (when it is attempted, before any
wait, as the kernel's ``lock_acquire`` is), whatever the interleaving:

- a lock the thread already holds, taken again: "possible recursive locking
  detected". For an rwsem that includes a second ``down_read``: the kernel
  annotates ``down_read`` as a non-recursive read, since a writer queued
  between the two makes the second one wait for ever (a fair rwsem);
- a sleeping lock (``mmap_lock``, and so ``get_user_pages``) taken while the
  same thread holds a spinlock (``mmu_lock``): "sleeping function called
  from invalid context", a bug even if this schedule never sleeps;
- an inconsistent order: lock B taken while holding A after A was taken
  while holding B, anywhere earlier in the run: an ABBA deadlock waiting for
  the schedule that interleaves the two (lockdep's "possible circular
  locking dependency").

Locks are named by their class (``SpinLock.klass``), as lockdep keys them:
every HPTE lock bit is one class, every rmap lock bit another. A trylock
(``try_lock_hpte``) adds no ordering of its own, since it cannot wait
("trylock can be done in any order"), but locks taken while it is held are
ordered after it.

A thread is an actor (an actor serving a request runs in the requester's
thread). KVM's notifier callbacks run in the host actor that calls them:
QEMU holding ``mmap_lock`` while KVM's ``invalidate_range_start`` takes
``mmu_lock`` is the edge mmap_lock -> mmu_lock.
"""

from __future__ import annotations

import attrs


@attrs.define(eq=False)
class Lockdep:
    """The locks each thread holds, and every nesting seen so far."""

    #: False stands for a kernel without CONFIG_PROVE_LOCKING: nothing is checked,
    #: and a lock bug shows only if it hangs (``deadlock``)
    enabled: bool = True
    _held: dict[str, list[tuple[str, bool]]] = attrs.field(factory=dict)  # thread -> (lock, spins)
    _order: dict[tuple[str, str], str] = attrs.field(factory=dict)  # (outer, inner) -> where first seen

    def acquired(
        self, thread: str, lock: str, *, spins: bool, where: str, trylock: bool = False
    ) -> tuple[str, str] | None:
        """Record ``thread`` taking ``lock``; return (kind, message) if that breaks a rule.

        An inconsistent order is reported before a sleep in atomic context
        when both apply: it names the other thread's half of the deadlock.
        """
        if not self.enabled:
            return None
        held = self._held.setdefault(thread, [])
        problem: tuple[str, str] | None = None
        if any(name == lock for name, _ in held):
            problem = (
                "recursive_lock",
                f"{thread} takes {lock}, which it already holds: possible recursive locking",
            )
        for outer, _ in held:
            if trylock or outer == lock:  # a trylock never waits; one class has no order within
                continue
            self._order.setdefault((outer, lock), where)
            reverse = self._order.get((lock, outer))
            if reverse is not None and problem is None:
                problem = (
                    "lock_order",
                    f"{thread} takes {lock} while holding {outer}, but {outer} was taken while"
                    f" holding {lock} at {reverse}: possible ABBA deadlock",
                )
        spinning = [name for name, s in held if s]
        if problem is None and not spins and spinning:
            problem = (
                "sleep_in_atomic",
                f"{thread} takes {lock}, which may sleep, while holding spinlock {spinning[-1]}",
            )
        held.append((lock, spins))
        return problem

    def released(self, thread: str, lock: str) -> None:
        held = self._held.get(thread, [])
        for i in range(len(held) - 1, -1, -1):
            if held[i][0] == lock:
                del held[i]
                return
