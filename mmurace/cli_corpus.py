"""``mmurace corpus``: the findings that run, stress and explore saved, run again."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import corpus, interrupt
from .cli_options import echo
from .corpus import DEFAULT_DIR
from .errors import UsageError
from .exit_codes import ExitCode
from .report import count, to_json


@click.group("corpus", short_help="saved findings: do they still fail?")
def corpus_cmd() -> None:
    """The findings corpus: one JSON file per finding, saved by run, stress and explore
    (--save DIR, default .mmurace/findings)."""


@corpus_cmd.command("replay")
@click.argument("directory", type=click.Path(path_type=Path), default=DEFAULT_DIR, envvar="MMURACE_SAVE")
@click.option("--json", "as_json", is_flag=True, help="print the verdicts as JSON")
def replay_cmd(directory: Path, as_json: bool) -> int:
    """Replay every finding saved in DIRECTORY (default: $MMURACE_SAVE, else .mmurace/findings)
    and say which still fail (exit 1 if any does).

    \b
    A regression check for a design that was fixed: its findings must now pass.
    Files that are not findings are reported by name and skipped.
    mmurace corpus replay .mmurace/findings
    """
    if not directory.is_dir():
        raise UsageError(f"no findings directory {str(directory)!r}")
    with interrupt.stoppable() as stop:
        done = corpus.replay(directory)
    if as_json:
        echo(json.dumps([_replayed_json(r) for r in done], indent=2) + "\n")
    else:
        width = max((len(v.value) for v in corpus.Verdict), default=0)
        for r in done:
            what = f"  ({r.entry.config.describe()})" if r.entry is not None else ""
            echo(f"{r.verdict.value:<{width}}  {r.path.name}: {r.detail}{what}\n")
        tally = {v: sum(r.verdict is v for r in done) for v in corpus.Verdict}
        stopped = "interrupted: " if stop else ""
        echo(f"{stopped}{count(len(done), 'file')}: {tally[corpus.Verdict.FAILS]} still failing,"
             f" {tally[corpus.Verdict.FIXED]} fixed, {tally[corpus.Verdict.SKIPPED]} skipped\n")
    if stop.signum is not None:
        return ExitCode.interrupted_by(stop.signum)
    return ExitCode.VIOLATION if any(r.verdict is corpus.Verdict.FAILS for r in done) else ExitCode.CLEAN


def _replayed_json(r: corpus.Replayed) -> dict:
    return {
        "file": r.path.name,
        "verdict": r.verdict.name.lower(),
        "detail": r.detail,
        "run": None if r.entry is None or r.result is None else to_json(r.entry.config, r.result),
    }
