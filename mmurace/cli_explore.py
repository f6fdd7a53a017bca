"""The proof commands: ``explore`` (every schedule, a proof) and ``shrink`` (a failing
schedule to its fewest preemptions). Apart from ``stress`` and ``matrix``, whose process
pools they do not need at start-up."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from actors import Executor

from . import api, interrupt
from .cli_options import (
    COUNT,
    DESIGN_HELP,
    STEPS,
    RunOptions,
    ToSave,
    common_options,
    echo,
    emit_litmus,
    executor_option,
    make_config,
    save_findings,
    save_options,
    scenario_arg,
    search_status,
)
from .errors import UsageError
from .explore import DEFAULT_MAX_STATES, Exploration, Order, Verdict, explore, explore_direct
from .explore_order import explore_bfs, explore_fewest_preemptions
from .progress_line import ProgressLine
from .report import count, render_run, schedule_note, to_json
from .shrink import shrink


@click.command("explore", short_help="every schedule within a bound: a proof")
@scenario_arg
@click.option("--design", required=True, help=DESIGN_HELP)
@click.option("--preemptions", type=click.IntRange(0, STEPS.max), default=None,
              help="preemption bound; default unbounded (fine for small scenarios)")
@click.option("--no-reduction", is_flag=True, help="turn off the partial-order reduction (sleep sets)")
@click.option("--limit", type=COUNT, default=100_000, show_default=True,
              help="stop after this many executions (with --jobs: in each part)")
@click.option("--stateless", is_flag=True,
              help="remember no state: re-run every schedule (the search before states were remembered;"
                   " --executor trio implies it, the state being read from coroutines stepped by hand)")
@click.option("--max-states", type=COUNT, default=DEFAULT_MAX_STATES, show_default=True,
              help="states remembered at most (about 150 bytes each); past it, new states are not"
                   " remembered and the search goes on below them statelessly: slower, never unsound")
@click.option("--order", type=click.Choice([o.value for o in Order]), default=Order.DFS.value,
              show_default=True,
              help="dfs: depth first, the fastest proof; bfs: a race found has the fewest steps;"
                   " preemptions: a race found has the fewest preemptions (bounds 0, 1, 2 ... in turn)")
@click.option("--jobs", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="processes to split the search over (dfs only), each the subtree below some first"
                   " decisions; the proof holds when every part is exhausted; pays only where the parts"
                   " share few states (docs/exploring.md)")
@executor_option
@common_options
@save_options
def explore_cmd(scenario: str, design: str, preemptions: int | None, no_reduction: bool, limit: int,
                stateless: bool, max_states: int, order: str, jobs: int,
                executor: str, opts: RunOptions, as_json: bool, save: Path | None) -> int:
    """Run every schedule of SCENARIO within a preemption bound, depth first.

    States already explored are not explored again (--stateless: the old search).

    \b
    mmurace explore race_remap --design seq_retry            prove it, unbounded
    mmurace explore race_remap --design no_retry --preemptions 1
    mmurace explore race_remap --design no_retry --order bfs  the race with the fewest steps
    """
    config = make_config(scenario, design, opts, executor)
    how = Order(order)
    if how is not Order.DFS and (stateless or preemptions is not None or no_reduction or jobs > 1):
        raise UsageError(f"--order {order} is stateful, unbounded and reduces its own way:"
                         " it takes no --stateless, --preemptions, --no-reduction or --jobs")
    stateless = stateless or config.executor is Executor.TRIO  # on Trio tasks the state cannot be read
    if stateless and jobs > 1:
        raise UsageError("--jobs splits a stateful search: it cannot be combined with --stateless"
                         " or --executor trio")
    with interrupt.stoppable() as stop, ProgressLine(f"{config.describe()} explore") as line:
        if how is Order.BFS:
            e = explore_bfs(config, limit=limit, max_states=max_states, progress=line.update)
        elif how is Order.PREEMPTIONS:
            e = explore_fewest_preemptions(config, limit=limit, max_states=max_states, progress=line.update)
        elif jobs > 1:
            from .explore_jobs import explore_jobs  # a process pool: imported only for --jobs

            e = explore_jobs(config, jobs, preemptions=preemptions, reduce=not no_reduction, limit=limit,
                             max_states=max_states, progress=line.parts)
        elif stateless:
            e = api.run_sync(functools.partial(
                explore, config, preemptions=preemptions, reduce=not no_reduction, limit=limit,
                stateful=False, progress=line.runs,
            ), executor=config.executor)
        else:
            e = explore_direct(config, preemptions=preemptions, reduce=not no_reduction, limit=limit,
                               max_states=max_states, progress=line.update)
    _print_exploration(config, e, no_reduction, opts.threads, as_json, how)
    emit_litmus(opts, config, e.result)
    if e.result is not None and save is not None:
        save_findings(save, [ToSave.shrinking(config, e.result)], quiet=as_json)
    return search_status(stop, found=e.result is not None, inconclusive=e.verdict is Verdict.LIMIT)


def _print_exploration(config: api.Config, e: Exploration, no_reduction: bool, threads: bool,
                       as_json: bool, order: Order = Order.DFS) -> None:
    bound = "unbounded" if e.bound is None else f"at most {count(e.bound, 'preemption')}"
    reduction = "off" if no_reduction or order is not Order.DFS else "sleep sets"
    if reduction != "off" and e.bound is None:
        reduction += ", persistent sets"  # of a step that touches nothing (docs/exploring.md, section 1)
    states = "" if e.states is None else f", {count(e.states, 'state')} remembered, {e.revisits} revisits cut"
    how = "" if order is Order.DFS else f", order {order.value}"
    summary = (f"{e.verdict.value}: {e.executions} executions, {e.pruned} pruned{states}"
               f" ({bound}, partial-order reduction: {reduction}{how})")
    if e.table_full:
        summary += "\n(the state table filled up: states past it were explored without being remembered)"
    if as_json:
        echo(json.dumps({"verdict": e.verdict.name.lower(), "executions": e.executions, "pruned": e.pruned,
                         "preemptions": e.bound, "reduction": not no_reduction and order is Order.DFS,
                         "order": order.value, "states": e.states, "revisits": e.revisits,
                         "table_full": e.table_full,
                         "run": None if e.result is None else to_json(config, e.result)}, indent=2) + "\n")
    elif e.result is not None:
        fewest = {Order.BFS: f"the fewest steps of any race: {len(e.result.steps)}\n",
                  Order.PREEMPTIONS: f"the fewest preemptions of any race: {e.bound}\n"}.get(order, "")
        echo(render_run(config, e.result, threads=threads) + summary + "\n" + fewest)
    else:
        tail = "no violation in any schedule" if e.verdict is Verdict.EXHAUSTED else "no violation so far"
        echo(f"{config.describe()}: {summary}: {tail}\n")


@click.command("shrink", short_help="a failing schedule, to its fewest preemptions")
@scenario_arg
@click.option("--design", required=True, help=DESIGN_HELP)
@click.option("--schedule", required=True, metavar="S", help="a failing schedule string (v1:...)")
@common_options
def shrink_cmd(scenario: str, design: str, schedule: str, opts: RunOptions, as_json: bool) -> int:
    """Shrink a failing schedule of SCENARIO to the fewest preemptions that still fail.

    The shrinking passes, then an exhaustive search of every schedule with
    fewer preemptions, which proves the count the fewest (or says that it
    stopped at its run limit first).

    \b
    mmurace shrink race_remap --design no_retry --schedule v1:10:2=1,5=1,8=1@99959b
    """
    config = make_config(scenario, design, opts)
    original = api.run_sync(api.replay, config, schedule)
    if original.finding is None:
        raise UsageError(f"schedule {schedule} does not fail for {config.describe()}: nothing to shrink")
    with interrupt.stoppable() as stop:
        shrunk = shrink(config, original)
    if as_json:
        echo(json.dumps({"original": to_json(config, original), "shrunk": to_json(config, shrunk.result),
                          "runs": shrunk.runs, "fewest_preemptions": shrunk.minimal}, indent=2) + "\n")
    else:
        echo(render_run(config, shrunk.result, threads=opts.threads))
        echo(f"shrunk from {schedule_note(config, original.schedule)}\n"
              f"        to {schedule_note(config, shrunk.result.schedule)} in {shrunk.runs} runs"
              f"{' (interrupted)' if stop else ''}\n({shrunk.note()})\n")
    emit_litmus(opts, config, shrunk.result)
    return search_status(stop, found=True)
