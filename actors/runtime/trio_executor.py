"""The Trio executor: each actor is a Trio task, one running at a time.

At a scheduling point the running task itself makes the decision and wakes
the chosen task directly with ``trio.lowlevel.reschedule`` while the others
stay parked in ``wait_task_rescheduled``. When the chosen actor is the one
already running no Trio switch happens at all (``bench/handoff.py``: 0.36x
the cost of a point handed over with an Event per actor); a switch costs one
direct ``reschedule`` (1.3x: the Event ring does no bookkeeping). Many runs
share one ``trio.run``, which alone costs 2.5x a whole small run: a run is
awaited from inside a running loop (also the only way under pytest-trio).

Blocking is modelled, never real: an actor waiting for a lock or a reply is
simply not runnable until its guard holds. The actor's coroutine is not
awaited but driven by its task (``Execution.resume``), as the direct
executor drives it: a scheduling point yields to the task, which hands over;
anything else the actor awaits (``trio.sleep``, a real ``trio.Lock``) yields
there too and is reported, where awaiting it directly would pass silently or
hang the run.
"""

from __future__ import annotations

import trio

from .awaits import close
from .context import ActorContext
from .execution import Actor, Execution
from .result import RunResult


async def _park() -> None:
    await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)


class TrioExecution(Execution):
    """One run with every actor a Trio task."""

    _driver: trio.lowlevel.Task
    _driver_parked = False
    _parked_at_start = 0

    async def run(self) -> RunResult:
        self._driver = trio.lowlevel.current_task()
        with self.watchdog:
            await self._run_actors()
        return self.result()

    async def _run_actors(self) -> None:
        async with trio.open_nursery() as nursery:
            for actor in self.actors:
                nursery.start_soon(self._actor_main, actor, name=actor.spec.name)
            await self._park_driver()  # until every actor is parked at its first point
            self.begin()
            self._decide(None)
            if not self.done:
                await self._park_driver()  # until the run is over
            nursery.cancel_scope.cancel()

    async def _park_driver(self) -> None:
        self._driver_parked = True
        await _park()

    def _wake_driver(self) -> None:
        if self._driver_parked:  # the driver may be the task deciding right now
            self._driver_parked = False
            trio.lowlevel.reschedule(self._driver)

    def _arrived_at_start(self) -> None:
        self._parked_at_start += 1
        if self._parked_at_start == len(self.actors):
            self._wake_driver()

    def _decide(self, current: Actor | None) -> Actor | None:
        chosen = self.decide(current)
        if chosen is None:
            self._wake_driver()
        elif chosen is not current:
            trio.lowlevel.reschedule(chosen.handle)  # type: ignore[arg-type]
        return chosen

    async def _actor_main(self, actor: Actor) -> None:
        actor.handle = trio.lowlevel.current_task()
        coroutine = actor.spec.fn(ActorContext(actor.spec.name, self.model, self, actor))
        try:
            while self.resume(actor, coroutine):  # parked at a point: hand over
                if not self.started:
                    self._arrived_at_start()
                    await _park()
                elif self._decide(actor) is not actor:
                    await _park()
        finally:
            close(coroutine)  # cancelled at the end of the run while parked: unwind it
        # finished, crashed, or awaited something else than the runtime
        if not self.started:  # ended before its first point: count it as parked
            self._arrived_at_start()
        elif self.running is actor:
            self._decide(actor)
