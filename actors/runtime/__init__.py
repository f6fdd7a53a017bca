"""The engine: runs actor coroutines one step at a time under a strategy.

Knows nothing of KVM or of the host kernel. A ``World`` is a model, the
actors (``ActorSpec``: async functions of an ``ActorContext``) and the
oracles; ``Runtime`` runs it once under a ``Strategy``, as Trio tasks or
stepped directly (``Executor``), and returns a frozen ``RunResult`` whose
``Schedule`` replays it. Actors await only their context: scheduling points,
locks (with lockdep), and request/reply through a ``Mailbox``.
"""

from .context import ActorContext as ActorContext, ActorFn as ActorFn
from .execution import (
    InternalError as InternalError,
    ScheduleDiverged as ScheduleDiverged,
    Strategy as Strategy,
)
from .mailbox import Mailbox as Mailbox, Request as Request
from .noise import buried as buried
from .result import Finding as Finding, RunResult as RunResult, Status as Status, Step as Step
from .runner import (
    DEFAULT_MAX_STEPS as DEFAULT_MAX_STEPS,
    MAX_STEPS as MAX_STEPS,
    Executor as Executor,
    Runtime as Runtime,
)
from .schedule import Schedule as Schedule, ScheduleError as ScheduleError, sort_key as sort_key
from .weak import MEMORY as MEMORY, is_memory_actor as is_memory_actor, weaken as weaken
from .world import DEFAULT_MAX_RETRIES as DEFAULT_MAX_RETRIES, ActorSpec as ActorSpec, World as World
