"""How races are hunted and shown: strategies, hunting, reports and the CLI."""

from .api import Config as Config
from .api import Hunt as Hunt
from .api import hunt as hunt
from .api import load_scenario as load_scenario
from .api import replay as replay
from .errors import MmuraceError as MmuraceError
from .errors import UsageError as UsageError
from .strategies import RandomWalk as RandomWalk
from .strategies import Replay as Replay
