"""What a step touched: the model objects it read and wrote.

Two steps of different actors are independent when neither writes what the
other reads or writes; exploring both orders of independent steps finds
nothing new, which is what partial-order reduction prunes. Every model
method records its accesses here; keys are plain tuples of str and int
(``("frame", pfn)``, ``("pte", hva)``, ``("spte", gfn)``, ``("lock", name)``,
``("kvm", "seq")`` ...), equal across runs, so footprints recorded in one
execution compare with steps of the next.
"""

from __future__ import annotations

from collections.abc import Hashable

import attrs

Key = Hashable


@attrs.frozen
class Access:
    """The footprint of one step, after the fact."""

    reads: frozenset[Key] = frozenset()
    writes: frozenset[Key] = frozenset()
    #: the step waited on a guard whose reads no footprint records (``Footprint.unseen``):
    #: it is dependent with every step
    unseen: bool = False

    def conflicts(self, other: Access) -> bool:
        """Return whether the two steps are dependent (one writes what the other touches)."""
        if self.unseen or other.unseen:
            return True
        return not (
            self.writes.isdisjoint(other.writes)
            and self.writes.isdisjoint(other.reads)
            and self.reads.isdisjoint(other.writes)
        )


@attrs.define(eq=False)
class Footprint:
    """The accumulating accesses of the step now running."""

    reads: set[Key] = attrs.field(factory=set)
    writes: set[Key] = attrs.field(factory=set)
    unseen: bool = False

    def read(self, key: Key) -> None:
        self.reads.add(key)

    def write(self, key: Key) -> None:
        self.writes.add(key)

    def read_unseen(self) -> None:
        """The step depends on state read where no footprint is kept (a guard that is
        arbitrary code): whatever another step touches may have enabled it, so it is
        dependent with every step (a partial-order reduction must not reorder it)."""
        self.unseen = True

    def drain(self) -> Access:
        """Return what was touched since the last drain, and start afresh."""
        access = Access(frozenset(self.reads), frozenset(self.writes), self.unseen)
        self.clear()
        return access

    def clear(self) -> None:
        self.reads.clear()
        self.writes.clear()
        self.unseen = False
