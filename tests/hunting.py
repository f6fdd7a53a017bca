"""Hunting one oracle at a time on the catalog scenarios, with the direct executor."""

from __future__ import annotations

from actors import Executor, RunResult, Runtime, Strategy, World
from mmu import ORACLES
from mmurace import RandomWalk, Replay
from scenarios import CATALOG


def run(world: World, strategy: Strategy, *oracles: str) -> RunResult:
    """One run of ``world``, judged by ``oracles`` (all of the world's if none)."""
    if oracles:
        world.oracles = {name: ORACLES[name] for name in oracles}
    return Runtime(executor=Executor.DIRECT).run_direct(world, strategy)


def first_finding(scenario: str, design: str, oracle: str, seeds: range) -> tuple[int, RunResult] | None:
    """The first seed whose random walk ``oracle`` judges a violation, and its run."""
    for seed in seeds:
        result = run(CATALOG[scenario].build(design), RandomWalk(seed), oracle)
        if result.finding is not None:
            return seed, result
    return None


def replayed(scenario: str, design: str, result: RunResult, *oracles: str) -> RunResult:
    """Run ``result``'s schedule again on a fresh world."""
    return run(CATALOG[scenario].build(design), Replay(result.schedule), *oracles)
