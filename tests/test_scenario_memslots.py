"""Several memslots (docs/model.md section 7): range-based retry, SRCU, the INVALID
flag and mn_active_invalidate_count. A correct deletion or move is not flagged;
each step left out is caught, and by the oracle that should catch it."""

from __future__ import annotations

import functools

import pytest

from actors import DESIGNS, ActorSpec, Design, Executor, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import madvise_dontneed
from actors.kvm.memslots import MemslotChange, MemslotRetry, kvm_set_user_memory_region
from mmu import PAGE_SIZE, Memslots, Model, SpinLock
from mmu.oracles import deleted_memslot
from mmurace import Config
from mmurace.explore import Verdict, explore
from scenarios import CATALOG, Scenario

MOVE = (("move", 1),)


def config(scenario: str, design: Design | str, params: tuple[tuple[str, int], ...] = ()) -> Config:
    return Config(CATALOG[scenario], design, params=params, executor=Executor.DIRECT)


def _kvm_with_two_slots() -> tuple[Model, SpinLock]:
    model = Model.build(npages=2)
    hva = model.kvm.memslot.userspace_addr
    model.kvm.memslots = Memslots.of(model.log, model.fp, (0, 0, 1, hva), (1, 1, 1, hva + 0x1000))
    lock = model.kvm.mmu_lock
    lock.acquire("t")
    return model, lock


def test_the_range_grows_until_in_progress_returns_to_zero() -> None:
    kvm = _kvm_with_two_slots()[0].kvm
    kvm.invalidate_begin_ranged("t")
    kvm.invalidate_range_add(1, 2, "t")
    assert not kvm.retry_gfn(0, 0, "t"), "gfn 0 is outside every invalidation in progress"
    kvm.invalidate_begin_ranged("t")
    kvm.invalidate_range_add(0, 1, "t")
    assert (kvm.range_start, kvm.range_end) == (0, 2)
    kvm.invalidate_end("t")
    assert kvm.retry_gfn(1, 1, "t"), "the first invalidation is still in progress"
    kvm.invalidate_end("t")
    assert not kvm.retry_gfn(2, 1, "t") and kvm.retry_gfn(1, 1, "t"), "only seq is left to check"
    kvm.invalidate_begin_ranged("t")
    assert (kvm.range_start, kvm.range_end) == (None, None), "the range restarts when in_progress leaves 0"
    assert kvm.retry_gfn(2, 0, "t"), "no range yet: retry"


def test_synchronize_srcu_waits_for_readers_of_the_old_array() -> None:
    memslots = _kvm_with_two_slots()[0].kvm.memslots
    assert memslots is not None
    memslots.srcu_read_lock("vcpu0")
    memslots.swap(memslots.invalid_copy(1), 1, "qemu")
    assert not memslots.synchronized()
    memslots.srcu_read_unlock("vcpu0")
    memslots.srcu_read_lock("vcpu0")
    assert memslots.synchronized(), "a reader that locked after the swap sees the new array"
    assert memslots.lookup(1, "vcpu0").invalid  # type: ignore[union-attr]


def test_a_leaf_is_judged_against_the_slot_it_was_installed_under() -> None:
    model, _ = _kvm_with_two_slots()
    memslots = model.kvm.memslots
    assert memslots is not None
    old = memslots.active[1]
    model.kvm.install_spte(1, model.mm.ptes[old.userspace_addr].pfn, True, "t", slot=old)
    memslots.swap(memslots.moved_copy(1, 2), 1, "qemu")
    assert deleted_memslot(model) is None, "moved, but the old version is not freed yet"
    memslots.free(old.serial, "qemu")
    violation = deleted_memslot(model)
    assert violation is not None and violation.message.startswith("spte gfn 0x1 -> pfn")


@pytest.mark.parametrize("params", [(), MOVE], ids=["delete", "move"])
async def test_a_correct_update_is_not_flagged(params: tuple[tuple[str, int], ...]) -> None:
    proof = await explore(config("memslot_delete", "memslot_retry", params), preemptions=1)
    assert proof.verdict is Verdict.EXHAUSTED, proof.result


@pytest.mark.parametrize(
    ("design", "oracle"),
    [
        ("memslot_no_zap", "deleted_memslot"),
        ("memslot_no_flush", "deleted_memslot"),
        ("memslot_no_invalid", "deleted_memslot"),
        ("memslot_no_srcu", "deleted_memslot"),
    ],
)
async def test_a_move_that_skips_a_step_is_caught(design: str, oracle: str) -> None:
    found = await explore(config("memslot_delete", design, MOVE), preemptions=2)
    assert found.result is not None and found.result.finding is not None
    assert found.result.finding.oracle == oracle


async def test_a_swap_that_does_not_wait_leaves_an_invalidation_counted() -> None:
    """Without a fault left to wait for it, the unbalanced count is judged at the end."""
    found = await explore(config("memslot_delete", "memslot_no_wait", (("unmap", 0),)), preemptions=2)
    assert found.result is not None and found.result.finding is not None
    assert found.result.finding.oracle == "invalidate_leak"


def test_a_memslot_scenario_needs_a_memslot_design() -> None:
    with pytest.raises(ValueError, match=r"^design 'seq_retry' knows one memslot: it needs a MemslotRetry$"):
        CATALOG["memslot_delete"].build(DESIGNS["seq_retry"])


def _create_while_invalidating(design: Design | str) -> World:
    """Slot 1 created over memory a balloon thread gives back, while a vcpu writes gfn 1."""
    design_ = design_named(design)
    assert isinstance(design_, MemslotRetry)
    model = Model.build(npages=2)
    hva0 = model.kvm.memslot.userspace_addr
    model.kvm.memslots = Memslots.of(model.log, model.fp, (0, 0, 1, hva0))
    kvm_init_mmu_notifier(model, design_)
    hva = hva0 + PAGE_SIZE
    change = MemslotChange("create", 1, base_gfn=1, hva=hva)
    return World(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design_, gfns=(1,))),
            ActorSpec("qemu", functools.partial(kvm_set_user_memory_region, design=design_, change=change)),
            ActorSpec("balloon", functools.partial(madvise_dontneed, start=hva, end=hva + PAGE_SIZE)),
        ),
    )


async def test_a_memslot_created_under_an_invalidation_waits_for_its_end() -> None:
    """The start found no memslot and counted nothing in in_progress: a slot published
    before the end makes the end take away what the start never added (the kernel's
    ``KVM_BUG_ON(kvm->mmu_invalidate_in_progress < 0)``)."""
    proof = await explore(Config(CREATE, "memslot_retry", executor=Executor.DIRECT), preemptions=2)
    assert proof.verdict is Verdict.EXHAUSTED, proof.result
    found = await explore(Config(CREATE, "memslot_no_wait", executor=Executor.DIRECT), preemptions=2)
    assert found.result is not None and found.result.finding is not None
    finding = found.result.finding
    assert finding.oracle == "crash" and finding.message.endswith("(in_progress < 0)"), finding


CREATE = Scenario("memslot_create", "a memslot created under an invalidation", "", _create_while_invalidating)
