"""Who races: the controlled runtime and the actors that run on it.

The runtime (``Runtime``, ``ActorContext``) runs actor coroutines one step
at a time, as Trio tasks or stepped directly; the actors are the vcpu with
its fault-handling ``DESIGNS``, the host userspace ``remapper`` and the
MMU-notifier dispatcher.
"""

from .context import ActorContext as ActorContext
from .designs import DESIGNS as DESIGNS, Design as Design
from .host import remapper as remapper
from .mailbox import Mailbox as Mailbox, Request as Request
from .notifier import (
    InvalidateEnd as InvalidateEnd,
    InvalidateStart as InvalidateStart,
    notifier_dispatcher as notifier_dispatcher,
)
from .result import Finding as Finding, RunResult as RunResult, Status as Status, Step as Step
from .runtime import (
    DEFAULT_MAX_STEPS as DEFAULT_MAX_STEPS,
    Executor as Executor,
    InternalError as InternalError,
    Runtime as Runtime,
    ScheduleDiverged as ScheduleDiverged,
    Strategy as Strategy,
)
from .schedule import Schedule as Schedule, ScheduleError as ScheduleError, sort_key as sort_key
from .vcpu import vcpu as vcpu
from .world import DEFAULT_MAX_RETRIES as DEFAULT_MAX_RETRIES, ActorSpec as ActorSpec, World as World
