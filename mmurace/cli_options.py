"""What the ``mmurace`` commands share: options, the run configuration, output helpers."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from actors import DEFAULT_MAX_RETRIES, DEFAULT_MAX_STEPS, DESIGNS, MAX_STEPS, Executor, RunResult
from mmu import ORACLES, Memory

from . import api, corpus, interrupt
from .errors import UsageError
from .exit_codes import ExitCode
from .litmus import NoOrderingRace, write_litmus
from .report import count
from .shrink import shrink

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def out() -> Console:
    """Standard output as rich writes tables (rich is imported by the commands that print one)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)

# Every numeric option has a ceiling: far above any useful value, and low enough
# that a mistyped one is refused in one line rather than overflowing a range or memory.
#: schedules, seeds, executions, budgets
COUNT: click.IntRange = click.IntRange(1, 1_000_000_000)
#: a first seed (seeds are Python ints: random.Random and Hypothesis take any)
SEED: click.IntRange = click.IntRange(0, 2**63 - 1)
#: steps of one run, and so decisions of one schedule (actors.MAX_STEPS)
STEPS: click.IntRange = click.IntRange(1, MAX_STEPS)


def echo(text: str) -> None:
    click.echo(text, nl=False)


def progress(total: int, what: str) -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    err = Console(stderr=True)
    return Progress(
        TextColumn(what), BarColumn(), MofNCompleteColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )


@attrs.frozen
class RunOptions:
    """The options every command that runs a scenario shares."""

    params: tuple[str, ...]
    oracles: tuple[str, ...]
    max_steps: int
    max_retries: int
    threads: bool = False  # draw a column per kernel thread, not per actor
    memory: str = Memory.SC.value  # the memory model (mmu/weak.py)
    litmus: Path | None = None  # where to write a found ordering race as a litmus test


def make_config(
    scenario: str, design: str, opts: RunOptions, executor: str = Executor.TRIO.value
) -> api.Config:
    """The run configuration a command's arguments name; user mistakes raise UsageError."""
    if opts.litmus is not None and opts.memory == Memory.SC.value:
        raise UsageError("--litmus needs --memory weak: a run in SC memory has no ordering race to write")
    return api.configure(
        scenario, design, opts.oracles, opts.params,
        max_steps=opts.max_steps, executor=Executor(executor), max_retries=opts.max_retries,
        memory=Memory(opts.memory),
    )


#: a decorator that adds an option or argument to a command
Decorator = Callable[[Callable[..., int]], Callable[..., int]]

# annotated: mypy checks this module in one import cycle with the scenario files (their __main__)
scenario_arg: Decorator = click.argument("scenario", metavar="SCENARIO")
DESIGN_HELP: str = f"fault-handling design: {', '.join(DESIGNS)}"


def common_options(f: Callable[..., int]) -> Callable[..., int]:
    """Add the shared run options; the command gets them as one ``opts: RunOptions``."""

    @functools.wraps(f)
    def command(*args: Any, params: tuple[str, ...], oracles: tuple[str, ...], max_steps: int,
                max_retries: int, threads: bool, memory: str, litmus: Path | None, **kwargs: Any) -> int:
        opts = RunOptions(params, oracles, max_steps, max_retries, threads, memory, litmus)
        return f(*args, opts=opts, **kwargs)

    for option in reversed((
        click.option("-p", "--param", "params", multiple=True, metavar="NAME=N",
                     help="scenario parameter (repeatable); `mmurace list` shows them"),
        click.option("--oracle", "oracles", multiple=True, metavar="NAME",
                     help=f"check only this oracle (repeatable): {', '.join(ORACLES)}; default all"),
        click.option("--max-steps", type=STEPS, default=DEFAULT_MAX_STEPS,
                     show_default=True, help="steps before a run is a step_bound finding"),
        click.option("--max-retries", type=COUNT, default=DEFAULT_MAX_RETRIES,
                     show_default=True, help="retries of one fault before the vcpu is a livelock finding"),
        click.option("--threads", is_flag=True,
                     help="one column per kernel thread, callbacks under their caller (for commit messages)"),
        click.option("--json", "as_json", is_flag=True, help="print the run(s) as JSON"),
        click.option("--memory", type=click.Choice([m.value for m in Memory]), default=Memory.SC.value,
                     show_default=True, help="memory model: sc, or weak (store buffers and late"
                     " visibility for seq/in_progress, whose moves are scheduling decisions)"),
        click.option("--litmus", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     metavar="FILE", help="write the race found (in weak memory) as a Linux-kernel"
                     " memory-model litmus test, for herd7"),
    )):
        command = option(command)
    return command


def jobs_option(what: str) -> Decorator:
    """``--jobs N``: ``what`` runs on N processes at once, the machine's cores by default."""
    return click.option(
        "--jobs", type=click.IntRange(1, 1024), default=os.cpu_count() or 1,
        show_default="the machine's cores", help=what,
    )


cluster_option: Decorator = click.option(
    "--cluster", metavar="ADDRESS", default=None,
    help="run on the workers of this Dask scheduler (tcp://HOST:PORT) instead of local processes;"
         " needs pip install 'mmurace[cluster]'",
)

executor_option: Decorator = click.option(
    "--executor", type=click.Choice([e.value for e in Executor]), default=Executor.DIRECT.value,
    show_default=True, help="run actors as Trio tasks or step them directly (same traces, direct is faster)",
)


def emit_litmus(opts: RunOptions, config: api.Config, result: RunResult | None) -> None:
    """Write the litmus test of ``result`` where ``--litmus`` says, if it is a finding;
    a run with no ordering race to write, or a file that cannot be written, is a warning."""
    if opts.litmus is None or result is None or result.finding is None:
        return
    try:
        opts.litmus.write_text(write_litmus(config, result))
    except (NoOrderingRace, OSError) as exc:
        click.echo(f"mmurace: warning: no litmus test written: {exc}", err=True)
        return
    click.echo(f"litmus: {opts.litmus} (herd7 -conf linux-kernel.cfg {opts.litmus})", err=True)


def save_options(f: Callable[..., int]) -> Callable[..., int]:
    """Add --save DIR and --no-save; the command gets them as one ``save: Path | None``."""

    @functools.wraps(f)
    def command(*args: Any, save: Path, no_save: bool, **kwargs: Any) -> int:
        return f(*args, save=None if no_save else save, **kwargs)

    for option in reversed((
        click.option("--save", type=click.Path(file_okay=False, path_type=Path), default=corpus.DEFAULT_DIR,
                     show_default=True, metavar="DIR", envvar="MMURACE_SAVE", show_envvar=True,
                     help="write each finding there as JSON (`mmurace corpus replay DIR` reruns them)"),
        click.option("--no-save", is_flag=True, help="save no finding"),
    )):
        command = option(command)
    return command


@attrs.frozen
class ToSave:
    """A finding as the corpus keeps it: shrunk if it could be, with the run as found."""

    config: api.Config
    result: RunResult
    found_as: RunResult
    shrunk: bool

    @classmethod
    def shrinking(cls, config: api.Config, found: RunResult) -> ToSave:
        """Shrink ``found`` for the corpus; a signal asking to stop leaves it (partly) as found."""
        result = shrink(config, found).result
        return cls(config, result, found, shrunk=not interrupt.requested())


def save_findings(directory: Path | None, findings: Sequence[ToSave], *, quiet: bool = False) -> None:
    """Save each finding in ``directory`` (None: save nothing) and say so in one line, unless
    ``quiet`` (JSON on stdout).

    A corpus that cannot be written is a warning: the command's own result stands.
    """
    if directory is None or not findings:
        return
    try:
        paths = {corpus.save(directory, f.config, f.result, f.found_as, shrunk=f.shrunk) for f in findings}
    except OSError as exc:
        click.echo(f"mmurace: warning: findings not saved in {str(directory)!r}: {exc}", err=True)
        return
    if quiet:
        return
    many = f"saved {count(len(paths), 'finding')} in {directory}"
    echo(f"saved: {paths.pop()}\n" if len(paths) == 1 else many + "\n")


def search_status(stop: interrupt.Stop, *, found: bool, inconclusive: bool = False) -> int:
    """The exit status of a search: interrupted first, then violation, limit, clean."""
    if stop.signum is not None:
        return ExitCode.interrupted_by(stop.signum)
    if found:
        return ExitCode.VIOLATION
    return ExitCode.INCONCLUSIVE if inconclusive else ExitCode.CLEAN
