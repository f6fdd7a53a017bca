"""What the ``mmurace`` exit status means: one table for the commands, ``--help`` and the README."""

from __future__ import annotations

import enum
import signal


class ExitCode(enum.IntEnum):
    """The exit status of every command."""

    CLEAN = 0  # no violation; for explore, every schedule within the bound was run
    VIOLATION = 1
    USAGE = 2
    INCONCLUSIVE = 3  # a search limit was reached before a proof
    INTERNAL = 70  # EX_SOFTWARE: an error in mmurace or in a scenario's code, not in the input
    INTERRUPTED = 128 + signal.SIGINT  # Ctrl-C; SIGTERM gives 128 + SIGTERM

    @classmethod
    def interrupted_by(cls, signum: int) -> int:
        """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + signum


#: the exit status table, as ``mmurace --help`` and the README print it
MEANINGS: dict[int, str] = {
    ExitCode.CLEAN: "no violation (explore: every schedule within the bound was run)",
    ExitCode.VIOLATION: "a violation was found",
    ExitCode.USAGE: "usage error (one line on stderr)",
    ExitCode.INCONCLUSIVE: "inconclusive: a search limit came before a proof (explore --limit)",
    ExitCode.INTERNAL: "internal error (one line; mmurace --debug ... prints the traceback)",
    ExitCode.INTERRUPTED: "interrupted (143: SIGTERM); what was found so far is printed and saved",
}
