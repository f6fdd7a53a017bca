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

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .awaits import Suspend, close
from .context import ActorContext
from .execution import _NO_ACCESS, Actor, Execution, ScheduleDiverged
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


#: where an actor's await chain is cut: the one awaitable of a point (``ActorContext._park``
#: parked the actor with the label, guard and waits_for its frame holds)
_ENDS: frozenset[object] = frozenset({Suspend.__await__.__code__})

_SPECIAL: dict[type, Callable[[Any, Canon], object]] = {
    DirectExecution: _execution, Actor: _actor, Lockdep: _lockdep,
}
