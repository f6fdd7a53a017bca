"""The commands that run one scenario: ``run``, ``replay`` and ``list``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from actors import DESIGNS, Design, RunResult
from mmu import ORACLES
from mmu.oracles import Oracle
from scenarios import Scenario

from . import api, interrupt
from .cli_options import (
    COUNT,
    DESIGN_HELP,
    SEED,
    RunOptions,
    ToSave,
    common_options,
    echo,
    emit_litmus,
    make_config,
    out,
    progress,
    save_findings,
    save_options,
    scenario_arg,
)
from .exit_codes import ExitCode
from .library import load_file
from .report import count, render_run, render_trace, replay_command, to_json, verdict
from .shrink import shrink


@click.command(short_help="hunt a race: every design in turn, or one")
@scenario_arg
@click.option("--design", help=DESIGN_HELP + "; default: all, one after the other")
@click.option("--seed", type=SEED, help="run exactly this one seeded schedule")
@click.option("--seeds", type=COUNT, default=api.DEFAULT_SEEDS, show_default=True,
              help="seeds to try per design when no --seed is given")
@common_options
@save_options
def run(scenario: str, design: str | None, seed: int | None, seeds: int, opts: RunOptions,
        as_json: bool, save: Path | None) -> int:
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
    with interrupt.stoppable() as stop:
        hunts: list[api.Hunt] = []
        for config in configs:
            with progress(len(span), f"{sc.name} {config.design.name}") as bar:
                task = bar.add_task("", total=len(span))
                done = api.run_sync(api.hunt, config, span, lambda n, t=task: bar.update(t, completed=n))
                hunts.append(done)
            if hunts[-1].interrupted:
                break
        story = design is None
        # the story shows each race shrunk, unless a signal asked to stop: then as found
        shrinks = [None if not story or not h.result or stop else shrink(h.config, h.result) for h in hunts]
        shrunk = [h.result if s is None else s.result for h, s in zip(hunts, shrinks, strict=True)]
        not_fewest = ["" if s is None or s.minimal else s.note() for s in shrinks]
        if as_json:
            echo(json.dumps([_hunt_json(h, r, story, len(span)) for h, r in zip(hunts, shrunk, strict=True)],
                            indent=2) + "\n")
        elif story:
            _story(sc, hunts, shrunk, not_fewest, opts.threads, stopped=bool(stop))
        else:
            _one(hunts[0], span, opts.threads)
            emit_litmus(opts, hunts[0].config, hunts[0].result)
        if save is not None:
            save_findings(save, _to_save(hunts, shrunk, story, bool(stop)), quiet=as_json)
    if stop.signum is not None:
        return ExitCode.interrupted_by(stop.signum)
    return ExitCode.VIOLATION if any(h.result is not None for h in hunts) else ExitCode.CLEAN


def _to_save(
    hunts: list[api.Hunt], shrunk: list[RunResult | None], story: bool, stopped: bool
) -> list[ToSave]:
    """The story's races are shrunk already (unless a signal came); a hunt's, for the corpus."""
    found = [(h.config, h.result, race) for h, race in zip(hunts, shrunk, strict=True)
             if h.result is not None and race is not None]
    if story:
        return [ToSave(config, race, result, shrunk=not stopped) for config, result, race in found]
    return [ToSave.shrinking(config, result) for config, result, _ in found]


def _hunt_json(h: api.Hunt, shrunk: RunResult | None, story: bool, seeds: int) -> dict:
    shown = h.result if h.result is not None or seeds > 1 else h.last  # one seed: its run, clean or not
    report = {
        "design": h.config.design.name, "tried": h.tried, "seed": h.seed, "interrupted": h.interrupted,
        "run": None if shown is None else to_json(h.config, shown),
    }
    if story:
        report["shrunk"] = None if shrunk is None else to_json(h.config, shrunk)
    return report


def _one(h: api.Hunt, span: range, threads: bool) -> None:
    if h.result is not None:
        echo(render_run(h.config, h.result, threads=threads))
        echo(f"found by seed {h.seed} after {count(h.tried, 'schedule')}\n")
    elif h.interrupted:
        echo(f"{h.config.describe()}: interrupted after {_seeds_tried(h, span.start)}, no violation so far\n")
    elif len(span) == 1 and h.last is not None:  # one seed that passed: show it all the same
        echo(render_run(h.config, h.last, threads=threads))
    else:
        echo(f"{h.config.describe()}: survived {h.tried} schedules"
             f" (seeds {span.start}-{span.stop - 1}), no violation\n")


def _seeds_tried(h: api.Hunt, first: int) -> str:
    seeds = f" (seeds {first}-{first + h.tried - 1})" if h.tried else ""
    return count(h.tried, "schedule") + seeds


def _story(
    sc: api.Scenario, hunts: list[api.Hunt], shrunk: list[RunResult | None], not_fewest: list[str],
    threads: bool, *, stopped: bool,
) -> None:
    """Each design's first race, shrunk to its fewest preemptions: the thread's argument
    (``not_fewest`` says, for each, why its count may not be the fewest, if it may not)."""
    echo(f"{sc.name}: {sc.summary}\n{sc.story}\n")
    for h, race, why in zip(hunts, shrunk, not_fewest, strict=True):
        echo(f"\n== {h.config.design.name}: {h.config.design.summary}\n")
        if race is None:
            what = "interrupted after" if h.interrupted else "survived"
            echo(f"{what} {h.tried} schedules, no violation{' so far' if h.interrupted else ''}\n")
            continue
        assert h.result is not None
        echo(render_trace(race, details=False, threads=threads) + verdict(race) + "\n")
        preemptions = count(race.schedule.preemptions, "preemption")
        how = "not shrunk (interrupted)" if stopped else f"shrunk to {preemptions}"
        echo(f"found by seed {h.seed} as {h.config.schedule_string(h.result.schedule)}, {how}:"
             f" {replay_command(h.config, race, threads=threads)}\n")
        if why:
            echo(f"  ({why})\n")
    from rich.table import Table

    table = Table(box=None, show_edge=False, pad_edge=False)
    for col in ("design", "result", "schedules", "seed"):
        table.add_column(col)
    for h, race in zip(hunts, shrunk, strict=True):
        f = race.finding if race is not None else None
        quiet = "interrupted" if h.interrupted else "survived"
        result = quiet if f is None else f"{f.oracle} at step {f.step}"
        table.add_row(h.config.design.name, result, str(h.tried), "-" if h.seed is None else str(h.seed))
    echo("\n")
    out().print(table)
    missing = [d for d in sc.designs if d not in {h.config.design.name for h in hunts}]
    if missing:
        echo(f"interrupted: not hunted: {', '.join(missing)}\n")


@click.command(short_help="replay one schedule string, print its trace")
@scenario_arg
@click.option("--design", required=True, help=DESIGN_HELP)
@click.option("--schedule", required=True, metavar="S", help="schedule string printed by run (v1:...)")
@common_options
def replay(scenario: str, design: str, schedule: str, opts: RunOptions, as_json: bool) -> int:
    """Replay one recorded schedule of SCENARIO and print its trace.

    \b
    mmurace replay race_remap --design no_retry --schedule v1:10:2=1,5=1,8=1@99959b
    """
    config = make_config(scenario, design, opts)
    result = api.run_sync(api.replay, config, schedule)
    if as_json:
        echo(json.dumps(to_json(config, result), indent=2) + "\n")
    else:
        echo(render_run(config, result, threads=opts.threads))
    emit_litmus(opts, config, result)
    return ExitCode.VIOLATION if result.finding is not None else ExitCode.CLEAN


@click.command("list", short_help="scenarios, designs, oracles")
@click.argument("files", nargs=-1, metavar="[FILE.py]...")
@click.option("--json", "as_json", is_flag=True, help="print them as JSON")
def list_(files: tuple[str, ...], as_json: bool) -> int:
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
    if as_json:
        echo(json.dumps({
            "scenarios": {name: {"summary": sc.summary, "params": sc.params(), "designs": list(sc.designs)}
                          for name, sc in scenarios.items()},
            "designs": {name: {"summary": d.summary, "base": d.base} for name, d in designs.items()},
            "oracles": {n: _first_line(o.__doc__) for n, o in oracles.items()},
            "runtime_findings": RUNTIME_FINDINGS,
        }, indent=2) + "\n")
        return ExitCode.CLEAN
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
    return ExitCode.CLEAN


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
    "recursive_lock": "a lock taken again by the thread that holds it (a second down_read too)",
    "crash": "an actor raised (a model assertion: the lock a step needs was not held ...)",
    "foreign_await": "an actor awaited something else than its ActorContext (trio.sleep, a trio.Lock ...)",
    "step_timeout": "a step ran for seconds without reaching its next point (a loop that never ends)",
}
