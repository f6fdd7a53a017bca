"""KVM, as ``virt/kvm`` and ``arch/*/kvm`` are: what keeps the guest's mappings coherent.

The vcpu loop (``vcpu``) and the fault-handling ``DESIGNS`` it runs
(``designs``, with the shared retry loop in ``refault`` and the
POWER7 VRMA and huge-leaf fault paths in ``vrma`` and ``hugepage``);
KVM's MMU-notifier callbacks (``mmu_notifier``), registered on the host's
chain; the dirty-log ioctls (``dirtylog``).
"""

from .designs import DESIGNS as DESIGNS, Design as Design
from .dirtylog import (
    WriteProtect as WriteProtect,
    enable_dirty_logging as enable_dirty_logging,
    get_dirty_log as get_dirty_log,
)
from .mmu_notifier import notifier_dispatcher as notifier_dispatcher
from .vcpu import vcpu as vcpu
