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
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .awaits import Suspend, close
from .context import ActorContext
from .execution import _NO_ACCESS, Actor, Execution, ScheduleDiverged
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
        replay = getattr(self._strategy, "replay", None)  # a prefix to run without asking
        for actor in self.actors:
            coroutines[actor.index] = actor.spec.fn(ActorContext(actor.spec.name, self.model, self, actor))
        try:
            with self.watchdog:
                for actor in self.actors:  # run each up to its first point
                    self.resume(actor, coroutines[actor.index])
                self.begin()
                plan = replay() if replay is not None else None
                current = self.decide(self.replay(*plan) if plan else None)
                while current is not None:
                    self.resume(current, coroutines[current.index])
                    current = self.decide(current)
        finally:
            for coroutine in coroutines.values():
                close(coroutine)  # actors still parked: unwind them, as Trio's cancel does
        return self.result()

    def replay(self, trail: Sequence[int], choices: dict[int, int]) -> Actor | None:
        """Run the first ``len(trail)`` steps again, ``trail[i]`` the actor of step ``i``,
        ``choices[i]`` the decision made before it (if it was one): a prefix an earlier
        run of this deterministic world ran and judged, so no guard is evaluated, no
        strategy asked, no footprint kept and no oracle run; the trace is the same.
        Returns the actor whose step is running, for ``decide`` to close and go on from.
        """
        actors, coroutines, model = self.actors, self._coroutines, self.model
        steps, record, decided = self._steps, self.trail.append, self._choices
        actor: Actor | None = None
        for index, who in enumerate(trail):
            if actor is not None:  # close it, as ``_close_step`` does a replayed step
                name = actor.spec.name
                # a Step only if the run has a result: most runs of a search are cut short
                thread = actor.thread or name
                steps.append((index - 1, name, self._label, model.drain_log(), _NO_ACCESS, thread))
                record(actor.index)
                model.fp.clear()
            choice = choices.get(index)
            if choice is not None:
                decided.append(choice)
            actor = actors[who]
            if not actor.parked or self.finding is not None or self.aborted is not None:
                raise ScheduleDiverged(f"step {index} of the last run, {actor.spec.name}'s, no longer fits")
            self.running, self._label, actor.parked = actor, actor.label, False
            self.resume(actor, coroutines[who])
        return actor

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
#: method of the context) keeps the context; below it, only the runtime's own suspension,
#: which ``ActorContext.point`` awaits directly (its frame, walked, holds the same arguments)
_ENDS: frozenset[object] = frozenset({ActorContext._park.__code__, Suspend.__await__.__code__})

_SPECIAL: dict[type, Callable[[Any], object]] = {
    DirectExecution: _execution,
    Actor: _actor,
    Lockdep: _lockdep,
}
#: the fingerprint's walk, one per thread (a walk is a pickler: one dump at a time)
_WALKS = threading.local()
