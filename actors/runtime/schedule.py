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

_V1 = re.compile(r"v1:(\d+)(?::((?:\d+=\d+)(?:,\d+=\d+)*))?")


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
    def decode(cls, text: str) -> Schedule:
        """Parse a v1 string.

        Raises:
            ScheduleError: if ``text`` is not a well-formed v1 schedule.
        """
        match = _V1.fullmatch(text.strip())
        if match is None:
            raise ScheduleError(
                f"malformed schedule {text!r}: expected 'v1:N' or 'v1:N:I=C,I=C...'"
            )
        length = int(match.group(1))
        choices = [0] * length
        last = -1
        for pair in (match.group(2) or "").split(",") if match.group(2) else ():
            index, choice = (int(x) for x in pair.split("="))
            if index >= length:
                raise ScheduleError(
                    f"malformed schedule {text!r}: decision {index} beyond length {length}"
                )
            if index <= last or choice == 0:
                raise ScheduleError(
                    f"malformed schedule {text!r}: decisions must be non-zero and in increasing order"
                )
            choices[index] = choice
            last = index
        return cls(tuple(choices))


def sort_key(schedule: Schedule) -> tuple[int, int, tuple[int, ...]]:
    """The order "simpler" means, for shrinking and for picking among findings.

    Fewer preemptions first (the interleaving a reviewer has to follow), then
    fewer decisions (a shorter run), then lower choices earlier (shortlex,
    as Hypothesis orders choice sequences).
    """
    return (schedule.preemptions, len(schedule.choices), schedule.choices)
