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

import operator
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
        if not _WALK:  # one walk for every run: what it learnt of the model's classes stays
            _WALK.append(Canon(_SPECIAL, _ENDS))
        canon = _WALK[0]
        canon.reset()
        fixed = self._fixed
        if fixed is None:  # the world's oracles, if none keeps state, are the same all run long
            oracles = self.world.oracles
            plain = plain_functions(oracles)
            fixed = self._fixed = (oracles if plain is None else number(plain), self.world.max_retries)
        coroutines = self._coroutines
        form = canon.form((
            self.model,
            self.lockdep,
            [(a, canon.position(coroutines[a.index])) for a in self.actors],
            fixed,
        ))
        return digest(form), canon.opaque


def _lockdep(lockdep: Lockdep) -> object:
    # what is held, and which nestings were seen (not where: that only words a message)
    held = sorted((thread, tuple(locks)) for thread, locks in lockdep._held.items() if locks)
    return ("L", lockdep.enabled, held, sorted(lockdep._order))


def _execution(execution: DirectExecution) -> object:
    return "X"  # what of the run matters is walked on its own: lockdep, each actor


#: where an actor's await chain is cut: below ``ActorContext``, the execution parks it
#: with the same label, guard and waits_for it was given
_ENDS: frozenset[object] = frozenset({Execution.point.__code__})

_SPECIAL: dict[type, Callable[[Any], object]] = {
    DirectExecution: _execution,
    # its coroutine is walked on its own; the rest is bookkeeping of the point it is at
    Actor: operator.attrgetter("index", "thread", "finished"),
    Lockdep: _lockdep,
}
#: the fingerprint's walk (made at the first fingerprint)
_WALK: list[Canon] = []
