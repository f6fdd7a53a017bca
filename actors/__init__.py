"""Who races: the controlled Trio runtime and the actors that run on it.

The runtime (``Runtime``, ``ActorContext``) schedules actor tasks one step
at a time; the actors are the vcpu with its fault-handling ``DESIGNS``, the
host userspace ``remapper`` and the MMU-notifier dispatcher.
"""

from .context import ActorContext as ActorContext
from .designs import DESIGNS as DESIGNS
from .designs import Design as Design
from .host import remapper as remapper
from .mailbox import Mailbox as Mailbox
from .mailbox import Request as Request
from .notifier import (
    InvalidateEnd as InvalidateEnd,
)
from .notifier import (
    InvalidateStart as InvalidateStart,
)
from .notifier import (
    notifier_dispatcher as notifier_dispatcher,
)
from .result import Finding as Finding
from .result import RunResult as RunResult
from .result import Status as Status
from .result import Step as Step
from .runtime import (
    DEFAULT_MAX_STEPS as DEFAULT_MAX_STEPS,
)
from .runtime import (
    InternalError as InternalError,
)
from .runtime import (
    Runtime as Runtime,
)
from .runtime import (
    ScheduleDiverged as ScheduleDiverged,
)
from .runtime import (
    Strategy as Strategy,
)
from .schedule import Schedule as Schedule
from .schedule import ScheduleError as ScheduleError
from .schedule import sort_key as sort_key
from .vcpu import vcpu as vcpu
from .world import ActorSpec as ActorSpec
from .world import World as World
