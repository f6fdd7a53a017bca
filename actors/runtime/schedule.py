"""A schedule is data: the scheduler's decisions, as a copy-pasteable string.

Each decision is recorded relative to the actor that ran last: the runnable
actors are listed cyclically starting from it, and the decision is an index
into that list. 0 therefore means "keep running" (or, if the last actor
cannot run, "the next one in order"), and every non-zero decision is a
preemption: a smaller schedule is a simpler interleaving. Forced decisions
(one runnable actor) are not recorded.

Encoding, version 1::

    v1:<number of decisions>[:<index>=<choice>,<index>=<choice>...]

listing only the non-zero decisions, e.g. ``v1:23:4=1,9=2``. The length is
kept so that a replay that ends early or late is caught as a divergence.
"""

from __future__ import annotations

import re

import attrs

# ASCII digits only: ``\d`` and ``int()`` also take other scripts' digits
_V1 = re.compile(r"v1:([0-9]+)(?::((?:[0-9]+=[0-9]+)(?:,[0-9]+=[0-9]+)*))?")

#: the most decisions a schedule string may name, whatever the run: a run makes
#: at most one decision per step, and no run may be allowed more steps than this
#: (``Runtime.max_steps``), so nothing a string says can ask for more memory
MAX_DECISIONS = 1_000_000
#: the largest choice a string may name: a position among the runnable actors
MAX_CHOICE = 9_999
#: the longest text worth reading for one decision: ``<index>=<choice>,``
_PAIR_CHARS = len(str(MAX_DECISIONS)) + len(str(MAX_CHOICE)) + 2


class ScheduleError(ValueError):
    """Raised by ``Schedule.decode`` for a string that is not a schedule."""


@attrs.frozen
class Schedule:
    """The decisions of one run, in order."""

    choices: tuple[int, ...] = ()

    @property
    def preemptions(self) -> int:
        """Return how many decisions switched away from the default."""
        return sum(1 for c in self.choices if c)

    def encode(self) -> str:
        """Return the v1 string for this schedule."""
        sparse = ",".join(f"{i}={c}" for i, c in enumerate(self.choices) if c)
        return f"v1:{len(self.choices)}" + (f":{sparse}" if sparse else "")

    @classmethod
    def decode(cls, text: str, max_length: int = MAX_DECISIONS) -> Schedule:
        """Parse a v1 string of at most ``max_length`` decisions (a run's step bound).

        Every number is checked against its bound before it is read, and the
        length before any list is made: a short string cannot ask for memory.

        Raises:
            ScheduleError: if ``text`` is not a well-formed v1 schedule, or is longer
                than ``max_length`` decisions.
        """
        max_length = min(max_length, MAX_DECISIONS)
        shown = text if len(text) <= 60 else f"{text[:40]}...{text[-12:]}"
        if len(text) > 16 + max_length * _PAIR_CHARS:
            raise ScheduleError(f"schedule {shown!r} is longer than any run of {max_length} steps")
        match = _V1.fullmatch(text.strip())
        if match is None:
            raise ScheduleError(
                f"malformed schedule {shown!r}: expected 'v1:N' or 'v1:N:I=C,I=C...'"
            )
        length = _bounded(match.group(1), max_length)
        if length is None:
            raise ScheduleError(
                f"schedule {shown!r} has more decisions than a run of at most {max_length} steps makes"
            )
        choices = [0] * length
        last = -1
        for pair in (match.group(2) or "").split(",") if match.group(2) else ():
            index_digits, choice_digits = pair.split("=")
            index, choice = _bounded(index_digits, length - 1), _bounded(choice_digits, MAX_CHOICE)
            if index is None:
                raise ScheduleError(
                    f"malformed schedule {shown!r}: decision {index_digits[:20]} beyond length {length}"
                )
            if choice is None:
                raise ScheduleError(
                    f"malformed schedule {shown!r}: choice {choice_digits[:20]} above {MAX_CHOICE}"
                )
            if index <= last or choice == 0:
                raise ScheduleError(
                    f"malformed schedule {shown!r}: decisions must be non-zero and in increasing order"
                )
            choices[index] = choice
            last = index
        return cls(tuple(choices))


def _bounded(digits: str, bound: int) -> int | None:
    """``digits`` as a number, or None above ``bound``; never reads a number too long to matter."""
    if len(digits.lstrip("0")) > len(str(bound)):
        return None
    value = int(digits)
    return value if value <= bound else None


def sort_key(schedule: Schedule) -> tuple[int, int, tuple[int, ...]]:
    """The order "simpler" means, for shrinking and for picking among findings.

    Fewer preemptions first (the interleaving a reviewer has to follow), then
    fewer decisions (a shorter run), then lower choices earlier (shortlex,
    as Hypothesis orders choice sequences).
    """
    return (schedule.preemptions, len(schedule.choices), schedule.choices)
