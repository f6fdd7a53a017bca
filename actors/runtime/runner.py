"""The controlled scheduler: actors run one step at a time under a strategy.

At every scheduling point (``ActorContext.point`` and every blocking acquire)
control returns to the runtime, which closes the step just run (records it,
runs the oracles), lists the runnable actors, asks the strategy which one
goes, and resumes that one. Exactly one actor runs between two points, so
each step is atomic and a run is a pure function of the world and the
decisions. Two executors make the same decisions (``actors.runtime.execution``):
Trio tasks (``Executor.TRIO``, the default) and coroutines stepped by hand
(``Executor.DIRECT``, for search loops).
"""

from __future__ import annotations

import enum

import attrs

from .direct import DirectExecution
from .execution import (
    InternalError as InternalError,
    ScheduleDiverged as ScheduleDiverged,
    Strategy as Strategy,
)
from .result import RunResult
from .schedule import MAX_DECISIONS
from .world import World

#: default bound on steps in one run; exceeding it is a finding (livelock)
DEFAULT_MAX_STEPS = 2000
#: default bound on the wall time of one step; exceeding it is a finding (``watchdog``)
DEFAULT_STEP_SECONDS = 10.0
#: the most steps any run may be allowed: a schedule string names at most that many decisions
MAX_STEPS = MAX_DECISIONS


class Executor(enum.Enum):
    """How actors are run; both give the same trace for the same decisions."""

    TRIO = "trio"  # each actor a Trio task, control handed over with reschedule
    DIRECT = "direct"  # each actor a coroutine stepped by a plain loop, no event loop


@attrs.frozen
class Runtime:
    """Runs worlds, one schedule each, inside an already running Trio loop.

    Example::

        async def main():
            runtime = Runtime()
            result = await runtime.run(world, strategy)
        trio.run(main)
    """

    max_steps: int = attrs.field(
        default=DEFAULT_MAX_STEPS, validator=[attrs.validators.gt(0), attrs.validators.le(MAX_STEPS)]
    )
    executor: Executor = Executor.TRIO
    #: wall time one step may take before the watchdog stops it (None: unwatched)
    step_seconds: float | None = DEFAULT_STEP_SECONDS

    async def run(self, world: World, strategy: Strategy) -> RunResult:
        """Run ``world`` once, asking ``strategy`` at every decision."""
        if self.executor is Executor.DIRECT:
            return DirectExecution(world, strategy, self.max_steps, self.step_seconds).run()
        from .trio_executor import TrioExecution  # Trio is imported only by those who run on it

        return await TrioExecution(world, strategy, self.max_steps, self.step_seconds).run()

    def run_direct(self, world: World, strategy: Strategy) -> RunResult:
        """Run ``world`` once with the direct executor, without any event loop."""
        return DirectExecution(world, strategy, self.max_steps, self.step_seconds).run()
