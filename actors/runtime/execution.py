"""The decision core shared by every executor: one run of one world.

An executor only decides *how* actors are parked and woken (Trio tasks, or
coroutines stepped by hand); everything that makes a run what it is lives
here: closing a step (trace line, footprint, oracles), listing the runnable
actors, asking the strategy, recording the decision, resuming an actor's
coroutine, and the findings the runtime itself makes (deadlock, step bound,
crash, an await of something else than the runtime, a step that never ends).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import attrs

from mmu import Access

from .awaits import PARKED, foreign_await, foreign_await_raised
from .context import IDLE, Guard
from .lockdep import Lockdep
from .result import Finding, RunResult, Status, Step
from .schedule import Schedule
from .watchdog import StepTimeout, Watchdog
from .world import ActorSpec, World

_NO_ACCESS = Access()


class Strategy(Protocol):
    """Decides who runs next. Lives across runs; never sees the model.

    ``choose`` gets the runnable actors' indices (at least two), listed
    cyclically from ``current``, the actor that ran last (so position 0
    keeps it running if it can), and returns a position in that list. A
    strategy may also define ``observe(actor, access)``, called after every
    step with the index of the actor that ran and what the step touched
    (footprints are recorded only for strategies that observe). A strategy
    that replays decisions of an earlier run may define ``replaying()``: while
    it is true, the steps closed are the earlier run's, already judged, and
    are neither judged nor observed again. It may also define ``replay()``,
    asked once at the start of a run by the direct executor: the actor of every
    step to replay and the choice made before each step that was a decision
    (``DirectExecution.replay``), so that those steps run without asking it.
    """

    def choose(self, runnable: Sequence[int], current: int | None) -> int: ...


class ScheduleDiverged(Exception):
    """Raised by a strategy replaying decisions that no longer fit the run."""


class InternalError(Exception):
    """A broken invariant of the runtime itself: this is a bug in mmurace."""


@attrs.define(eq=False)
class Actor:
    """An actor during one run."""

    index: int
    spec: ActorSpec
    handle: object = None  # the executor's: a Trio task, or a coroutine
    finished: bool = False
    # the point it is parked at (fields, not an object: this is the hot path)
    parked: bool = False
    label: str = ""
    guard: Guard | None = None
    waits_for: Callable[[], str] | str = ""  # said in deadlock reports; callable: judged then
    thread: str = ""  # the kernel thread of the step it runs now (ActorContext.thread)

    def park(self, label: str, guard: Guard | None, waits_for: Callable[[], str] | str) -> None:
        self.parked, self.label, self.guard, self.waits_for = True, label, guard, waits_for


class Execution:
    """The state of one run and the decisions made in it."""

    def __init__(
        self, world: World, strategy: Strategy, max_steps: int, step_seconds: float | None = None
    ) -> None:
        self.world = world
        self.model = world.model
        self._strategy = strategy
        self._observe: Callable[[int, Access], None] | None = getattr(strategy, "observe", None)
        self._footprints = self._observe is not None  # only a strategy that observes needs them
        self._replaying: Callable[[], bool] | None = getattr(strategy, "replaying", None)
        self._max_steps = max_steps
        self.actors = [Actor(i, spec) for i, spec in enumerate(world.actors)]
        self._rotations = [self.actors[i:] + self.actors[:i] for i in range(len(self.actors))]
        self.started = False
        self.running: Actor | None = None
        self._label = ""
        #: each step closed: a ``Step``, or the fields of one (a replayed step: ``DirectExecution.replay``)
        self._steps: list[Step | tuple[Any, ...]] = []
        self._choices: list[int] = []
        #: the actor (index) of every step closed: what a search replays next (``replay``)
        self.trail: list[int] = []
        self.finding: Finding | None = None
        self.done = False
        self.aborted: Exception | None = None
        self.lockdep = Lockdep(enabled=world.lockdep)
        self.watchdog = Watchdog(step_seconds)
        self._stopped = False  # the running step was stopped by the watchdog: not judged

    @property
    def max_retries(self) -> int:
        """Retries of one fault before its vcpu counts as livelocked (``World.max_retries``)."""
        return self.world.max_retries

    @property
    def step_index(self) -> int:
        """The index of the step now running (or about to)."""
        return len(self._steps)

    def relabel(self, label: str) -> None:
        """Rename the step now running, once it knows what it stands for."""
        self._label = label

    def begin(self) -> None:
        """Every actor is parked at its first point: the run may start."""
        self.started = True
        if self.model.log and self.finding is None:
            # executors start actors in no fixed order: work before the first point is a race
            self.finding = Finding(
                "crash",
                -1,
                "an actor changed the model before its first scheduling point: "
                + "; ".join(self.model.drain_log()),
            )
        self.model.fp.clear()

    def report(self, kind: str, message: str) -> None:
        """An actor found something wrong with its own progress (e.g. livelock):
        a finding at the step now running; the run ends at the next point."""
        if self.finding is None:
            self.finding = Finding(kind, len(self._steps), message)

    # ---- resuming an actor, and what can go wrong in its step ----

    def resume(self, actor: Actor, coroutine: Coroutine[Any, Any, None]) -> bool:
        """Run ``actor``'s coroutine to its next point: True if it parked there.

        False if it can go no further: it finished, raised, awaited something
        else than the runtime, or was stopped by the watchdog (each a finding).
        """
        dog = self.watchdog
        dog.resumes += 1
        dog.stepping = True
        try:
            yielded = coroutine.send(None)
        except StopIteration:
            return self._finished(actor)
        except StepTimeout:
            self._timed_out(actor)
            return self._finished(actor)
        except Exception as exc:
            self._crashed(actor, exc)
            return self._finished(actor)
        finally:
            dog.stepping = False
        if yielded is not PARKED:
            self._awaited(actor, foreign_await(coroutine, yielded))
            return self._finished(actor)
        return True

    @staticmethod
    def _finished(actor: Actor) -> bool:
        actor.finished = True
        return False

    def _crashed(self, actor: Actor, exc: Exception) -> None:
        """An actor raised: a finding of the design, never a crash of the tool."""
        awaited = foreign_await_raised(exc)
        if awaited is not None:  # Trio outside a Trio run: the await the Trio executor sees
            self._awaited(actor, awaited)
        elif self.finding is None:
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.finding = Finding("crash", len(self._steps), f"{actor.spec.name} raised {what}")

    def _awaited(self, actor: Actor, what: str) -> None:
        """An actor awaited something else than its context: a finding, like a crash.

        A finding and not a usage error, because it is a defect of the actor's
        code (a design or a scenario), which is what runs judge, and it may lie
        on a path only some schedules take (a retry); as a finding it is found
        by any search, shrunk, and replayed by its schedule like any other,
        and a campaign goes on. It ends the run at once: the executor cannot
        give the actor what it awaits, and the run cannot go on without it.
        """
        if self.finding is None:
            where = f"in step {self._label!r}" if self.running is actor else "before its first point"
            self.finding = Finding(
                "foreign_await",
                len(self._steps),
                f"{actor.spec.name} awaited {what} {where}: an actor may await only its ActorContext",
            )

    def _timed_out(self, actor: Actor) -> None:
        """The watchdog stopped a step that ran past its bound (``watchdog``): a finding."""
        if self.finding is None:
            where = f"step {self._label!r}" if self.running is actor else "up to its first point"
            self.finding = Finding(
                "step_timeout",
                len(self._steps),
                f"{actor.spec.name} ran {where} for more than {self.watchdog.seconds:g} s"
                " without reaching its next point: a loop that never ends?",
            )
            # what it did before it was stopped depends on when: not shown, not judged
            self.model.drain_log()
            self._stopped = True

    def decide(self, current: Actor | None) -> Actor | None:
        """Close the running step, then pick the next actor (None: the run is over)."""
        if self.running is not None:
            self._close_step()
        if self.finding is not None or self.aborted is not None:
            self._end()
            return None
        start = current.index if current is not None else 0
        # listed cyclically from the actor that ran last: choice 0 keeps it running
        runnable = [a for a in self._rotations[start] if a.parked and (a.guard is None or a.guard())]
        if self.world.weak and self._last_to_finish():
            runnable = []  # nobody left to see what the memory actors would still do
        if not runnable:
            if any(not a.finished and not a.spec.daemon for a in self.actors):
                self.finding = Finding("deadlock", len(self._steps) - 1, self._deadlock_message())
            else:
                self._judge_end()
            self._end()
            return None
        if len(self._steps) >= self._max_steps:
            self.finding = Finding(
                "step_bound",
                len(self._steps) - 1,
                f"exceeded {self._max_steps} steps: a retry loop that never succeeds (livelock)?",
            )
            self._end()
            return None
        choice = 0
        if len(runnable) > 1:
            try:
                choice = self._strategy.choose(
                    [a.index for a in runnable], current.index if current is not None else None
                )
                if not 0 <= choice < len(runnable):
                    raise InternalError(f"strategy chose {choice} of {len(runnable)} actors")
            except Exception as exc:  # e.g. a replay that no longer fits: the caller's error
                self.aborted = exc  # raised by the executor, not a finding of the design
                self._end()
                return None
            self._choices.append(choice)
        chosen = runnable[choice]
        self.running, self._label, chosen.parked = chosen, chosen.label, False
        return chosen

    def _close_step(self) -> None:
        running = self.running
        assert running is not None
        index = len(self._steps)
        model = self.model
        replayed = self._replaying is not None and self._replaying()  # judged in an earlier run
        access = model.drain_footprint() if self._footprints and not replayed else _NO_ACCESS
        if running.finished and self.world.weak and access is not _NO_ACCESS and self._last_to_finish():
            # it ends what the memory actors could still commit (``decide``): no reordering past it
            access = Access(access.reads, access.writes, unseen=True)
        name = running.spec.name
        step = Step(index, name, self._label, model.drain_log(), access, running.thread or name)
        self._steps.append(step)
        self.trail.append(running.index)
        self.running = None
        if self._stopped:
            return
        if not replayed:
            for oracle in self.world.oracles.values():
                violation = oracle(model)
                if violation is not None:
                    self.finding = Finding(violation.oracle, index, violation.message)
                    break
        model.fp.clear()  # what the oracles read belongs to no step
        if self._observe is not None and not replayed:
            try:
                self._observe(running.index, access)
            except Exception as exc:  # e.g. a search cutting a redundant run short
                self.aborted = exc

    def _last_to_finish(self) -> bool:
        return all(a.finished or a.spec.daemon for a in self.actors)

    def _judge_end(self) -> None:
        """Every actor the run waits for finished: end-of-run oracles (leaked refs,
        pinned pages) judge the final state, as of the last step."""
        model = self.model
        model.end_run()
        said = model.drain_log()
        if said and self._steps:  # shown with the last step, after which it is judged
            last = self._steps[-1]
            assert isinstance(last, Step)  # closed by ``_close_step``: never a replayed one
            self._steps[-1] = attrs.evolve(last, events=last.events + said)
        model.fp.clear()
        for oracle in self.world.oracles.values():
            violation = oracle(model)
            if violation is not None:
                self.finding = Finding(violation.oracle, len(self._steps) - 1, violation.message)
                return

    def _end(self) -> None:
        if self.running is not None:
            self._close_step()
        self.done = True

    def _deadlock_message(self) -> str:
        def waits(a: Actor) -> str:
            return (a.waits_for() if callable(a.waits_for) else a.waits_for) or a.label

        # a daemon idle for want of requests is not part of a deadlock; one stuck
        # half way through serving one (the notifier on mmu_lock) is
        blocked = [
            f"{a.spec.name} waits for {waits(a)}"
            for a in self.actors
            if a.parked and not (a.spec.daemon and waits(a).startswith(IDLE))
        ]
        return "deadlock: nobody can run; " + "; ".join(blocked)

    def result(self) -> RunResult:
        """The run, after the fact; raises what aborted it, if anything did."""
        if self.aborted is not None:
            raise self.aborted
        return RunResult(
            status=Status.VIOLATION if self.finding else Status.PASSED,
            actors=tuple(a.spec.name for a in self.actors),
            steps=tuple(s if isinstance(s, Step) else Step(*s) for s in self._steps),
            finding=self.finding,
            schedule=Schedule(tuple(self._choices)),
        )
