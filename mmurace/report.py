"""How a run is shown: columns as kernel race diagrams are drawn, and JSON.

The trace is plain text, one column per actor, time going down, so it can be
pasted into a commit message; it depends on nothing but the run, so the same
schedule always prints the same bytes.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from actors import RunResult, Schedule, Step
from actors.runtime import MEMORY, is_memory_actor

from .strategies import Replay

if TYPE_CHECKING:
    from .api import Config
    from .matrix import Cell

#: bounds on the width of one actor's column: wide enough for the longest label
MIN_COLUMN, MAX_COLUMN = 24, 40
_GAP = "  "


def _cell(lines: list[str], width: int) -> list[str]:
    out: list[str] = []
    for i, text in enumerate(lines):
        indent = "" if i == 0 else "  "
        out += textwrap.wrap(
            text, width, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
        ) or [""]
    return out


def render_trace(result: RunResult, *, details: bool = True, threads: bool = False) -> str:
    """Draw the run: a column per actor, a row per step, the fatal step marked ``>>``.

    With ``details``, each step shows what the model recorded under its label.
    With ``threads``, a column per kernel thread instead, as race diagrams in
    commit messages are drawn: the notifier's callbacks under the task that
    called them, and no column for a serving actor.
    """
    def column_of(step: Step) -> str:
        if is_memory_actor(step.actor):  # weak memory: stores moving, in a column of their own
            return MEMORY
        return (step.thread or step.actor) if threads else step.actor

    used = {column_of(s) for s in result.steps}
    actors = [a for a in result.actors if a in used] if threads else list(result.actors)
    actors = [a for a in actors if not is_memory_actor(a)] + ([MEMORY] if MEMORY in used else [])
    longest = max((len(s.label) for s in result.steps), default=0)
    width = min(MAX_COLUMN, max(MIN_COLUMN, longest, *(len(a) for a in actors)))
    fatal = result.finding.step if result.finding else None
    margin = len(f">>{len(result.steps)}")
    rows = ["#".rjust(margin) + " " + _GAP.join(a.ljust(width) for a in actors).rstrip()]
    if details:  # a rule between header and steps, where cells span several lines
        rows.append("-" * margin + " " + _GAP.join("-" * width for _ in actors))
    for step in result.steps:
        col = actors.index(column_of(step))
        lines = _cell([step.label, *step.events] if details else [step.label], width)
        mark = ">>" if step.index == fatal else ""
        for j, line in enumerate(lines):
            index = f"{mark}{step.index}" if j == 0 else ""
            pad = (width + len(_GAP)) * col
            rows.append((index.rjust(margin) + " " + " " * pad + line).rstrip())
    return "\n".join(rows) + "\n"


def count(n: int, noun: str) -> str:
    """``3 preemptions``, ``1 preemption``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def switches(config: Config, s: Schedule) -> int:
    """How many of ``s``'s decisions switch away from an actor that could go on, replayed:
    the preemptions ``explore``'s bound counts. ``s.preemptions`` counts every choice
    other than the default, as the string and the shrinker do; the two differ where
    the actor that ran last could not go on (it waits, or ended; in weak memory a
    memory actor, after its one step) and the next actor chosen is not the first
    listed after it. A schedule that does not replay counts as the string does."""
    replay = Replay(s)
    try:
        config.run_direct(replay)
    except Exception:  # a schedule of another run: not this note's to report
        return s.preemptions
    return replay.switches


def schedule_note(config: Config, s: Schedule) -> str:
    """The schedule string and how complex it is: preemptions as ``explore``'s bound
    counts them (``switches``), and, where the string counts more, its own count."""
    bound = switches(config, s) if s.preemptions else 0
    size = f"{count(bound, 'preemption')}, {count(len(s.choices), 'decision')}"
    if bound != s.preemptions:
        size += f", {s.preemptions} not the default"
    return f"{config.schedule_string(s)} ({size})"


def verdict(result: RunResult) -> str:
    """One line: the finding, or that the run passed every oracle."""
    f = result.finding
    if f is None:
        return f"no violation ({len(result.steps)} steps)"
    where = f"at step {f.step}" if f.step >= 0 else "before the first step"
    return f"VIOLATION {f.oracle} {where}: {f.message}"


def replay_command(config: Config, result: RunResult, *, threads: bool = False) -> str:
    """The exact command that replays ``result`` and draws it as it was drawn."""
    drawn = " --threads" if threads else ""
    return f"mmurace replay {config.describe()}{drawn} --schedule {config.schedule_string(result.schedule)}"


def render_run(config: Config, result: RunResult, *, details: bool = True, threads: bool = False) -> str:
    """What was run, the trace, verdict, schedule string and the command that replays it."""
    s = result.schedule
    return (
        f"{config.describe()}\n\n"
        + render_trace(result, details=details, threads=threads)
        + "\n"
        + verdict(result)
        + "\n"
        + f"schedule: {schedule_note(config, s)}\n"
        + f"replay:   {replay_command(config, result, threads=threads)}\n"
    )


def to_json(config: Config, result: RunResult) -> dict[str, Any]:
    """The run as plain data for scripts."""
    f = result.finding
    return {
        "scenario": config.scenario.name,
        "design": config.design.name,
        "params": dict(config.params),
        "status": result.status.name.lower(),
        "actors": list(result.actors),
        "steps": [
            {
                "index": s.index,
                "actor": s.actor,
                "thread": s.thread,
                "label": s.label,
                "events": list(s.events),
            }
            for s in result.steps
        ],
        "finding": None if f is None else {"oracle": f.oracle, "step": f.step, "message": f.message},
        "schedule": config.schedule_string(result.schedule),
        "preemptions": result.schedule.preemptions,
        "replay": replay_command(config, result),
    }


def cell_json(cell: Cell) -> dict[str, Any]:
    """A matrix cell as plain data: null where a field does not apply, the replay of a broken cell."""
    broken = cell.schedule != ""
    return {
        "scenario": cell.scenario,
        "design": cell.design,
        "outcome": cell.outcome.value,
        "oracle": cell.oracle or None,
        "schedule": cell.schedule if broken else None,
        "preemptions": Schedule.decode(cell.schedule.partition("@")[0]).preemptions if broken else None,
        "replay": cell.replay() if broken else None,
        "schedules": cell.schedules,
        "bound": cell.bound,
    }
