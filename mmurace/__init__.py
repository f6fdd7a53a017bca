"""How races are hunted and shown: strategies, hunting, reports and the CLI."""

from .api import (
    Config as Config,
    Hunt as Hunt,
    hunt as hunt,
    load_scenario as load_scenario,
    replay as replay,
)
from .errors import MmuraceError as MmuraceError, UsageError as UsageError
from .strategies import RandomWalk as RandomWalk, Replay as Replay
