"""Which host kernel the model runs: how KSM, COW and reclaim tell secondary MMUs.

The notifier protocol KVM must follow changed under it (docs/model.md 1.3):

- In v3.1-v3.5, the kernel of the 2011 review, KSM (``write_protect_page``,
  ``replace_page``) and COW (``do_wp_page``) reported a pte switch only
  through ``->change_pte`` (``set_pte_at_notify``), under the page-table lock,
  after ``set_pte_at``, with no invalidate_range_start/end around it; and
  ``try_to_unmap_one`` (reclaim, migration) reported a cleared pte through
  ``->invalidate_page`` (``ptep_clear_flush_notify``), under the page-table
  lock, while the caller still held the page.
- From v3.6 (6bdb913f0a70) start/end bracket KSM's and COW's switch too, so
  ``change_pte`` finds its leaf already zapped; ``invalidate_page`` went in
  v4.13 and ``change_pte`` in v6.10 (997308f9ae72): today start/end are all
  there is.

The kernels in between (start/end around KSM and COW, ``invalidate_page``
still in ``try_to_unmap_one``) are not an era of the model.

munmap changed in between too: until v4.20 it held ``mmap_lock`` for write
from the VMA detach to the last free; since (dd2283f2605e) it downgrades to
read before it zaps (``munmap_downgrades``).
"""

from __future__ import annotations

import enum


class Era(enum.IntEnum):
    """The host kernel's notifier protocol, named by a year (``-p era=YEAR``)."""

    #: v3.1-v3.5 (2011-2012): change_pte and invalidate_page, no start/end around them
    Y2011 = 2011
    #: v6.10 (2024) and later: invalidate_range_start/end around every pte change
    TODAY = 2024

    @classmethod
    def from_year(cls, year: int) -> Era:
        """The era a scenario parameter names.

        Raises:
            ValueError: a year that is not an era of the model.
        """
        try:
            return cls(year)
        except ValueError:
            msg = f"'era' must be 2011 (v3.1-v3.5) or 2024 (v6.10 and later) (got {year!r})"
            raise ValueError(msg) from None

    @property
    def change_pte(self) -> bool:
        """Does ``set_pte_at_notify`` (KSM, COW) call ``->change_pte`` instead of being
        bracketed by invalidate_range_start/end?"""
        return self is Era.Y2011

    @property
    def munmap_downgrades(self) -> bool:
        """Does munmap detach the VMAs under ``mmap_lock`` for write, then downgrade it to
        read before it zaps (v4.20+, dd2283f2605e), instead of zapping under the write lock?"""
        return self is Era.TODAY

    @property
    def invalidate_page(self) -> bool:
        """Does ``try_to_unmap_one`` (reclaim, migration) call ``->invalidate_page`` after
        clearing the pte instead of being bracketed by invalidate_range_start/end?"""
        return self is Era.Y2011
