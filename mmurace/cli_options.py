"""What the ``mmurace`` commands share: options, the run configuration, output helpers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from actors import DEFAULT_MAX_RETRIES, DEFAULT_MAX_STEPS, DESIGNS, Executor
from mmu import ORACLES

from . import api

out = Console(highlight=False, soft_wrap=True)


def echo(text: str) -> None:
    click.echo(text, nl=False)


def progress(total: int, what: str) -> Progress:
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


def make_config(
    scenario: str, design: str, opts: RunOptions, executor: str = Executor.TRIO.value
) -> api.Config:
    """The run configuration a command's arguments name; user mistakes raise UsageError."""
    return api.configure(
        scenario, design, opts.oracles, opts.params,
        max_steps=opts.max_steps, executor=Executor(executor), max_retries=opts.max_retries,
    )


scenario_arg = click.argument("scenario", metavar="SCENARIO")
DESIGN_HELP = f"fault-handling design: {', '.join(DESIGNS)}"


def common_options(f: Callable[..., int]) -> Callable[..., int]:
    """Add the shared run options; the command gets them as one ``opts: RunOptions``."""

    @functools.wraps(f)
    def command(*args: Any, params: tuple[str, ...], oracles: tuple[str, ...], max_steps: int,
                max_retries: int, threads: bool, **kwargs: Any) -> int:
        return f(*args, opts=RunOptions(params, oracles, max_steps, max_retries, threads), **kwargs)

    for option in reversed((
        click.option("-p", "--param", "params", multiple=True, metavar="NAME=N",
                     help="scenario parameter (repeatable); `mmurace list` shows them"),
        click.option("--oracle", "oracles", multiple=True, metavar="NAME",
                     help=f"check only this oracle (repeatable): {', '.join(ORACLES)}; default all"),
        click.option("--max-steps", type=click.IntRange(min=1), default=DEFAULT_MAX_STEPS,
                     show_default=True, help="steps before a run is a step_bound finding"),
        click.option("--max-retries", type=click.IntRange(min=1), default=DEFAULT_MAX_RETRIES,
                     show_default=True, help="retries of one fault before the vcpu is a livelock finding"),
        click.option("--threads", is_flag=True,
                     help="one column per kernel thread, callbacks under their caller (for commit messages)"),
        click.option("--json", "as_json", is_flag=True, help="print the run(s) as JSON"),
    )):
        command = option(command)
    return command


executor_option = click.option(
    "--executor", type=click.Choice([e.value for e in Executor]), default=Executor.DIRECT.value,
    show_default=True, help="run actors as Trio tasks or step them directly (same traces, direct is faster)",
)
