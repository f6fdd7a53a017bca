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

from collections.abc import Callable, Coroutine
from typing import Any

from .awaits import close
from .context import ActorContext
from .execution import Actor, Execution
from .fingerprint import Canon, Frames, digest, plain_functions
from .lockdep import Lockdep
from .result import RunResult


class DirectExecution(Execution):
    """One run with every actor a coroutine that this loop resumes."""

    _canon: Canon | None = None  # the fingerprint's walk, kept for the next one

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
        canon = self._canon
        if canon is None:
            canon = self._canon = Canon(_SPECIAL, _ENDS)
        else:
            canon.reset()
        oracles = self.world.oracles
        form = canon.form((
            self.model,
            self.lockdep,
            [(a, Frames(self._coroutines[a.index])) for a in self.actors],
            plain_functions(oracles) or oracles,
            self.world.max_retries,
        ))
        return digest(form), canon.opaque


def _actor(actor: Actor, canon: Canon) -> object:
    # its coroutine is walked on its own; the rest is bookkeeping of the point it is at
    return ("A", actor.index, actor.thread, actor.finished)


def _lockdep(lockdep: Lockdep, canon: Canon) -> object:
    # what is held, and which nestings were seen (not where: that only words a message)
    held = sorted((thread, tuple(locks)) for thread, locks in lockdep._held.items() if locks)
    return ("L", lockdep.enabled, held, sorted(lockdep._order))


def _execution(execution: DirectExecution, canon: Canon) -> object:
    return "X"  # what of the run matters is walked on its own: lockdep, each actor


#: where an actor's await chain is cut: below ``ActorContext``, the execution parks it
#: with the same label, guard and waits_for it was given
_ENDS: frozenset[object] = frozenset({Execution.point.__code__})

_SPECIAL: dict[type, Callable[[Any, Canon], object]] = {
    DirectExecution: _execution, Actor: _actor, Lockdep: _lockdep,
}
