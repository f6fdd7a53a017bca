"""The issue-4 oracles and host operations, on small worlds: each oracle fires on
a broken design and stays silent on the safe one."""

from __future__ import annotations

import functools

import pytest

from actors import (
    DESIGNS,
    ActorContext,
    ActorSpec,
    Design,
    Fault,
    SeqRetry,
    kvm_init_mmu_notifier,
    vcpu,
)
from actors.host import madvise_dontneed, munmap
from mmu import PAGE_SIZE, Model, Region, leaked_refs, pinned_pages, spurious_efault, writable_spte
from mmurace import RandomWalk
from scenarios.base import full_world
from scenarios.pin_ppc970 import build as pin_world
from tests.hunting import run


async def _release_only_after_a_retry(design: Design, ctx: ActorContext, f: Fault) -> None:
    """seq_retry that forgets ``kvm_release_pfn_clean`` on its success path."""
    if f.stale:
        await SeqRetry.release(design, ctx, f)


LEAKY = DESIGNS["seq_retry"].replace(release=_release_only_after_a_retry, name="leaky")


@pytest.mark.parametrize(("design", "leaks"), [(LEAKY, True), (DESIGNS["seq_retry"], False)])
def test_leaked_refs_catches_a_missing_put_page_at_the_end_only(design: Design, leaks: bool) -> None:
    results = [run(pin_world(design), RandomWalk(seed), "leaked_refs") for seed in range(100)]
    found = [r.finding for r in results if r.finding is not None]
    assert bool(found) == leaks
    for finding in found:
        assert "reference(s) leaked" in finding.message
    for r in results:
        if r.finding is not None:
            assert r.finding.step == len(r.steps) - 1, "judged only at the end of the run"


def test_end_of_run_oracles_wait_for_the_end() -> None:
    m = Model.build()
    m.frames.get_page(m.mm.ptes[0x40000000].pfn)  # a reference nobody explains
    m.kvm.pinned[0] = m.frames.alloc_page()  # a pin the host does not map
    assert leaked_refs(m) is None and pinned_pages(m) is None
    m.end_run()
    assert m.log[-1] == "end of run: every actor finished"
    leak, pin = leaked_refs(m), pinned_pages(m)
    assert leak is not None and leak.message.startswith("pfn 0x100 has refcount 2")
    assert pin is not None and pin.message.startswith("pfn 0x101 stays pinned for gfn 0x0")


def test_writable_spte_waits_for_the_invalidation_to_end() -> None:
    m = Model.build()
    hva = 0x40000000
    m.kvm.mmu_lock.acquire("kvm")
    m.kvm.install_spte(0, m.mm.ptes[hva].pfn, True, "kvm")
    m.kvm.invalidate_begin("kvm")
    m.mm.mmap_lock.acquire("qemu", write=True)
    m.mm.wrprotect_pte(hva, "qemu")
    assert writable_spte(m) is None, "inside the window start's zap is what matters (R4)"
    m.kvm.invalidate_end("kvm")
    violation = writable_spte(m)
    assert violation is not None and "is read-only -> pfn 0x100" in violation.message


def test_spurious_efault_judges_the_vma_at_the_time_of_the_efault() -> None:
    m = Model.build_regions(Region(1, "rw"), Region(1, "r"))
    m.kvm_run_efault(1, write=True)  # a write to the read-only VMA: rightly refused
    assert spurious_efault(m) is None
    m.kvm_run_efault(1, write=False)
    assert spurious_efault(m) is not None


def _host_world(design: str, op: str):
    model = Model.build(npages=2)
    kvm_init_mmu_notifier(model, design)
    start = model.kvm.memslot.gfn_to_hva(0)

    async def qemu(ctx: ActorContext) -> None:
        if op == "munmap":
            await munmap(ctx, start + PAGE_SIZE, start + 2 * PAGE_SIZE, late_free=True)
        else:
            await madvise_dontneed(ctx, start, start + 2 * PAGE_SIZE)

    return full_world(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=DESIGNS[design], gfns=(1, 0, 1, 0), write=False)),
            ActorSpec("qemu", qemu),
        ),
    )


@pytest.mark.parametrize("op", ["munmap", "madvise"])
def test_host_ops_break_no_retry_and_spare_seq_retry(op: str) -> None:
    broken = [run(_host_world("no_retry", op), RandomWalk(seed)).finding for seed in range(300)]
    assert any(f is not None and f.oracle in ("stale_spte", "divergence") for f in broken)
    for seed in range(300):
        result = run(_host_world("seq_retry", op), RandomWalk(seed))
        assert result.finding is None, result.finding


def test_munmap_splits_the_vma_and_frees_after_end() -> None:
    result = run(_host_world("seq_retry", "munmap"), RandomWalk(0))
    labels = [s.label for s in result.steps if s.actor == "qemu"]
    end = labels.index("mmu_notifier_invalidate_range_end")
    # KVM's callback runs in QEMU's thread, then QEMU frees the pages (tlb_finish_mmu)
    assert labels[end + 1 :] == [
        "mmu_lock: kvm_mmu_invalidate_end",
        "tlb_finish_mmu: flush, put_page",
        "vms_complete_munmap_vmas: remove_vma, mmap_read_unlock",
    ]
    events = [e for s in result.steps for e in s.events]
    split = "vma 0x40000000-0x40002000 rw -> 0x40000000-0x40001000 rw, 0x40001000-0x40002000 rw"
    # the VMA leaves the tree before the downgrade, its pte only at the zap
    assert events.index(split) < events.index("vma 0x40001000-0x40002000 detached")
    assert events.index("vma 0x40001000-0x40002000 detached") < events.index("range 0x40001000-0x40002000")
