"""The ``mmurace`` command: the group, its help, and how every way a command can end becomes
an exit status (``exit_codes.ExitCode``): user mistakes and internal errors as one line on
stderr, interrupts as 130 (or 143 for SIGTERM). The commands live in ``cli_run``,
``cli_explore``, ``cli_search`` and ``cli_corpus``, each imported when its command runs
(a proof at one remap takes about as long as Python takes to import everything).
"""

from __future__ import annotations

import importlib
import shlex
import sys
import traceback
from collections.abc import Sequence

import click

from . import interrupt
from .errors import UsageError
from .exit_codes import MEANINGS, ExitCode

HELP = """Hunt races in KVM's secondary-MMU coherence protocol (MMU notifiers).

Each scenario is a race from the 2011 review of KVM's MMU-notifier patches,
each design a way KVM could handle guest faults. A controlled scheduler picks
who runs at every step, so every interleaving is a short schedule string that
replays byte for byte, shrinks, and compares across designs.

\b
Examples:
  mmurace run race_remap                       every design, its first race
  mmurace run race_remap --design no_retry     hunt one design, full trace
  mmurace replay race_remap --design no_retry --schedule v1:10:2=1@99959b
  mmurace stress race_remap --design no_retry --strategy pct
  mmurace explore race_remap --design seq_retry    every schedule: a proof
  mmurace matrix                               every design x every scenario
  mmurace corpus replay                        do saved findings still fail?
  mmurace list                                 scenarios, designs, oracles
"""

EPILOG = "\b\nExit status:\n" + "\n".join(f"  {int(code):<4} {text}" for code, text in MEANINGS.items())


#: each command, in the order --help lists them, and the module and name that define it
COMMANDS = {
    "run": ("cli_run", "run"),
    "replay": ("cli_run", "replay"),
    "stress": ("cli_search", "stress_cmd"),
    "explore": ("cli_explore", "explore_cmd"),
    "shrink": ("cli_explore", "shrink_cmd"),
    "matrix": ("cli_search", "matrix_cmd"),
    "corpus": ("cli_corpus", "corpus_cmd"),
    "list": ("cli_run", "list_"),
}


class _Commands(click.Group):
    """A group that lists its commands in ``COMMANDS``' order and imports one only when
    it is asked for (click's lazily loaded subcommands)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        where = COMMANDS.get(name)
        if where is None:
            return None
        module, attribute = where
        command: click.Command = getattr(importlib.import_module(f".{module}", __package__), attribute)
        return command


@click.group(cls=_Commands, help=HELP, epilog=EPILOG, context_settings={"max_content_width": 100})
@click.version_option(package_name="mmurace", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="on an internal error, print its traceback")
def cli(debug: bool) -> None:
    pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status; nothing but SystemExit escapes."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        status = cli.main(args=args or ["--help"], prog_name="mmurace", standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as exc:
        return _failed(exc, args)
    return status if isinstance(status, int) else ExitCode.CLEAN


def _failed(exc: BaseException, args: list[str]) -> int:
    """Print one line for ``exc`` (and its traceback under --debug); return the exit status."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # a Trio nursery's wrapping of one error
    if isinstance(exc, click.UsageError):
        click.echo(f"mmurace: error: {exc.format_message()}", err=True)
        return ExitCode.USAGE
    if isinstance(exc, UsageError):
        click.echo(f"mmurace: error: {exc}", err=True)
        return ExitCode.USAGE
    signum = _interrupted_by(exc)
    if signum is not None:
        click.echo("mmurace: interrupted", err=True)
        return ExitCode.interrupted_by(signum)
    if _debug(args):
        traceback.print_exception(exc)
        hint = ""
    else:
        hint = f" (re-run as 'mmurace --debug {shlex.join(args)}' for the traceback)"
    click.echo(f"mmurace: internal error: {type(exc).__name__}: {exc}{hint}", err=True)
    return ExitCode.INTERNAL


def _interrupted_by(exc: BaseException) -> int | None:
    """The signal behind ``exc`` if it is an interrupt (click turns one into Abort)."""
    if isinstance(exc, click.exceptions.Abort) and exc.__context__ is not None:
        exc = exc.__context__
    if isinstance(exc, BaseExceptionGroup):
        interrupts, others = exc.split(KeyboardInterrupt)
        if others is not None or interrupts is None:
            return None
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
    if isinstance(exc, KeyboardInterrupt | click.exceptions.Abort):
        return getattr(exc, "signum", interrupt.SIGINT)
    return None


def _debug(args: list[str]) -> bool:
    """Whether --debug was given to the group (it comes before the command's name)."""
    for arg in args:
        if not arg.startswith("-"):
            return False
        if arg == "--debug":
            return True
    return False


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
