"""The direct executor: the same actor coroutines, stepped by hand, no Trio.

Actors await nothing but the runtime's primitives, so a loop can drive their
coroutines with ``send(None)`` (``Execution.resume``): a scheduling point
parks the actor and yields to the loop, which decides and resumes the chosen
coroutine. There is no event loop and no task switch, which makes it the
executor for search loops (thousands of runs); it makes exactly the decisions
the Trio executor makes, so a schedule gives the same trace under both
(tests/test_executors.py).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from .awaits import close
from .context import ActorContext
from .execution import Execution
from .result import RunResult


class DirectExecution(Execution):
    """One run with every actor a coroutine that this loop resumes."""

    def run(self) -> RunResult:
        coroutines: dict[int, Coroutine[Any, Any, None]] = {}
        for actor in self.actors:
            coroutines[actor.index] = actor.spec.fn(ActorContext(actor.spec.name, self.model, self, actor))
        try:
            with self.watchdog:
                for actor in self.actors:  # run each up to its first point
                    self.resume(actor, coroutines[actor.index])
                self.begin()
                current = self.decide(None)
                while current is not None:
                    self.resume(current, coroutines[current.index])
                    current = self.decide(current)
        finally:
            for coroutine in coroutines.values():
                close(coroutine)  # actors still parked: unwind them, as Trio's cancel does
        return self.result()

