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

    def conflicts(self, other: Access) -> bool:
        """Return whether the two steps are dependent (one writes what the other touches)."""
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

    def read(self, key: Key) -> None:
        self.reads.add(key)

    def write(self, key: Key) -> None:
        self.writes.add(key)

    def drain(self) -> Access:
        """Return what was touched since the last drain, and start afresh."""
        access = Access(frozenset(self.reads), frozenset(self.writes))
        self.reads.clear()
        self.writes.clear()
        return access

    def clear(self) -> None:
        self.reads.clear()
        self.writes.clear()
