"""What is raced over: the synchronous page-table model.

Frames and refcounts, the host mm (VMAs, host ptes, ``mmap_lock``), KVM's
memslot, secondary page table and notifier bookkeeping (``seq``,
``in_progress``, ``mmu_lock``), and the oracles that judge a state.

Nothing here awaits or imports trio: the actors drive the model one atomic
step at a time, and every mutating method asserts that its caller holds the
lock the kernel would require (the model's ``lockdep_assert_held``).
"""

from .era import Era as Era
from .footprint import Access as Access, Footprint as Footprint
from .frames import Frame as Frame, FrameTable as FrameTable
from .hostmm import HostMm as HostMm, HostPte as HostPte, Vma as Vma
from .kvm import Kvm as Kvm, Memslot as Memslot, Spte as Spte
from .locks import LockError as LockError, RwSem as RwSem, SpinLock as SpinLock
from .memslots import Memslots as Memslots, Slot as Slot
from .model import PAGE_SIZE as PAGE_SIZE, Model as Model, Region as Region
from .oracles import (
    ORACLES as ORACLES,
    Violation as Violation,
    corruption as corruption,
    divergence as divergence,
    leaked_refs as leaked_refs,
    pinned_pages as pinned_pages,
    spurious_efault as spurious_efault,
    stale_spte as stale_spte,
    writable_spte as writable_spte,
)
from .weak import Memory as Memory, WeakMemory as WeakMemory
