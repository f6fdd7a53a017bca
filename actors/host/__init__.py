"""The host kernel, as ``mm/`` is: what changes memory under KVM's feet.

Each operation is a sequence of steps in the kernel's order, labelled with
the kernel function each step stands for: ``get_user_pages``, fast and slow
(``gup``), and the COW break it may run (``cow``); the syscalls host userspace makes
(``syscalls``: munmap, mmap, mmap(MAP_FIXED), mprotect, madvise; ``mremap``;
device memory mapped ``VM_PFNMAP``, ``pfnmap``);
what the kernel does on its own (``migrate``, ``ksm``, ``thp``: the PMD
split, the deferred folio split, the collapse); and the
MMU-notifier chain they all call (``notifier``, as ``mm/mmu_notifier.c``).
A 2011 host (``Model.era``) switches KSM's, COW's and migration's ptes as
``era2011`` does, telling KVM through ``change_pte`` and ``invalidate_page``.
Nothing here imports ``actors.kvm``: KVM reaches the chain by registering on
it (``mmu_notifier_register``), as in the kernel.
"""

from .cow import do_wp_page as do_wp_page
from .gup import (
    get_user_page as get_user_page,
    get_user_page_fast_only as get_user_page_fast_only,
    get_user_pages as get_user_pages,
    get_user_pages_locked as get_user_pages_locked,
)
from .ksm import ksm_merge as ksm_merge
from .migrate import migrate_page as migrate_page
from .mremap import mremap_move as mremap_move
from .notifier import (
    change_pte as change_pte,
    invalidate_end as invalidate_end,
    invalidate_page as invalidate_page,
    invalidate_start as invalidate_start,
    mmu_notifier_register as mmu_notifier_register,
    subscribers as subscribers,
)
from .pfnmap import (
    follow_pfnmap_pte as follow_pfnmap_pte,
    mmap_device_fixed as mmap_device_fixed,
)
from .remapper import remapper as remapper
from .syscalls import (
    madvise_dontneed as madvise_dontneed,
    mmap as mmap,
    mmap_fixed as mmap_fixed,
    mprotect_readonly as mprotect_readonly,
    munmap as munmap,
)
from .thp import (
    deferred_split_scan as deferred_split_scan,
    split_huge_page as split_huge_page,
    thp_collapse as thp_collapse,
    thp_split as thp_split,
)
