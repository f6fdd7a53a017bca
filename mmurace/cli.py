"""The ``mmurace`` command: a thin click layer over ``mmurace.api``.

\b
    mmurace run race_remap                      the thread's story: every design
    mmurace run race_remap --design no_retry    hunt seeds until a race shows
    mmurace run race_remap --design no_retry --seed 42
    mmurace replay race_remap --design no_retry --schedule v1:10:2=1,8=1@99959b
    mmurace stress race_remap --design no_retry --strategy pct --schedules 1000
    mmurace explore race_remap --design seq_retry --preemptions 2
    mmurace shrink race_remap --design no_retry --schedule v1:10:2=1,8=1@99959b
    mmurace list

Exit status: 0 no violation, 1 a violation was found, 2 usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from .cli_run import list_, replay, run
from .cli_search import explore_cmd, matrix_cmd, shrink_cmd, stress_cmd
from .errors import UsageError


@click.group(help=__doc__)
def cli() -> None:
    pass


for _command in (run, replay, list_, stress_cmd, explore_cmd, shrink_cmd, matrix_cmd):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status, printing user errors as one line."""
    try:
        status = cli.main(args=list(argv) if argv is not None else None, prog_name="mmurace",
                          standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"mmurace: error: {exc.format_message()}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("mmurace: interrupted", err=True)
        return 130
    except UsageError as exc:
        click.echo(f"mmurace: error: {exc}", err=True)
        return 2
    return status if isinstance(status, int) else 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
