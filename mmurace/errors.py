"""Errors a user can cause. The CLI prints them as one line and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MmuraceError(Exception):
    """Root of mmurace's own errors."""


class UsageError(MmuraceError):
    """Bad input: unknown name, malformed schedule, a file that does not load."""


def unknown(kind: str, name: str, valid: Iterable[str]) -> UsageError:
    """Build the error for an unknown ``kind`` called ``name``, suggesting the closest valid one."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.4)
    hint = f"did you mean {close[0]!r}?" if close else f"choose from {', '.join(valid)}"
    return UsageError(f"unknown {kind} {name!r}: {hint}")
