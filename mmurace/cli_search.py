"""The campaign commands: ``stress`` (many schedules) and ``matrix`` (every design against
every scenario), both on process pools."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import attrs
import click

from actors import DESIGNS
from mmu import Memory

from . import api, interrupt
from .cli_options import (
    COUNT,
    DESIGN_HELP,
    SEED,
    RunOptions,
    ToSave,
    cluster_option,
    common_options,
    echo,
    emit_litmus,
    executor_option,
    jobs_option,
    make_config,
    progress,
    save_findings,
    save_options,
    scenario_arg,
    search_status,
)
from .errors import UsageError, unknown
from .library import is_file_ref, load_file
from .matrix import DEFAULT_BUDGET, EXPLORE_LIMIT, PROOF_LIMIT, Outcome, matrix
from .report import cell_json, count, render_run, replay_command, schedule_note, to_json
from .shrink import shrink
from .stress import Found, Kind, Stress, stress


def _found_json(f: Found, count: int) -> dict:
    return {
        "count": count, "strategy": f.strategy, "seed": f.seed,
        "location": dict(zip(("oracle", "actor", "step"), f.location, strict=True)),
        "run": to_json(f.config, f.result),
        "shrunk": None if f.shrunk is None else to_json(f.config, f.shrunk),
        "fewest_preemptions": None if f.shrunk is None else not f.not_fewest,
    }


@click.command("stress", short_help="many schedules (random, PCT, Hypothesis)")
@scenario_arg
@click.option("--design", required=True, help=DESIGN_HELP)
@click.option("--strategy", "kind", type=click.Choice([k.value for k in Kind]), default=Kind.PCT.value,
              show_default=True, help="how schedules are drawn")
@click.option("--schedules", type=COUNT, default=1000, show_default=True,
              help="schedules to try")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="first seed (random, pct) or Hypothesis's seed")
@click.option("--depth", type=click.IntRange(1, 1000), default=2, show_default=True,
              help="PCT bug depth: priority change points + 1")
@click.option("--keep-going", is_flag=True, help="collect every finding instead of stopping at the first")
@click.option("--no-shrink", is_flag=True, help="show the finding as found, without shrinking it")
@click.option("--database", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Hypothesis example database directory (remembers failing schedules)")
@jobs_option("processes running random and pct schedules, each its own seeds (same findings whatever N);"
             " hypothesis runs in one")
@cluster_option
@executor_option
@common_options
@save_options
def stress_cmd(scenario: str, design: str, kind: str, schedules: int, seed: int, depth: int,
               keep_going: bool, no_shrink: bool, database: Path | None, jobs: int, cluster: str | None,
               executor: str, opts: RunOptions, as_json: bool, save: Path | None) -> int:
    """Hunt races in SCENARIO with many schedules; shrink and draw what is found.

    \b
    mmurace stress race_remap --design no_retry --strategy pct --schedules 1000
    mmurace stress race_remap --design no_retry --strategy hypothesis --keep-going
    """
    config = make_config(scenario, design, opts, executor)
    strategy = Kind(kind)
    with interrupt.stoppable() as stop:
        with progress(schedules, f"{config.describe()} {kind}") as bar:
            task = bar.add_task("", total=schedules)
            outcome = api.run_sync(functools.partial(
                stress, config, strategy, schedules=schedules, seed=seed, depth=depth, keep_going=keep_going,
                database=database, progress=lambda n: bar.update(task, completed=n), jobs=jobs,
                cluster=cluster,
            ), executor=config.executor)
        # a signal asked to stop: show what was found as it was found
        groups = [(g.first if no_shrink or stop else _with_shrunk(g.first), g.count) for g in outcome.groups]
    _print_stress(config, outcome, groups, kind, shrinking=not no_shrink, threads=opts.threads,
                  as_json=as_json)
    if groups:
        emit_litmus(opts, config, groups[0][0].shrunk or groups[0][0].result)
    save_findings(save, [ToSave(config, f.shrunk or f.result, f.result, shrunk=f.shrunk is not None)
                         for f, _ in groups], quiet=as_json)
    return search_status(stop, found=bool(groups))


def _print_stress(config: api.Config, outcome: Stress, groups: list[tuple[Found, int]], kind: str, *,
                  shrinking: bool, threads: bool, as_json: bool) -> None:
    per_second = outcome.schedules / max(outcome.seconds, 1e-9)
    rate = f"{outcome.schedules} schedules in {outcome.seconds:.2f} s: {per_second:.0f} schedules/s"
    if as_json:
        echo(json.dumps({"strategy": kind, "schedules": outcome.schedules, "first_at": outcome.first_at,
                         "interrupted": outcome.interrupted,
                         "findings": [_found_json(f, n) for f, n in groups]}, indent=2) + "\n")
        return
    stopped = f"interrupted after {count(outcome.schedules, 'schedule')}: " if outcome.interrupted else ""
    so_far = " so far" if outcome.interrupted else ""
    if not groups:
        echo(f"{config.describe()}: {stopped}no violation{so_far} in {outcome.schedules} {kind} schedules\n"
             f"{rate}\n")
        return
    first, _ = groups[0]
    echo(render_run(config, first.shrunk or first.result, threads=threads))
    echo(f"found by {first.strategy} as {schedule_note(config, first.result.schedule)}"
         f" after {count(outcome.first_at or 0, 'schedule')}\n")
    if first.shrunk is not None:
        echo(f"shrunk to {schedule_note(config, first.shrunk.schedule)}\n")
        if first.not_fewest:
            echo(f"  ({first.not_fewest})\n")
    elif shrinking:
        echo("not shrunk (interrupted)\n")
    echo(f"\n{stopped}{count(len(groups), 'distinct finding')}{so_far}:\n")
    for f, n in groups:
        oracle, actor, label = f.location
        echo(f"  {n:>5} x {oracle} at {actor}: {label}   first by {f.strategy}\n")
        echo(f"          {replay_command(config, f.shrunk or f.result, threads=threads)}\n")
    echo(rate + "\n")


def _matrix_refs(given: tuple[str, ...], catalog: dict, what: str) -> list[str]:
    """The rows or columns ``--design``/``--scenario`` name: catalog names as given, each
    file as what it defines (``FILE.py:NAME``). Files alone add to the whole catalog."""
    refs: list[str] = []
    for ref in given:
        if not is_file_ref(ref):
            if ref not in catalog:
                raise unknown(what, ref, catalog)
            refs.append(ref)
            continue
        path, _, name = ref.partition(":")
        defined = getattr(load_file(path), f"{what}s")
        if name and name not in defined:
            raise unknown(f"{what} in {path}", name, defined)
        if not (name or defined):
            raise UsageError(f"{path} defines no {what}")
        refs += [f"{path}:{n}" for n in ([name] if name else defined)]
    if all(is_file_ref(r) for r in given):
        refs = list(catalog) + refs
    return refs


def _with_shrunk(f: Found) -> Found:
    shrunk = shrink(f.config, f.result)
    return attrs.evolve(f, shrunk=shrunk.result, not_fewest="" if shrunk.minimal else shrunk.note())


@click.command("matrix", short_help="every design against every scenario")
@click.option("--scenario", "scenarios", multiple=True, metavar="NAME",
              help="only this scenario (repeatable); default all; FILE.py adds its scenarios as columns")
@click.option("--design", "designs", multiple=True, metavar="NAME",
              help="only this design (repeatable); default all; FILE.py adds the file's designs as rows")
@click.option("--budget", type=COUNT, default=DEFAULT_BUDGET, show_default=True,
              help="schedules per strategy (random, PCT) per cell")
@jobs_option("cells judged at once, one process each (never more than the cells), longest first")
@cluster_option
@click.option("--details", is_flag=True, help="list the replay command of every broken cell")
@click.option("--json", "as_json", is_flag=True, help="print the cells as JSON")
@click.option("--memory", type=click.Choice([m.value for m in Memory]), default=Memory.SC.value,
              show_default=True, help="memory model every cell is judged in (weak: docs/model.md section 6)")
@click.option("--limit", type=COUNT, default=PROOF_LIMIT, show_default=True,
              help="runs a cell's unbounded proof may take; past it the cell is proved for a preemption"
                   f" bound (at most {EXPLORE_LIMIT} runs each)")
def matrix_cmd(scenarios: tuple[str, ...], designs: tuple[str, ...], budget: int, jobs: int,
               cluster: str | None, details: bool, as_json: bool, memory: str, limit: int) -> int:
    """Every design against every scenario: broken (oracle, shortest schedule), survived, or exhausted.

    \b
    mmurace matrix
    mmurace matrix --scenario race_remap --details
    """
    from scenarios import CATALOG

    columns = _matrix_refs(scenarios, CATALOG, "scenario")
    rows = _matrix_refs(designs, DESIGNS, "design")
    with interrupt.stoppable() as stop:
        with progress(len(rows) * len(columns), "matrix") as bar:
            task = bar.add_task("", total=len(rows) * len(columns))
            cells = matrix(columns, rows, budget=budget, jobs=jobs, cluster=cluster,
                           progress=lambda n: bar.update(task, completed=n), memory=Memory(memory),
                           limit=limit)
    if as_json:
        echo(json.dumps([cell_json(c) for c in cells], indent=2) + "\n")
    else:
        by = {(c.scenario, c.design): c for c in cells}
        labels = {c.design: c.row for c in cells}
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, show_edge=False, pad_edge=False)
        table.add_column("design", no_wrap=True)
        for column in columns:
            table.add_column(column, no_wrap=True)
        for row in rows:
            cells_of_row = (by[c, row].text() if (c, row) in by else "-" for c in columns)
            table.add_row(labels.get(row, row), *cells_of_row)
        # one line per design whatever the terminal: a table to read, paste or diff
        Console(highlight=False, width=1000).print(table)
        if details:
            echo("\n")
            for c in cells:
                if c.outcome is Outcome.BROKEN:
                    echo(f"{c.scenario} x {c.row}: {c.replay()}\n")
        if stop:
            echo(f"interrupted: {len(cells)} of {len(rows) * len(columns)} cells judged\n")
    return search_status(stop, found=any(c.outcome is Outcome.BROKEN for c in cells),
                   inconclusive=any(c.outcome is Outcome.SURVIVED for c in cells))
