"""The ``mmurace`` command: the group, its help, and how every way a command can end becomes
an exit status (``exit_codes.ExitCode``): user mistakes and internal errors as one line on
stderr, interrupts as 130 (or 143 for SIGTERM). The commands live in ``cli_run``,
``cli_search`` and ``cli_corpus``.
"""

from __future__ import annotations

import shlex
import sys
import traceback
from collections.abc import Sequence

import click

from . import interrupt
from .cli_corpus import corpus_cmd
from .cli_run import list_, replay, run
from .cli_search import explore_cmd, matrix_cmd, shrink_cmd, stress_cmd
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


class _Commands(click.Group):
    """A group that lists its commands in the order they were added, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_Commands, help=HELP, epilog=EPILOG, context_settings={"max_content_width": 100})
@click.version_option(package_name="mmurace", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="on an internal error, print its traceback")
def cli(debug: bool) -> None:
    pass


for _command in (run, replay, stress_cmd, explore_cmd, shrink_cmd, matrix_cmd, corpus_cmd, list_):
    cli.add_command(_command)


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
