"""KVM, as ``virt/kvm`` and ``arch/*/kvm`` are: what keeps the guest's mappings coherent.

A ``Design`` (``design``) is everything KVM does that a developer might
change, as named steps: registration, the fault path, the MMU-notifier
callbacks, the dirty-log ioctls. ``SeqRetry`` (``fault_path``) is KVM's
fault path today, step by step; the thread's other ``DESIGNS`` vary it
(``designs``, ``vrma``, ``hugepage``). The vcpu loop (``vcpu``) runs a
design's fault path; ``kvm_init_mmu_notifier`` (``mmu_notifier``) registers
the design's callbacks on the host's notifier chain when a world is built.
``set_spte`` holds PPC HV's half of a 2011 host's ``change_pte``. ``Power7Hpt``
(``power7``) is POWER7's HPT fault path, for variants of it.
"""

from .design import Design as Design, Fault as Fault, step as step
from .designs import DESIGNS as DESIGNS, design_named as design_named
from .fault_path import SeqRetry as SeqRetry
from .mmu_notifier import KvmMmuNotifier as KvmMmuNotifier, kvm_init_mmu_notifier as kvm_init_mmu_notifier
from .power7 import Power7Hpt as Power7Hpt
from .set_spte import ppc_hv_set_spte_hva as ppc_hv_set_spte_hva
from .vcpu import vcpu as vcpu
