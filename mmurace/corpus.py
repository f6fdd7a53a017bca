"""The findings corpus: one JSON file per distinct finding, and running them all again.

``run``, ``stress`` and ``explore`` save every finding they report (``--save
DIR``, ``.mmurace/findings/`` unless told otherwise) with what it takes to run
it again elsewhere and later: the scenario (a catalog name, or the path of its
file), the design, the parameters, the oracles selected and the run bounds;
what it found: the oracle, the schedule (shrunk, unless shrinking was skipped),
the schedule as first found, the trace; and the mmurace version.

A file is named for the finding, not for when it was found: scenario, design,
oracle and a digest of everything that makes the finding what it is, so saving
the same finding twice leaves one file. ``replay`` runs every file of a
directory again: a regression check that a fixed design stays fixed. A file
that is not a finding (not JSON, another format, a scenario that is gone) is
reported by name and skipped, never fatal.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from actors import Executor, RunResult, Schedule, ScheduleDiverged
from mmu import Memory

from . import api, interrupt
from .errors import UsageError
from .library import is_file_ref
from .report import to_json
from .strategies import Replay, Sparse

#: what a finding file says it is; a file with another format is skipped
FORMAT: str = "mmurace-finding/1"
#: where findings are saved when no --save DIR is given
DEFAULT_DIR: Path = Path(".mmurace") / "findings"  # annotated: mypy sees this in an import cycle


class NotAFinding(Exception):
    """A file in the corpus that cannot be read back as a finding: why, in a few words."""


def portable(ref: str) -> str:
    """A scenario's or design's reference that loads from any directory: a catalog name as it
    is, a file (``FILE.py``, ``FILE.py:NAME``) by its absolute path."""
    if not is_file_ref(ref):
        return ref
    path, colon, name = ref.partition(":")
    return f"{Path(path).resolve()}{colon}{name}"


def record(config: api.Config, result: RunResult, found_as: RunResult | None = None,
           *, shrunk: bool = True) -> dict[str, Any]:
    """The file's content for the finding ``result`` of ``config``."""
    assert result.finding is not None, "only a finding is saved"
    return {
        "format": FORMAT,
        "mmurace": _version(),
        **_identity(config, result),
        "shrunk": shrunk,
        "found_as": config.schedule_string((found_as or result).schedule),
        "run": to_json(config, result),
    }


def _version() -> str:
    import importlib.metadata  # here: 16 ms of start-up that only a saved finding needs

    try:
        return importlib.metadata.version("mmurace")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _identity(config: api.Config, result: RunResult) -> dict[str, Any]:
    """What makes two findings the same one (and nothing else: not the version, not the trace)."""
    assert result.finding is not None
    return {
        "scenario": portable(config.scenario_ref or config.scenario.name),
        "design": portable(config.design_ref or config.design.name),
        "params": dict(config.params),
        "oracles": list(config.oracles),
        "max_steps": config.max_steps,
        "max_retries": config.max_retries,
        "oracle": result.finding.oracle,
        "schedule": config.schedule_string(result.schedule),
        # only when not SC: the files of SC findings stay as they were
        **({"memory": config.memory.value} if config.memory is not Memory.SC else {}),
    }


def file_name(config: api.Config, result: RunResult) -> str:
    """``race_remap-no_retry-stale_spte-<digest>.json``: the same finding, the same name."""
    identity = _identity(config, result)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return f"{config.scenario.name}-{config.design.name}-{identity['oracle']}-{digest}.json"


def save(directory: Path, config: api.Config, result: RunResult, found_as: RunResult | None = None,
         *, shrunk: bool = True) -> Path:
    """Write the finding's file in ``directory`` (created if need be); returns its path.

    The write is atomic (a temporary file renamed over the final one), so a file
    in the corpus is never half written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(config, result)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    content = record(config, result, found_as, shrunk=shrunk)
    temporary.write_text(json.dumps(content, indent=2) + "\n")
    temporary.replace(path)
    return path


@attrs.frozen
class Entry:
    """A finding file read back: the configuration to run and what it found then."""

    config: api.Config
    oracle: str
    schedule: Schedule


def load(path: Path) -> Entry:
    """Read one finding file.

    Raises:
        NotAFinding: if the file is not a finding this mmurace can run again.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise NotAFinding(f"unreadable ({type(exc).__name__}: {exc})") from None
    except json.JSONDecodeError as exc:
        raise NotAFinding(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NotAFinding(f"not a finding file (no \"format\": \"{FORMAT}\")")
    fields = {"scenario": str, "design": str, "oracle": str, "schedule": str, "params": dict,
              "oracles": list, "max_steps": int, "max_retries": int}
    for name, kind in fields.items():
        if not isinstance(data.get(name), kind):
            raise NotAFinding(f"{name!r} must be a {kind.__name__} (got {data.get(name)!r})")
    params = data["params"]
    memory = data.get("memory", Memory.SC.value)
    if memory not in [m.value for m in Memory]:
        raise NotAFinding(f"'memory' must be one of {[m.value for m in Memory]} (got {memory!r})")
    if not all(isinstance(v, int) for v in params.values()):
        raise NotAFinding(f"'params' must map names to integers (got {params!r})")
    try:
        config = api.configure(
            data["scenario"], data["design"], [str(o) for o in data["oracles"]],
            [f"{k}={v}" for k, v in params.items()],
            max_steps=data["max_steps"], max_retries=data["max_retries"], executor=Executor.DIRECT,
            memory=Memory(memory),
        )
        schedule = config.parse_schedule(data["schedule"])
    except UsageError as exc:
        raise NotAFinding(str(exc)) from None
    return Entry(config, data["oracle"], schedule)


class Verdict(enum.Enum):
    """What replaying a finding file said."""

    FAILS = "still fails"
    FIXED = "fixed"
    SKIPPED = "skipped"


@attrs.frozen
class Replayed:
    """One file of the corpus, run again."""

    path: Path
    verdict: Verdict
    detail: str  # the finding now, why it passed, or why the file was skipped
    entry: Entry | None = None
    result: RunResult | None = None


def replay_file(path: Path) -> Replayed:
    """Run one finding file again; whatever goes wrong with the file is a SKIPPED verdict."""
    try:
        entry = load(path)
        result, note = _rerun(entry)
    except NotAFinding as exc:
        return Replayed(path, Verdict.SKIPPED, str(exc))
    except Exception as exc:  # a scenario's code that raises: this file only, reported by name
        return Replayed(path, Verdict.SKIPPED, f"error: {type(exc).__name__}: {exc}")
    f = result.finding
    if f is None:
        return Replayed(path, Verdict.FIXED, f"no violation{note}", entry, result)
    was = "" if f.oracle == entry.oracle else f" (was {entry.oracle})"
    where = f"at step {f.step}" if f.step >= 0 else "before the first step"
    return Replayed(path, Verdict.FAILS, f"{f.oracle}{was} {where}{note}", entry, result)


def _rerun(entry: Entry) -> tuple[RunResult, str]:
    """The recorded decisions again; if the run no longer fits them (the design changed), its
    preemptions at the same decisions, the rest left to the running actor."""
    schedule = entry.schedule
    strategy = Replay(schedule)
    try:
        result = entry.config.run_direct(strategy)
        strategy.check_complete()
    except ScheduleDiverged:
        sparse = Sparse.from_schedule(schedule)
        return entry.config.run_direct(sparse), " (schedule diverged: replayed its preemptions)"
    return result, ""


def replay(directory: Path, stop: Callable[[], bool] = interrupt.requested) -> list[Replayed]:
    """Run every file of ``directory`` again, in name order, until ``stop()``."""
    done = []
    for path in sorted(p for p in directory.iterdir() if not p.is_dir()):
        if stop():
            break
        done.append(replay_file(path))
    return done
