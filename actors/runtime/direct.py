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

import threading
from collections.abc import Callable, Coroutine
from typing import Any

from .awaits import close
from .context import ActorContext
from .execution import Actor, Execution
from .fingerprint import Canon, digest, number, plain_functions
from .lockdep import Lockdep
from .result import RunResult


class DirectExecution(Execution):
    """One run with every actor a coroutine that this loop resumes."""

    _fixed: tuple[object, int] | None = None  # what the fingerprint writes of the world, once a run

    def run(self) -> RunResult:
        coroutines: dict[int, Coroutine[Any, Any, None]] = {}
        self._coroutines = coroutines
        attach = getattr(self._strategy, "attach", None)
        if attach is not None:  # a stateful search: it asks for ``fingerprint`` at decisions
            attach(self)
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


    def fingerprint(self) -> tuple[bytes, set[str]]:
        """The state between two steps, as a digest (``actors.runtime.fingerprint``),
        and the types the walk could not see into (none: the digest is exact)."""
        canon = getattr(_WALKS, "canon", None)  # fresh: every fingerprint leaves it so
        if canon is None:  # one walk for every run: what it learnt of the model's classes stays
            canon = _WALKS.canon = Canon(_SPECIAL, _ENDS)
        fixed = self._fixed
        if fixed is None:  # the world's oracles, if none keeps state, are the same all run long
            oracles = self.world.oracles
            plain = plain_functions(oracles)
            fixed = self._fixed = (oracles if plain is None else number(plain), self.world.max_retries)
        try:
            # the model, then each actor and where it is parked, in one list
            walked = [self.model, self.lockdep, fixed]
            coroutines, position = self._coroutines, canon.position
            for actor in self.actors:
                walked.append(actor)
                position(coroutines[actor.index], walked)
            form = canon.form(walked)
            opaque = canon.opaque
        finally:
            canon.reset()  # now, while what the walk met is still in the cache
        return digest(form), opaque


def _actor(actor: Actor) -> object:
    # its coroutine is walked on its own, down to ``ActorContext._park``, whose arguments
    # the actor was parked with (its label, guard and waits_for) stand for that frame
    if actor.finished:
        return actor.index, actor.thread
    return actor.index, actor.thread, actor.label, actor.guard, actor.waits_for


def _lockdep(lockdep: Lockdep) -> object:
    # what is held, and which nestings were seen (not where: that only words a message)
    held = [(thread, tuple(locks)) for thread, locks in lockdep._held.items() if locks]
    if len(held) > 1:
        held.sort()
    return lockdep.enabled, held, sorted(lockdep._order)


def _execution(execution: DirectExecution) -> object:
    return "X"  # what of the run matters is walked on its own: lockdep, each actor


#: where an actor's await chain is cut: at ``ActorContext._park``, whose arguments (label,
#: guard, waits_for) the actor's record keeps (``_actor`` writes them), and whose caller (a
#: method of the context) keeps the context; below it, only the runtime's own suspension
_ENDS: frozenset[object] = frozenset({ActorContext._park.__code__})

_SPECIAL: dict[type, Callable[[Any], object]] = {
    DirectExecution: _execution,
    Actor: _actor,
    Lockdep: _lockdep,
}
#: the fingerprint's walk, one per thread (a walk is a pickler: one dump at a time)
_WALKS = threading.local()
