"""The ``mmurace`` command: a thin click layer over ``mmurace.api``.

\b
    mmurace run race_remap                      the thread's story: every design
    mmurace run race_remap --design no_retry    hunt seeds until a race shows
    mmurace run race_remap --design no_retry --seed 42
    mmurace replay race_remap --design no_retry --schedule v1:10:2=1,8=1
    mmurace stress race_remap --design no_retry --strategy pct --schedules 1000
    mmurace explore race_remap --design seq_retry --preemptions 2
    mmurace shrink race_remap --design no_retry --schedule v1:10:2=1,8=1
    mmurace list

Exit status: 0 no violation, 1 a violation was found, 2 usage error.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from actors import DEFAULT_MAX_RETRIES, DEFAULT_MAX_STEPS, DESIGNS, Executor, RunResult
from mmu import ORACLES

from . import api
from .errors import UsageError
from .report import count, render_run, render_trace, replay_command, to_json, verdict

_out = Console(highlight=False, soft_wrap=True)


def _echo(text: str) -> None:
    click.echo(text, nl=False)


def _progress(total: int, what: str) -> Progress:
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


def _config(scenario: str, design: str, opts: RunOptions, executor: str = Executor.TRIO.value) -> api.Config:
    sc = api.load_scenario(scenario)
    return api.Config(
        sc,
        api.check_design(sc, design),
        api.check_oracles(opts.oracles),
        opts.max_steps,
        api.parse_params(sc, opts.params),
        Executor(executor),
        opts.max_retries,
    )


_scenario_arg = click.argument("scenario", metavar="SCENARIO")
_design_help = f"fault-handling design: {', '.join(DESIGNS)}"


def _common(f: Callable[..., int]) -> Callable[..., int]:
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


@click.group(help=__doc__)
def cli() -> None:
    pass


@cli.command()
@_scenario_arg
@click.option("--design", help=_design_help + "; default: all, one after the other")
@click.option("--seed", type=click.IntRange(min=0), help="run exactly this one seeded schedule")
@click.option("--seeds", type=click.IntRange(min=1), default=api.DEFAULT_SEEDS, show_default=True,
              help="seeds to try per design when no --seed is given")
@_common
def run(scenario: str, design: str | None, seed: int | None, seeds: int, opts: RunOptions,
        as_json: bool) -> int:
    """Hunt a race in SCENARIO (a catalog name or a path to a scenario file).

    \b
    With no --design, tell the story: each design in turn, its first race
    or the number of schedules it survived. With --design D, hunt D. With
    --seed N too, run exactly one schedule.
    """
    sc = api.load_scenario(scenario)
    designs = [design] if design is not None else list(sc.designs)
    configs = [_config(scenario, d, opts) for d in designs]
    span = range(seed, seed + 1) if seed is not None else range(seeds)
    hunts = []
    for config in configs:
        with _progress(len(span), f"{sc.name} {config.design}") as bar:
            task = bar.add_task("", total=len(span))
            hunts.append(api.run_sync(api.hunt, config, span, lambda n, t=task: bar.update(t, completed=n)))
    if as_json:
        _echo(json.dumps([_hunt_json(h) for h in hunts], indent=2) + "\n")
    elif design is None:
        _story(sc, hunts, opts.threads)
    else:
        _one(hunts[0], span, opts.threads)
    return 1 if any(h.result is not None for h in hunts) else 0


def _hunt_json(h: api.Hunt) -> dict:
    return {
        "design": h.config.design, "tried": h.tried, "seed": h.seed,
        "run": None if h.result is None else to_json(h.config, h.result),
    }


def _one(h: api.Hunt, span: range, threads: bool) -> None:
    if h.result is not None:
        _echo(render_run(h.config, h.result, threads=threads))
        _echo(f"found by seed {h.seed} after {h.tried} schedule{'s' if h.tried > 1 else ''}\n")
    elif len(span) == 1 and h.last is not None:  # one seed that passed: show it all the same
        _echo(render_run(h.config, h.last, threads=threads))
    else:
        _echo(f"{h.config.describe()}: survived {h.tried} schedules"
              f" (seeds {span.start}-{span.stop - 1}), no violation\n")


def _story(sc: api.Scenario, hunts: list[api.Hunt], threads: bool) -> None:
    """Each design's first race, shrunk to its fewest preemptions: the thread's argument."""
    from .shrink import shrink

    _echo(f"{sc.name}: {sc.summary}\n{sc.story}\n")
    shown: list[RunResult | None] = []
    for h in hunts:
        _echo(f"\n== {h.config.design}: {DESIGNS[h.config.design].summary}\n")
        if h.result is None:
            _echo(f"survived {h.tried} schedules, no violation\n")
            shown.append(None)
            continue
        race = shrink(h.config, h.result).result
        shown.append(race)
        _echo(render_trace(race, details=False, threads=threads) + verdict(race) + "\n")
        _echo(f"found by seed {h.seed} as {h.result.schedule.encode()}, shrunk to"
              f" {count(race.schedule.preemptions, 'preemption')}: {replay_command(h.config, race)}\n")
    table = Table(box=None, show_edge=False, pad_edge=False)
    for col in ("design", "result", "schedules", "seed"):
        table.add_column(col)
    for h, shrunk in zip(hunts, shown, strict=True):
        f = shrunk.finding if shrunk is not None else None
        result = "survived" if f is None else f"{f.oracle} at step {f.step}"
        table.add_row(h.config.design, result, str(h.tried), "-" if h.seed is None else str(h.seed))
    _echo("\n")
    _out.print(table)


@cli.command()
@_scenario_arg
@click.option("--design", required=True, help=_design_help)
@click.option("--schedule", required=True, metavar="S", help="schedule string printed by run (v1:...)")
@_common
def replay(scenario: str, design: str, schedule: str, opts: RunOptions, as_json: bool) -> int:
    """Replay one recorded schedule of SCENARIO and print its trace.

    \b
    mmurace replay race_remap --design no_retry --schedule v1:10:2=1,8=1
    """
    config = _config(scenario, design, opts)
    result = api.run_sync(api.replay, config, schedule)
    if as_json:
        _echo(json.dumps(to_json(config, result), indent=2) + "\n")
    else:
        _echo(render_run(config, result, threads=opts.threads))
    return 1 if result.finding is not None else 0


@cli.command("list")
def list_() -> int:
    """List scenarios (with their parameters), designs, oracles and the runtime's own findings."""
    from scenarios import CATALOG

    sections = {
        "scenarios": {sc.name: sc.summary for sc in CATALOG.values()},
        "designs": {d.name: d.summary for d in DESIGNS.values()},
        "oracles (--oracle NAME)": {n: (o.__doc__ or "").strip().splitlines()[0] for n, o in ORACLES.items()},
        "findings the runtime makes itself (always on)": RUNTIME_FINDINGS,
    }
    width = max(len(name) for items in sections.values() for name in items)
    for kind, items in sections.items():
        _echo(f"{kind}:\n")
        for name, summary in items.items():
            _echo(f"  {name:<{width}}  {summary}\n")
            params = CATALOG[name].params() if kind == "scenarios" else {}
            if params:
                _echo(f"  {'':<{width}}  parameters: {' '.join(f'-p {k}={v}' for k, v in params.items())}\n")
    return 0


#: findings no oracle makes: the runtime reports them whatever --oracle says
RUNTIME_FINDINGS = {
    "deadlock": "nobody can run and some actor waits",
    "livelock": "a fault retried more than --max-retries times, each time for a new invalidation",
    "step_bound": "a run took more than --max-steps steps",
    "sleep_in_atomic": "a sleeping lock (mmap_lock, get_user_pages) taken under a spinlock",
    "lock_order": "two locks taken in both orders in one run: a possible ABBA deadlock",
    "crash": "an actor raised (a model assertion: the lock a step needs was not held ...)",
}


from . import cli_search  # noqa: E402,F401  (registers stress, explore, shrink on `cli`)


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
