"""The direct executor: the same actor coroutines, stepped by hand, no Trio.

Actors await nothing but the runtime's primitives, so a loop can drive their
coroutines with ``send(None)``: a scheduling point parks the actor and
yields to the loop, which decides and resumes the chosen coroutine. There is
no event loop and no task switch, which makes it the executor for search
loops (thousands of runs); it makes exactly the decisions the Trio executor
makes, so a schedule gives the same trace under both (tests/test_executors.py).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from typing import Any

from .context import ActorContext
from .execution import Actor, Execution, Guard
from .result import RunResult


class _Suspend:
    """Awaited at a scheduling point: hands control back to ``DirectExecution.run``."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield None


_SUSPEND = _Suspend()


class DirectExecution(Execution):
    """One run with every actor a coroutine that this loop resumes."""

    def run(self) -> RunResult:
        coroutines: dict[int, Coroutine[Any, Any, None]] = {}
        for actor in self.actors:
            coroutines[actor.index] = actor.spec.fn(ActorContext(actor.spec.name, self.model, self, actor))
        try:
            for actor in self.actors:  # run each up to its first point
                self._resume(actor, coroutines[actor.index])
            self.begin()
            current = self.decide(None)
            while current is not None:
                self._resume(current, coroutines[current.index])
                current = self.decide(current)
        finally:
            for coroutine in coroutines.values():
                coroutine.close()  # actors still parked: unwind them, as Trio's cancel does
        return self.result()

    def _resume(self, actor: Actor, coroutine: Coroutine[Any, Any, None]) -> None:
        try:
            coroutine.send(None)
        except StopIteration:
            actor.finished = True
        except Exception as exc:
            self.crashed(actor, exc)
            actor.finished = True

    async def point(
        self, actor: Actor, label: str, guard: Guard | None, waits_for: Callable[[], str] | str
    ) -> None:
        """Park ``actor`` before a step called ``label`` and yield to the loop."""
        actor.park(label, guard, waits_for)
        await _SUSPEND
