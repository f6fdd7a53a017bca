"""Which races: one module per scenario, each runnable on its own, and the catalog."""

from .base import Scenario as Scenario
from .dirty_log import SCENARIO as _dirty_log
from .invalidate_ranges import SCENARIO as _invalidate_ranges
from .ksm_merge import SCENARIO as _ksm_merge
from .ksm_merge_2011 import SCENARIO as _ksm_merge_2011
from .ksm_reads import SCENARIO as _ksm_reads
from .memslot_delete import SCENARIO as _memslot_delete
from .migrate_page import SCENARIO as _migrate_page
from .migrate_page_2011 import SCENARIO as _migrate_page_2011
from .mprotect_ro import SCENARIO as _mprotect_ro
from .multi_vma import SCENARIO as _multi_vma
from .passthrough_remap import SCENARIO as _passthrough_remap
from .pin_ppc970 import SCENARIO as _pin_ppc970
from .race_munmap import SCENARIO as _race_munmap
from .race_remap import SCENARIO as _race_remap
from .thp_split import SCENARIO as _thp_split
from .vrma_psize import SCENARIO as _vrma_psize

#: every scenario by name, in the order the review thread raises them
CATALOG: dict[str, Scenario] = {
    s.name: s
    for s in (
        _race_remap,
        _passthrough_remap,
        _race_munmap,
        _multi_vma,
        _mprotect_ro,
        _ksm_merge,
        _ksm_merge_2011,
        _ksm_reads,
        _dirty_log,
        _vrma_psize,
        _pin_ppc970,
        _migrate_page,
        _migrate_page_2011,
        _thp_split,
        _memslot_delete,
        _invalidate_ranges,
    )
}
