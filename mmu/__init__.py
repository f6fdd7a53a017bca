"""What is raced over: the synchronous page-table model.

Frames and refcounts, the host mm (VMAs, host ptes, ``mmap_lock``), KVM's
memslot, secondary page table and notifier bookkeeping (``seq``,
``in_progress``, ``mmu_lock``), and the oracles that judge a state.

Nothing here awaits or imports trio: the actors drive the model one atomic
step at a time, and every mutating method asserts that its caller holds the
lock the kernel would require (the model's ``lockdep_assert_held``).
"""

from .frames import Frame as Frame
from .frames import FrameTable as FrameTable
from .hostmm import HostMm as HostMm
from .hostmm import HostPte as HostPte
from .hostmm import Vma as Vma
from .kvm import Kvm as Kvm
from .kvm import Memslot as Memslot
from .kvm import Spte as Spte
from .locks import LockError as LockError
from .locks import RwSem as RwSem
from .locks import SpinLock as SpinLock
from .model import PAGE_SIZE as PAGE_SIZE
from .model import Model as Model
from .oracles import (
    ORACLES as ORACLES,
)
from .oracles import (
    Violation as Violation,
)
from .oracles import (
    corruption as corruption,
)
from .oracles import (
    divergence as divergence,
)
from .oracles import (
    stale_spte as stale_spte,
)
