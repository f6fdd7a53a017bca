"""Which races: one module per scenario, each runnable on its own, and the catalog."""

from .base import Scenario as Scenario
from .race_remap import SCENARIO as _race_remap

#: every scenario by name
CATALOG: dict[str, Scenario] = {s.name: s for s in (_race_remap,)}
