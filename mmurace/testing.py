"""Judging designs from pytest: ``find_race``, ``assert_race``, ``assert_no_race``.

Plain functions, usable in a plain test and in a pytest-trio one alike: they
run the direct executor, which needs no event loop. A failure shows the race
as ``mmurace`` draws it, with the command that replays it::

    from actors import DESIGNS
    from mmurace.testing import assert_no_race, assert_race

    def test_my_variant_races():
        race = assert_race("race_remap", MY_VARIANT, oracle="stale_spte")
        assert race.preemptions <= 2

    def test_kvm_today_is_safe():
        assert_no_race("race_remap", DESIGNS["seq_retry"])   # exhaustive: a proof

``scenario`` is a ``Scenario`` or what the command line accepts (a catalog
name, ``FILE.py``, ``FILE.py:NAME``); ``design`` likewise a ``Design`` or a name.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from actors import DESIGNS, Design, Executor, Finding, RunResult
from scenarios import CATALOG, Scenario

from .api import Config, parse_params, run_sync
from .errors import unknown
from .explore import Verdict, explore
from .library import oracle_table, resolve_design, resolve_scenario
from .report import render_run, replay_command

DIRECT = Executor.DIRECT
Strategy = Literal["explore", "random", "pct", "hypothesis"]


@attrs.frozen
class Race:
    """A run that broke an oracle, and how to see it again."""

    config: Config
    result: RunResult

    @property
    def finding(self) -> Finding:
        assert self.result.finding is not None
        return self.result.finding

    @property
    def oracle(self) -> str:
        return self.finding.oracle

    @property
    def preemptions(self) -> int:
        return self.result.schedule.preemptions

    @property
    def schedule(self) -> str:
        """The schedule string, as ``mmurace replay --schedule`` takes it."""
        return self.config.schedule_string(self.result.schedule)

    @property
    def replay(self) -> str:
        """The command that replays the race."""
        return replay_command(self.config, self.result)

    def drawn(self) -> str:
        """The race as ``mmurace`` prints it: trace, verdict, schedule, replay command."""
        return render_run(self.config, self.result)


def find_race(
    scenario: Scenario | str,
    design: Design | str,
    *,
    strategy: Strategy = "explore",
    oracles: Sequence[str] = (),
    params: Mapping[str, int] | None = None,
    preemptions: int | None = None,
    schedules: int = 1000,
    seed: int = 0,
    limit: int = 100_000,
) -> Race | None:
    """The first race ``strategy`` finds, shrunk to its fewest preemptions, or None.

    ``explore`` runs every schedule within ``preemptions`` (None: all of them)
    up to ``limit`` runs; ``random``, ``pct`` and ``hypothesis`` try
    ``schedules`` schedules from ``seed``.
    """
    race, _ = _search(scenario, design, strategy, oracles, params, preemptions, schedules, seed, limit)
    return race


def assert_race(
    scenario: Scenario | str, design: Design | str, *, oracle: str | None = None, **search: Any
) -> Race:
    """Find a race (with ``find_race``'s options), caught by ``oracle`` if given."""
    race = find_race(scenario, design, **search)
    config = _config(scenario, design, search.get("oracles", ()), search.get("params"))
    if race is None:
        raise AssertionError(f"no race found in {config.describe()} ({search.get('strategy', 'explore')})")
    if oracle is not None and race.oracle != oracle:
        raise AssertionError(f"expected a {oracle} race, found {race.oracle}:\n{race.drawn()}")
    return race


def assert_no_race(scenario: Scenario | str, design: Design | str, **search: Any) -> None:
    """Fail with the drawn race if one is found. With ``strategy="explore"`` (the
    default) the search must also finish: hitting ``limit`` first fails too, since
    nothing was proved."""
    strategy = search.pop("strategy", "explore")
    race, verdict = _search(
        scenario, design, strategy, search.pop("oracles", ()), search.pop("params", None),
        search.pop("preemptions", None), search.pop("schedules", 1000), search.pop("seed", 0),
        search.pop("limit", 100_000), **search,
    )
    if race is not None:
        raise AssertionError(f"race found:\n{race.drawn()}")
    if verdict is Verdict.LIMIT:
        raise AssertionError("the search stopped at its run limit before exhausting every schedule: no proof")


def _search(
    scenario: Scenario | str,
    design: Design | str,
    strategy: str,
    oracles: Sequence[str],
    params: Mapping[str, int] | None,
    preemptions: int | None,
    schedules: int,
    seed: int,
    limit: int,
    **unknown: Any,
) -> tuple[Race | None, Verdict | None]:
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    from .shrink import shrink
    from .stress import Kind, stress

    config = _config(scenario, design, oracles, params)
    verdict: Verdict | None = None
    if strategy == "explore":
        job = functools.partial(explore, config, preemptions=preemptions, limit=limit)
        e = run_sync(job, executor=DIRECT)
        found, verdict = e.result, e.verdict
    elif strategy in {k.value for k in Kind}:
        outcome = run_sync(functools.partial(stress, config, Kind(strategy), schedules=schedules, seed=seed),
                           executor=DIRECT)
        found = outcome.groups[0].first.result if outcome.groups else None
    else:
        raise ValueError(f"'strategy' must be explore, random, pct or hypothesis (got {strategy!r})")
    if found is None:
        return None, verdict
    return Race(config, shrink(config, found).result), verdict


def _config(
    scenario: Scenario | str, design: Design | str, oracles: Sequence[str], params: Mapping[str, int] | None
) -> Config:
    scenario_file = design_file = None
    if isinstance(scenario, str):
        scenario_obj, scenario_file = resolve_scenario(scenario)
    else:
        scenario_obj = scenario
    if isinstance(design, str):
        design_obj, design_file = resolve_design(design, scenario_obj, scenario_file)
    else:
        design_obj = design
    table = oracle_table(scenario_file, design_file)
    for name in oracles:
        if name not in table:
            raise unknown("oracle", name, table)
    return Config(
        scenario_obj,
        design_obj,
        tuple(oracles),
        params=parse_params(scenario_obj, [f"{k}={v}" for k, v in (params or {}).items()], design_obj),
        executor=Executor.DIRECT,
        scenario_ref=scenario if isinstance(scenario, str) else _ref(scenario_obj),
        design_ref=design if isinstance(design, str) else _ref(design_obj),
        known_oracles=table,
    )


def _ref(obj: Scenario | Design) -> str:
    """How a command line names ``obj``: the file that defines it at module level (so the
    replay command printed for a test's own design works), else its name."""
    if DESIGNS.get(obj.name) is obj or CATALOG.get(obj.name) is obj:
        return obj.name
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py") or module.__name__.split(".")[0] in {"actors", "scenarios"}:
            continue
        if any(value is obj for value in list(vars(module).values())):
            try:
                shown = str(Path(path).resolve().relative_to(Path.cwd()))
            except ValueError:
                shown = path
            return f"{shown}:{obj.name}"
    return obj.name
