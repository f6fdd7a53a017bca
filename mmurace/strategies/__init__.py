"""Strategies: who runs next, one per module.

Every strategy answers ``choose(runnable, current)`` with a position in the
runnable list, which is ordered cyclically from the actor that ran last:
position 0 keeps it running, anything else is a preemption. Whatever a
strategy decides, the runtime records it, so every run replays.
"""

from .pct import Pct as Pct
from .random_walk import RandomWalk as RandomWalk
from .replay import Replay as Replay
from .sparse import Sparse as Sparse
