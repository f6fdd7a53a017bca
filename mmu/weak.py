"""Weak memory for the fields KVM reads without the lock that orders their writers.

Off by default: every step of the model is sequentially consistent, and a
field is an attribute. With ``--memory weak`` the fields named in
``WeakMemory.locations`` (``seq`` and ``in_progress``, which the fault path's
lockless checks read, and the words a design names: POWER7's rmap words, a
design's own words, kept in ``cells``) behave as on POWER for these one-word
patterns (docs/model.md section 6):

- a store goes into its CPU's store buffer; each location's stores leave it
  in order (per-location FIFO), stores to different locations in any order
  (PSO), unless an ``smp_wmb`` (or a release) between them orders them;
- a store that leaves the buffer *commits*: it is the location's newest value
  in memory. Another CPU sees it when it *becomes visible* to that CPU, one
  location at a time, so a CPU's loads of different locations may see them
  at different ages (load-load reordering) until an ``smp_rmb``, an acquire
  or a lock acquisition makes every committed store visible to it;
- a CPU reads its own buffer first (store forwarding).

Committing and becoming visible are steps of their own, taken by the
runtime's memory actors (``actors.runtime.weak``), so the strategies and
the search choose when a store becomes visible, as they choose who runs.
A CPU is an actor (``who`` in the model's methods).

Footprints (``mmu.footprint``): a location is ``("kvm", loc)``, as in SC; a
CPU's buffer ``("sb", cpu)``; what a CPU sees of a location ``("view", cpu,
loc)``. Every operation records the keys it depends on, so the search's
partial-order reduction treats a commit like any other write.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from .footprint import Footprint


class Memory(enum.Enum):
    """The memory model of a run."""

    SC = "sc"  # sequentially consistent: every store visible at once, in order
    WEAK = "weak"  # store buffers and late visibility for the lockless fields


@attrs.frozen
class Pending:
    """A store in a CPU's store buffer."""

    loc: str
    value: int
    serial: int  # issue order over the whole run
    epoch: int  # bumped by every smp_wmb/release of its CPU: an older epoch leaves first


@attrs.frozen
class Op:
    """One memory operation as the program issued it, for litmus tests (``mmurace.litmus``)."""

    time: int  # issue order over the whole run
    cpu: str
    kind: str  # load, store, wmb, rmb, mb, acquire (lock), release (lock), unlock (no barrier)
    loc: str = ""
    value: int = 0
    lock: str = ""


@attrs.define(eq=False)
class WeakMemory:
    """The weak locations of one run: memory, store buffers, and what each CPU sees.

    ``target`` holds the committed value of each location as an attribute (a
    ``Kvm``): oracles and SC code read it there, the newest value in memory.
    """

    target: object
    locations: tuple[str, ...]
    cpus: tuple[str, ...]
    log: list[str]
    fp: Footprint
    #: the initial value of each location that is no attribute of ``target`` (a word of
    #: ``mmu.hpt``, a design's own field): memory alone holds it, ``value`` reads it
    cells: dict[str, int] = attrs.field(factory=dict)
    #: every value each location had in memory, oldest first (coherence order)
    _history: dict[str, list[int]] = attrs.field(init=False)
    _buffers: dict[str, list[Pending]] = attrs.field(init=False)
    _epochs: dict[str, int] = attrs.field(init=False)
    #: (cpu, loc) -> index in the location's history of what the CPU sees
    _views: dict[tuple[str, str], int] = attrs.field(init=False)
    #: lock -> (CPU, serial of its last store before the release): the next owner waits for it
    _releases: dict[str, tuple[str, int]] = attrs.field(init=False, factory=dict)
    _serial: int = attrs.field(init=False, default=0)
    #: the locations only a hardware walk reads, in memory (``walk_load``): no CPU's view
    walked: frozenset[str] = frozenset()
    #: every operation issued, in order (for litmus tests)
    ops: list[Op] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self._history = {loc: [self._initial(loc)] for loc in self.locations}
        self._buffers = {cpu: [] for cpu in self.cpus}
        self._epochs = dict.fromkeys(self.cpus, 0)
        self._views = {(cpu, loc): 0 for cpu in self.cpus for loc in self.locations}

    def _initial(self, loc: str) -> int:
        if loc in self.cells:
            return self.cells[loc]
        value: int = getattr(self.target, loc)
        return value

    def holds(self, loc: str) -> bool:
        """Whether ``loc`` is one of this memory's weak locations."""
        return loc in self._history

    def value(self, loc: str) -> int:
        """The newest value of ``loc`` in memory (what SC code and oracles read)."""
        return self._history[loc][-1]

    def _tick(self) -> int:
        self._serial += 1
        return self._serial

    def _record(self, cpu: str, kind: str, **fields: object) -> None:
        self.ops.append(Op(self._tick(), cpu, kind, **fields))  # type: ignore[arg-type]

    def _cpu(self, cpu: str) -> None:
        if cpu not in self._buffers:  # a thread the world did not name: a CPU of its own
            self._buffers[cpu] = []
            self._epochs[cpu] = 0
            for loc in self.locations:
                self._views[(cpu, loc)] = len(self._history[loc]) - 1

    # ---- what a program does ----

    def load(self, cpu: str, loc: str) -> int:
        """``READ_ONCE(loc)``: the CPU's own newest buffered store, else what it sees."""
        self._cpu(cpu)
        self.fp.read(("sb", cpu))
        self.fp.read(("view", cpu, loc))
        self.fp.read(("kvm", loc))
        own = [p for p in self._buffers[cpu] if p.loc == loc]
        value = own[-1].value if own else self._history[loc][self._views[(cpu, loc)]]
        self._record(cpu, "load", loc=loc, value=value)
        return value

    def drained(self, cpu: str) -> bool:
        """Whether ``cpu``'s store buffer is empty (what a ``ptesync`` waits for)."""
        self.fp.read(("sb", cpu))
        return not self._buffers.get(cpu)

    def stale(self, cpu: str, loc: str) -> bool:
        """Whether ``cpu`` does not see the newest value of ``loc`` in memory."""
        return self._views[(cpu, loc)] < len(self._history[loc]) - 1

    def walk_load(self, cpu: str, loc: str) -> int:
        """The hardware's table walk reading ``loc`` for ``cpu``: the value in memory, never
        the CPU's own store buffer (a walk is not a load of the program and does not
        snoop the store queue: hence the ``ptesync`` a writer needs before its own walk
        may use what it stored). No view: a committed store is seen by every walk."""
        self._cpu(cpu)
        self.fp.read(("kvm", loc))
        value = self._history[loc][-1]
        self._record(cpu, "load", loc=loc, value=value)
        return value

    def store(self, cpu: str, loc: str, value: int) -> None:
        """``WRITE_ONCE(loc, value)``: into the CPU's store buffer."""
        self._cpu(cpu)
        self.fp.write(("sb", cpu))
        self._record(cpu, "store", loc=loc, value=value)
        self._buffers[cpu].append(Pending(loc, value, self._serial, self._epochs[cpu]))

    def wmb(self, cpu: str) -> None:
        """``smp_wmb()``: the CPU's stores before it leave its buffer before those after."""
        self._cpu(cpu)
        self.fp.write(("sb", cpu))
        self._record(cpu, "wmb")
        self._epochs[cpu] += 1

    def rmb(self, cpu: str, kind: str = "rmb") -> None:
        """``smp_rmb()`` (and every acquire): the CPU sees every store committed so far.

        Stronger than POWER's ``lwsync``, which only orders the loads around it:
        docs/model.md 6.3 says what that leaves out.
        """
        self._cpu(cpu)
        self._record(cpu, kind)
        for loc in self.locations:
            self.fp.read(("kvm", loc))
            self.fp.write(("view", cpu, loc))
            self._views[(cpu, loc)] = len(self._history[loc]) - 1

    def mb(self, cpu: str) -> None:
        """``smp_mb()``: the CPU's buffer drains, then it sees everything committed."""
        self._cpu(cpu)
        self._record(cpu, "mb")
        self.fp.write(("sb", cpu))
        while self._buffers[cpu]:
            self._commit(cpu, self._buffers[cpu][0])
        self.rmb(cpu, kind="mb")
        self.ops.pop()  # one op: the mb

    def store_release(self, cpu: str, loc: str, value: int) -> None:
        """``smp_store_release(loc, value)``: ordered after every earlier store."""
        self.wmb(cpu)
        self.store(cpu, loc, value)

    def load_acquire(self, cpu: str, loc: str) -> int:
        """``smp_load_acquire(loc)``: later loads see what was committed before it."""
        value = self.load(cpu, loc)
        self.rmb(cpu, kind="acquire")
        return value

    # ---- locks: acquisition is an acquire, release a release ----

    def lock_acquired(self, cpu: str, lock: str) -> None:
        """A lock was taken: an acquire (``rmb``)."""
        self.rmb(cpu, kind="acquire")
        self.ops[-1] = attrs.evolve(self.ops[-1], lock=lock)

    def lock_released(self, cpu: str, lock: str, *, release: bool = True) -> None:
        """A lock is let go: its next owner may take it only once every store the CPU
        made before the release has committed (``lock_visible``).

        With ``release`` False, a plain store clears the lock word with no barrier
        before it (``__clear_bit`` for ``__clear_bit_unlock``, ``__unlock_hpte``
        with no ``eieio``/``lwsync`` in front): it may commit before the CPU's
        earlier stores, so the next owner may take the lock at once and not see
        them. (A lock word that commits late only holds the lock longer.)"""
        self._cpu(cpu)
        self.fp.write(("sb", cpu))
        self._record(cpu, "release" if release else "unlock", lock=lock)
        if not release:
            self._releases.pop(lock, None)
            return
        self._epochs[cpu] += 1
        buffer = self._buffers[cpu]
        if buffer:
            self._releases[lock] = (cpu, buffer[-1].serial)
        else:
            self._releases.pop(lock, None)

    def lock_visible(self, lock: str) -> bool:
        """Whether every store its last owner made before releasing ``lock`` has committed."""
        release = self._releases.get(lock)
        if release is None:
            return True
        cpu, serial = release
        return not any(p.serial <= serial for p in self._buffers[cpu])

    # ---- what the memory actors do ----

    def committable(self, cpu: str, loc: str) -> bool:
        """Whether ``cpu``'s oldest store to ``loc`` may leave its buffer now."""
        buffer = self._buffers.get(cpu)
        if not buffer:
            return False
        head = next((p for p in buffer if p.loc == loc), None)
        return head is not None and head.epoch == buffer[0].epoch

    def commit(self, cpu: str, loc: str) -> str:
        """``cpu``'s oldest store to ``loc`` leaves its buffer; return what it was."""
        head = next(p for p in self._buffers[cpu] if p.loc == loc)
        self._commit(cpu, head, said=False)
        return f"store {loc}={head.value} by {cpu} reaches memory"

    def _commit(self, cpu: str, pending: Pending, *, said: bool = True) -> None:
        self._buffers[cpu].remove(pending)
        loc = pending.loc
        self.fp.write(("sb", cpu))
        self.fp.write(("kvm", loc))
        self.fp.write(("view", cpu, loc))
        history = self._history[loc]
        history.append(pending.value)
        self._views[(cpu, loc)] = len(history) - 1
        if loc not in self.cells:
            setattr(self.target, loc, pending.value)
        if said:  # drained by a barrier, in the step of the CPU that issued it
            self.log.append(f"store {loc}={pending.value} by {cpu} reaches memory")

    def visible(self, cpu: str, loc: str) -> bool:
        """Whether a store to ``loc`` committed that ``cpu`` does not see yet."""
        return (cpu, loc) in self._views and self.stale(cpu, loc)

    def propagate(self, cpu: str, loc: str) -> str:
        """The next store to ``loc`` that ``cpu`` does not see becomes visible to it."""
        self.fp.read(("kvm", loc))
        self.fp.write(("view", cpu, loc))
        self._views[(cpu, loc)] += 1
        value = self._history[loc][self._views[(cpu, loc)]]
        return f"store {loc}={value} becomes visible to {cpu}"

    def drain(self) -> None:
        """Every buffered store commits (the end of the run: every CPU went idle)."""
        for cpu in self._buffers:
            while self._buffers[cpu]:
                self._commit(cpu, self._buffers[cpu][0])

    def pending(self) -> Iterable[tuple[str, Pending]]:
        """Every buffered store, by CPU."""
        return ((cpu, p) for cpu, b in self._buffers.items() for p in b)
