"""Stateful exploration never cuts a reachable violation, and its fingerprint sees the whole state.

The fingerprint must change whenever anything a run can depend on changes:
every field of every object of the model (walked generically, so state added
to the model later is checked here without editing this file), each actor's
position and locals, and lockdep's history. The search must reach what the
stateless search reaches: the same verdict on every catalog cell and every
example, and every final state of a small world.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from actors import ActorContext, ActorSpec, Executor, World
from actors.runtime.fingerprint import Canon, digest
from mmu import Model, SpinLock, Violation
from mmu.footprint import Access, Footprint
from mmurace import Config
from mmurace.explore import Verdict, explore_direct
from mmurace.library import applies, load_file
from scenarios import CATALOG

from .small_worlds import locked_counter, quiet_counter, shared_counter, toy_config
from .toys import Observing, back_and_forth, stopped_late, world


def _model_digest(model: Model) -> bytes:
    return digest(Canon().form(model))


def _fields(obj: object) -> Iterator[tuple[object, str, object]]:
    """(owner, field, value) of every attrs field reachable from ``obj``, once each."""
    seen: set[int] = set()
    todo = [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, Footprint):
            continue
        seen.add(id(o))
        values: list[object] = []
        if attrs.has(type(o)):
            for a in attrs.fields(type(o)):
                value = getattr(o, a.name)
                yield o, a.name, value
                values.append(value)
        elif isinstance(o, dict):
            values = list(o.values())
        elif isinstance(o, list | tuple):
            values = list(o)
        todo += [v for v in values if attrs.has(type(v)) or isinstance(v, dict | list | tuple)]


def _changed(value: object) -> object:
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "'"
    if value is None:
        return 1
    if isinstance(value, tuple):
        return (*value, 1)
    if isinstance(value, list | set | frozenset | dict):
        return {"extra": 1} if isinstance(value, dict) else type(value)([*value, "extra"])
    if hasattr(value, "name") and hasattr(type(value), "__members__"):  # an enum
        return next(m for m in type(value) if m is not value)
    return object()


def _worlds() -> Iterator[tuple[str, Model]]:
    for name, scenario in CATALOG.items():
        design = next(iter(scenario.designs))
        yield name, scenario.build(design).model


@pytest.mark.parametrize(("name", "model"), list(_worlds()), ids=[n for n, _ in _worlds()])
def test_every_field_of_the_model_is_in_the_fingerprint(name: str, model: Model) -> None:
    base = _model_digest(model)
    checked = 0
    for owner, field, value in list(_fields(model)):
        if field in ("fp", "log"):  # the running step's footprint and trace: empty between steps
            continue
        replacement = _changed(value)
        try:
            object.__setattr__(owner, field, replacement)
        except (AttributeError, TypeError):
            continue
        try:
            assert _model_digest(model) != base, f"{type(owner).__name__}.{field} is not in the fingerprint"
        finally:
            object.__setattr__(owner, field, value)
        checked += 1
    assert _model_digest(model) == base
    assert checked > 20


def test_aliasing_and_locals_are_in_the_fingerprint() -> None:
    shared = [1]
    assert digest(Canon().form([shared, shared])) != digest(Canon().form([[1], [1]]))
    assert digest(Canon().form({"a": 1, "b": 2})) != digest(Canon().form({"b": 2, "a": 1}))  # dicts keep order
    assert digest(Canon().form({1, 2, 3})) == digest(Canon().form({3, 2, 1}))  # sets do not

    def closure(n: int) -> Callable[[], int]:
        return lambda: n

    assert digest(Canon().form(closure(1))) != digest(Canon().form(closure(2)))
    assert digest(Canon().form(closure(1))) == digest(Canon().form(closure(1)))


def _fingerprints(world_fn: Callable[[], World], choices: list[int]) -> list[bytes]:
    """The fingerprint at every decision of the run that makes ``choices``."""
    from actors.runtime.direct import DirectExecution

    seen: list[bytes] = []

    @attrs.define
    class Recorder:
        answers: list[int]
        execution: Any = None

        def attach(self, execution: Any) -> None:
            self.execution = execution

        def choose(self, runnable: Any, current: int | None) -> int:
            digest_, opaque = self.execution.fingerprint()
            assert not opaque
            seen.append(digest_)
            return self.answers.pop(0) if self.answers else 0

    DirectExecution(world_fn(), Recorder(list(choices)), 100).run()
    return seen


def test_an_actors_position_and_its_locals_are_in_the_fingerprint() -> None:
    def counting() -> World:
        async def a(ctx: ActorContext) -> None:
            n = 0
            for _ in range(3):
                await ctx.point("a")
                n += 1

        async def b(ctx: ActorContext) -> None:
            for _ in range(3):
                await ctx.point("b")

        return world(ActorSpec("a", a), ActorSpec("b", b))

    # every decision of one run is a different state: the loop counters differ
    once = _fingerprints(counting, [])
    assert len(set(once)) == len(once)
    # the same interleaving reached by the same choices is the same state, run after run
    assert _fingerprints(counting, [1, 0, 1]) == _fingerprints(counting, [1, 0, 1])


def test_fingerprints_taken_in_two_threads_at_once_are_those_taken_one_after_the_other() -> None:
    """The walk is kept between fingerprints (a pickler and its memo): one per thread."""
    from concurrent.futures import ThreadPoolExecutor

    def counting() -> World:
        async def a(ctx: ActorContext) -> None:
            items = [0]
            for n in range(6):
                await ctx.point("a")
                items.append(n)

        async def b(ctx: ActorContext) -> None:
            for _ in range(6):
                await ctx.point("b")

        return world(ActorSpec("a", a), ActorSpec("b", b))

    alone = [_fingerprints(counting, [1, 0, 1, 1, 0]) for _ in range(2)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns within a walk
    try:
        with ThreadPoolExecutor(2) as pool:
            together = list(pool.map(lambda _: _fingerprints(counting, [1, 0, 1, 1, 0]), range(50)))
    finally:
        sys.setswitchinterval(switch)
    assert together == alone[:1] * 50 and alone[0] == alone[1]


def test_lockdeps_history_is_in_the_fingerprint() -> None:
    """A-then-B seen once makes a later B-then-A a finding: the states differ."""

    def nesting(first: bool) -> World:
        a, b = SpinLock("A"), SpinLock("B")

        async def t(ctx: ActorContext) -> None:
            if first:
                await ctx.spin_lock(a)
                await ctx.spin_lock(b)
                ctx.spin_unlock(b)
                ctx.spin_unlock(a)
            await ctx.point("after")

        async def idle(ctx: ActorContext) -> None:
            await ctx.point("idle")

        return world(ActorSpec("t", t), ActorSpec("idle", idle))

    assert _fingerprints(lambda: nesting(True), [0, 0, 0])[-1] != _fingerprints(lambda: nesting(False), [])[0]


# ---- the search: same verdicts, same reachable final states ----


def _verdicts(config: Config, **search: Any) -> tuple[Verdict, Verdict]:
    stateless = explore_direct(config, stateful=False, **search)
    stateful = explore_direct(config, stateful=True, **search)
    return stateless.verdict, stateful.verdict


def _cells() -> Iterator[tuple[str, str]]:
    for name, scenario in CATALOG.items():
        for design in scenario.designs:
            yield name, design


@pytest.mark.parametrize(("scenario", "design"), list(_cells()))
def test_stateful_and_stateless_agree_on_every_catalog_cell(scenario: str, design: str) -> None:
    config = Config(CATALOG[scenario], design, executor=Executor.DIRECT)
    stateless, stateful = _verdicts(config, preemptions=1, limit=400)
    assert stateless is not Verdict.LIMIT  # every cell concludes at this bound: a verdict to compare
    assert stateful is stateless


def _examples() -> Iterator[tuple[str, str, str]]:
    for path in sorted(Path("examples").glob("*.py")):
        defined = load_file(str(path))
        scenarios = {**{f"{path}:{n}": s for n, s in defined.scenarios.items()}}
        designs = {f"{path}:{n}": d for n, d in defined.designs.items()}
        for sref, scenario in scenarios.items() or {"race_remap": CATALOG["race_remap"]}.items():
            for dref, design in designs.items():
                if applies(design, scenario):
                    yield str(path), sref, dref


@pytest.mark.parametrize(("path", "scenario", "design"), list(_examples()))
def test_stateful_and_stateless_agree_on_every_example(path: str, scenario: str, design: str) -> None:
    from mmurace.api import configure

    config = configure(scenario, design, executor=Executor.DIRECT)
    stateless, stateful = _verdicts(config, preemptions=None, limit=3000)
    assert stateless is not Verdict.LIMIT
    assert stateful is stateless


def _final_states(world_fn: Callable[[], World]) -> set[bytes]:
    """Every final model state, by running every schedule without any reduction."""
    finals: set[bytes] = set()

    def recording() -> World:
        w = world_fn()
        w.oracles = {**w.oracles, "final": lambda m: finals.add(_model_digest(m)) if m.ended else None}
        return w

    config = toy_config(recording)
    e = explore_direct(config, preemptions=None, reduce=False, stateful=False, limit=20_000,
                       accept=lambda r: False)
    assert e.verdict is Verdict.EXHAUSTED
    return finals


def _reaches(world_fn: Callable[[], World], final: bytes, **search: Any) -> bool:
    """Whether the stateful search finds a run ending in ``final``."""

    def judged() -> World:
        w = world_fn()
        w.oracles = {"reached": lambda m: Violation("reached", "") if m.ended and _model_digest(m) == final else None}
        return w

    e = explore_direct(toy_config(judged), preemptions=None, stateful=True, limit=20_000,
                       accept=lambda r: r.finding is not None and r.finding.oracle == "reached", **search)
    return e.verdict is Verdict.FOUND


SMALL_WORLDS = {
    "shared_counter": shared_counter,
    "shared_counter_2x2": functools.partial(shared_counter, 2, 2),
    "locked_counter": locked_counter,
    "locked_counter_2x2": functools.partial(locked_counter, 2, 2),
    "back_and_forth": back_and_forth,
    "stopped_late": functools.partial(stopped_late, 4, 3),
    "quiet_counter": quiet_counter,
    "quiet_counter_2x1": functools.partial(quiet_counter, 2, 1),
}


@pytest.mark.parametrize("name", list(SMALL_WORLDS))
def test_every_final_state_of_a_small_world_is_reached_statefully(name: str) -> None:
    world_fn = SMALL_WORLDS[name]
    finals = _final_states(world_fn)
    assert finals
    for final in sorted(finals):
        assert _reaches(world_fn, final), f"{name}: a reachable final state is cut by the stateful search"


def test_a_step_after_a_guard_is_dependent_with_every_step() -> None:
    """A guard is code whose reads no footprint records: the step it lets start must not
    be reordered by the sleep sets past a step that may have changed what it read."""
    flag = [False]

    async def waiter(ctx: ActorContext) -> None:
        await ctx.point("wait for the flag", guard=lambda: flag[0])

    async def setter(ctx: ActorContext) -> None:
        await ctx.point("set the flag")
        flag[0] = True

    steps = world(ActorSpec("waiter", waiter), ActorSpec("setter", setter))
    observing = Observing()

    from actors.runtime.direct import DirectExecution

    DirectExecution(steps, observing, 100).run()
    observed = {("waiter", "setter")[actor]: access for actor, access in observing.accesses}
    assert observed["waiter"].unseen and not observed["setter"].unseen
    assert observed["waiter"].conflicts(Access()) and Access().conflicts(observed["waiter"])
    assert not observed["setter"].conflicts(Access())
