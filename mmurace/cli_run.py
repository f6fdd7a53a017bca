"""The commands that run one scenario: ``run``, ``replay`` and ``list``."""

from __future__ import annotations

import json

import click
from rich.table import Table

from actors import DESIGNS, Design, RunResult
from mmu import ORACLES
from mmu.oracles import Oracle
from scenarios import Scenario

from . import api
from .cli_options import (
    DESIGN_HELP,
    RunOptions,
    common_options,
    echo,
    make_config,
    out,
    progress,
    scenario_arg,
)
from .library import load_file
from .report import count, render_run, render_trace, replay_command, to_json, verdict


@click.command()
@scenario_arg
@click.option("--design", help=DESIGN_HELP + "; default: all, one after the other")
@click.option("--seed", type=click.IntRange(min=0), help="run exactly this one seeded schedule")
@click.option("--seeds", type=click.IntRange(min=1), default=api.DEFAULT_SEEDS, show_default=True,
              help="seeds to try per design when no --seed is given")
@common_options
def run(scenario: str, design: str | None, seed: int | None, seeds: int, opts: RunOptions,
        as_json: bool) -> int:
    """Hunt a race in SCENARIO (a catalog name or a path to a scenario file).

    \b
    With no --design, tell the story: each design in turn, its first race
    or the number of schedules it survived. With --design D, hunt D. With
    --seed N too, run exactly one schedule.
    """
    sc = api.load_scenario(scenario)
    designs = [design] if design is not None else list(sc.designs)  # a file's scenario: names it knows
    configs = [make_config(scenario, d, opts) for d in designs]
    span = range(seed, seed + 1) if seed is not None else range(seeds)
    hunts = []
    for config in configs:
        with progress(len(span), f"{sc.name} {config.design.name}") as bar:
            task = bar.add_task("", total=len(span))
            hunts.append(api.run_sync(api.hunt, config, span, lambda n, t=task: bar.update(t, completed=n)))
    if as_json:
        echo(json.dumps([_hunt_json(h) for h in hunts], indent=2) + "\n")
    elif design is None:
        _story(sc, hunts, opts.threads)
    else:
        _one(hunts[0], span, opts.threads)
    return 1 if any(h.result is not None for h in hunts) else 0


def _hunt_json(h: api.Hunt) -> dict:
    return {
        "design": h.config.design.name, "tried": h.tried, "seed": h.seed,
        "run": None if h.result is None else to_json(h.config, h.result),
    }


def _one(h: api.Hunt, span: range, threads: bool) -> None:
    if h.result is not None:
        echo(render_run(h.config, h.result, threads=threads))
        echo(f"found by seed {h.seed} after {h.tried} schedule{'s' if h.tried > 1 else ''}\n")
    elif len(span) == 1 and h.last is not None:  # one seed that passed: show it all the same
        echo(render_run(h.config, h.last, threads=threads))
    else:
        echo(f"{h.config.describe()}: survived {h.tried} schedules"
              f" (seeds {span.start}-{span.stop - 1}), no violation\n")


def _story(sc: api.Scenario, hunts: list[api.Hunt], threads: bool) -> None:
    """Each design's first race, shrunk to its fewest preemptions: the thread's argument."""
    from .shrink import shrink

    echo(f"{sc.name}: {sc.summary}\n{sc.story}\n")
    shown: list[RunResult | None] = []
    for h in hunts:
        echo(f"\n== {h.config.design.name}: {h.config.design.summary}\n")
        if h.result is None:
            echo(f"survived {h.tried} schedules, no violation\n")
            shown.append(None)
            continue
        race = shrink(h.config, h.result).result
        shown.append(race)
        echo(render_trace(race, details=False, threads=threads) + verdict(race) + "\n")
        echo(f"found by seed {h.seed} as {h.config.schedule_string(h.result.schedule)}, shrunk to"
              f" {count(race.schedule.preemptions, 'preemption')}:"
              f" {replay_command(h.config, race, threads=threads)}\n")
    table = Table(box=None, show_edge=False, pad_edge=False)
    for col in ("design", "result", "schedules", "seed"):
        table.add_column(col)
    for h, shrunk in zip(hunts, shown, strict=True):
        f = shrunk.finding if shrunk is not None else None
        result = "survived" if f is None else f"{f.oracle} at step {f.step}"
        table.add_row(h.config.design.name, result, str(h.tried), "-" if h.seed is None else str(h.seed))
    echo("\n")
    out.print(table)


@click.command()
@scenario_arg
@click.option("--design", required=True, help=DESIGN_HELP)
@click.option("--schedule", required=True, metavar="S", help="schedule string printed by run (v1:...)")
@common_options
def replay(scenario: str, design: str, schedule: str, opts: RunOptions, as_json: bool) -> int:
    """Replay one recorded schedule of SCENARIO and print its trace.

    \b
    mmurace replay race_remap --design no_retry --schedule v1:10:2=1,8=1@99959b
    """
    config = make_config(scenario, design, opts)
    result = api.run_sync(api.replay, config, schedule)
    if as_json:
        echo(json.dumps(to_json(config, result), indent=2) + "\n")
    else:
        echo(render_run(config, result, threads=opts.threads))
    return 1 if result.finding is not None else 0


@click.command("list")
@click.argument("files", nargs=-1, metavar="[FILE.py]...")
def list_(files: tuple[str, ...]) -> int:
    """List scenarios (with their parameters), designs, oracles and the runtime's own findings.

    \b
    With FILE.py, what the file defines too, each named as commands accept it.
    mmurace list examples/virtio_mem.py
    """
    from scenarios import CATALOG

    scenarios: dict[str, Scenario] = dict(CATALOG)
    designs: dict[str, Design] = dict(DESIGNS)
    oracles: dict[str, Oracle] = dict(ORACLES)
    for path in files:
        defined = load_file(path)
        scenarios |= {f"{path}:{n}" if n in scenarios else n: sc for n, sc in defined.scenarios.items()}
        designs |= {n: d for n, d in defined.designs.items() if n not in designs}
        oracles |= defined.oracles
    sections = {
        "scenarios": {name: sc.summary for name, sc in scenarios.items()},
        "designs": {name: _design_line(d) for name, d in designs.items()},
        "oracles (--oracle NAME)": {n: _first_line(o.__doc__) for n, o in oracles.items()},
        "findings the runtime makes itself (always on)": RUNTIME_FINDINGS,
    }
    width = max(len(name) for items in sections.values() for name in items)
    for kind, items in sections.items():
        echo(f"{kind}:\n")
        for name, summary in items.items():
            echo(f"  {name:<{width}}  {summary}\n")
            params = scenarios[name].params() if kind == "scenarios" else {}
            if params:
                echo(f"  {'':<{width}}  parameters: {' '.join(f'-p {k}={v}' for k, v in params.items())}\n")
    return 0


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().partition("\n")[0]


def _design_line(design: Design) -> str:
    if design.base is None or design.base == design.name:
        return design.summary
    return f"{design.summary} (a variant of {design.base})"


#: findings no oracle makes: the runtime reports them whatever --oracle says
RUNTIME_FINDINGS = {
    "deadlock": "nobody can run and some actor waits",
    "livelock": "a fault retried more than --max-retries times, each time for a new invalidation",
    "step_bound": "a run took more than --max-steps steps",
    "sleep_in_atomic": "a sleeping lock (mmap_lock, get_user_pages) taken under a spinlock",
    "lock_order": "two locks taken in both orders in one run: a possible ABBA deadlock",
    "crash": "an actor raised (a model assertion: the lock a step needs was not held ...)",
}
