"""The controlled scheduler: Trio tasks as actors, one running at a time.

Each actor is a Trio task. At every scheduling point (``ActorContext.point``
and every blocking acquire) it hands control to the runtime, which closes the
step just run (records it, runs the oracles), lists the runnable actors, asks
the strategy which one goes, and wakes that one directly with
``trio.lowlevel.reschedule`` while the others stay parked in
``wait_task_rescheduled``. Exactly one actor runs between two points, so each
step is atomic and a run is a pure function of the world and the decisions.

When the chosen actor is the one already running no Trio switch happens at
all (``bench/handoff.py``: 0.36x the cost of a point handed over with an
Event per actor); a switch costs one direct ``reschedule`` (1.3x: the Event
ring does no bookkeeping). Many runs share one ``trio.run``, which alone
costs 2.5x a whole small run: ``Runtime.run`` is awaited from inside a
running loop (also the only way under pytest-trio).

Blocking is modelled, never real: an actor waiting for a lock or a reply is
simply not runnable until its guard holds. A real ``trio.Lock`` held by a
parked actor would hang the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs
import trio

from .context import ActorContext
from .result import Finding, RunResult, Status, Step
from .schedule import Schedule
from .world import ActorSpec, World

#: default bound on steps in one run; exceeding it is a finding (livelock)
DEFAULT_MAX_STEPS = 2000

Guard = Callable[[], bool]


class Strategy(Protocol):
    """Decides who runs next. Lives across runs; sees only counts.

    ``choose(n)`` is called with ``n >= 2`` runnable actors, listed
    cyclically from the one that ran last (index 0 keeps it running), and
    returns an index in ``range(n)``.
    """

    def choose(self, n: int) -> int: ...


class ScheduleDiverged(Exception):
    """Raised by a strategy replaying decisions that no longer fit the run."""


class InternalError(Exception):
    """A broken invariant of the runtime itself: this is a bug in mmurace."""


@attrs.define(eq=False)
class _Actor:
    index: int
    spec: ActorSpec
    task: trio.lowlevel.Task | None = None
    finished: bool = False
    # the point it is parked at (fields, not an object: this is the hot path)
    parked: bool = False
    label: str = ""
    guard: Guard | None = None
    waits_for: Callable[[], str] | str = ""  # said in deadlock reports; callable: judged then


async def _park() -> None:
    await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)


class Execution:
    """One run of one world under one strategy. Built by ``Runtime.run``."""

    def __init__(self, world: World, strategy: Strategy, max_steps: int) -> None:
        self.world = world
        self.model = world.model
        self._strategy = strategy
        self._max_steps = max_steps
        self._actors = [_Actor(i, spec) for i, spec in enumerate(world.actors)]
        self._rotations = [self._actors[i:] + self._actors[:i] for i in range(len(self._actors))]
        self._driver: trio.lowlevel.Task | None = None
        self._parked_at_start = 0
        self._started = False
        self._running: _Actor | None = None
        self._label = ""
        self._steps: list[Step] = []
        self._choices: list[int] = []
        self._finding: Finding | None = None
        self._done = False
        self._aborted: Exception | None = None
        self._driver_parked = False

    # ---- the run and its actors ----

    async def run(self) -> RunResult:
        self._driver = trio.lowlevel.current_task()
        if self.model.log:
            raise InternalError("model log not empty before the first step")
        async with trio.open_nursery() as nursery:
            for actor in self._actors:
                nursery.start_soon(self._actor_main, actor, name=actor.spec.name)
            await self._park_driver()  # until every actor is parked at its first point
            self._started = True
            if self.model.log and self._finding is None:
                # Trio starts tasks in no fixed order: work before the first point is a race
                self._finding = Finding(
                    "crash", -1, "an actor changed the model before its first scheduling point: "
                    + "; ".join(self.model.drain_log()),
                )
            self._decide(None)
            if not self._done:
                await self._park_driver()  # until the run is over
            nursery.cancel_scope.cancel()
        if self._aborted is not None:
            raise self._aborted
        return RunResult(
            status=Status.VIOLATION if self._finding else Status.PASSED,
            actors=tuple(a.spec.name for a in self._actors),
            steps=tuple(self._steps),
            finding=self._finding,
            schedule=Schedule(tuple(self._choices)),
        )

    async def _park_driver(self) -> None:
        self._driver_parked = True
        await _park()

    def _wake_driver(self) -> None:
        if self._driver_parked:  # the driver may be the task deciding right now
            assert self._driver is not None
            self._driver_parked = False
            trio.lowlevel.reschedule(self._driver)

    async def _actor_main(self, actor: _Actor) -> None:
        actor.task = trio.lowlevel.current_task()
        try:
            await actor.spec.fn(ActorContext(actor.spec.name, self.model, self, actor))
        except Exception as exc:  # a crash in an actor is a finding, never a crash of the tool
            if self._finding is None:
                what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self._finding = Finding("crash", len(self._steps), f"{actor.spec.name} raised {what}")
        actor.finished = True
        if not self._started:  # ended before its first point: count it as parked
            self._parked_at_start += 1
            if self._parked_at_start == len(self._actors):
                self._wake_driver()
        elif self._running is actor:
            self._decide(actor)

    async def point(
        self, actor: _Actor, label: str, guard: Guard | None, waits_for: Callable[[], str] | str
    ) -> None:
        """Park ``actor`` before a step called ``label`` until the strategy picks it."""
        actor.parked, actor.label, actor.guard, actor.waits_for = True, label, guard, waits_for
        if not self._started:
            self._parked_at_start += 1
            if self._parked_at_start == len(self._actors):
                self._wake_driver()
            await _park()
            return
        if self._decide(actor) is not actor:
            await _park()

    def relabel(self, label: str) -> None:
        """Rename the step now running, once it knows what it stands for."""
        self._label = label

    # ---- decisions ----

    def _decide(self, current: _Actor | None) -> _Actor | None:
        """Close the running step, then pick and wake the next actor (None: run over)."""
        if self._running is not None:
            self._close_step()
        if self._finding is not None:
            self._end()
            return None
        start = current.index if current is not None else 0
        # listed cyclically from the actor that ran last: choice 0 keeps it running
        runnable = [a for a in self._rotations[start] if a.parked and (a.guard is None or a.guard())]
        if not runnable:
            waiting = [a for a in self._actors if not a.finished and not a.spec.daemon]
            if waiting:
                self._finding = Finding("deadlock", len(self._steps) - 1, self._deadlock_message())
            self._end()
            return None
        if len(self._steps) >= self._max_steps:
            self._finding = Finding(
                "step_bound",
                len(self._steps) - 1,
                f"exceeded {self._max_steps} steps: a retry loop that never succeeds (livelock)?",
            )
            self._end()
            return None
        choice = 0
        if len(runnable) > 1:
            try:
                choice = self._strategy.choose(len(runnable))
                if not 0 <= choice < len(runnable):
                    raise InternalError(f"strategy chose {choice} of {len(runnable)} actors")
            except Exception as exc:  # e.g. a replay that no longer fits: the caller's error
                self._aborted = exc  # raised by run(), not a finding of the design
                self._end()
                return None
            self._choices.append(choice)
        chosen = runnable[choice]
        self._running, self._label, chosen.parked = chosen, chosen.label, False
        if chosen is not current:
            assert chosen.task is not None, "a parked actor has a task"
            trio.lowlevel.reschedule(chosen.task)
        return chosen

    def _close_step(self) -> None:
        assert self._running is not None
        index = len(self._steps)
        self._steps.append(Step(index, self._running.spec.name, self._label, self.model.drain_log()))
        self._running = None
        for oracle in self.world.oracles.values():
            violation = oracle(self.model)
            if violation is not None:
                self._finding = Finding(violation.oracle, index, violation.message)
                return

    def _end(self) -> None:
        if self._running is not None:
            self._close_step()
        self._done = True
        self._wake_driver()

    def _deadlock_message(self) -> str:
        def waits(a: _Actor) -> str:
            return (a.waits_for() if callable(a.waits_for) else a.waits_for) or a.label

        blocked = [
            f"{a.spec.name} waits for {waits(a)}"
            for a in self._actors
            if a.parked and not a.spec.daemon
        ]
        return "deadlock: nobody can run; " + "; ".join(blocked)


@attrs.frozen
class Runtime:
    """Runs worlds, one schedule each, inside an already running Trio loop.

    Example::

        async def main():
            runtime = Runtime()
            result = await runtime.run(world, strategy)
        trio.run(main)
    """

    max_steps: int = attrs.field(default=DEFAULT_MAX_STEPS, validator=attrs.validators.gt(0))

    async def run(self, world: World, strategy: Strategy) -> RunResult:
        """Run ``world`` once, asking ``strategy`` at every decision."""
        return await Execution(world, strategy, self.max_steps).run()
