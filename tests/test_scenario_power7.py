"""POWER7's HPT family: no mmu_lock on the fault path, lock bits and a lockless retry check.

``power7_hpt`` and ``always_write`` must survive every schedule of the
headline race; a variant that drops either read of ``mmu_notifier_retry``,
or whose invalidation zaps nothing, must be caught; ``power7_abba``, whose
``kvm_unmap_rmapp`` waits for the HPTE lock holding the rmap lock, must be
reported by lockdep. Two worlds of this file's own reach the paths the
catalog scenarios do not: two vcpus faulting on one HPTE ("HPTE has been
changed under us") and a write fault on a read-only HPTE that holds the HPTE
lock while an invalidation walks its rmap chain (``try_lock_hpte`` fails and
the unmap backs off).
"""

from __future__ import annotations

import functools

import attrs
import pytest

from actors import (
    DESIGNS,
    ActorContext,
    ActorSpec,
    Design,
    Executor,
    RunResult,
    World,
    kvm_init_mmu_notifier,
    remapper,
    vcpu,
)
from actors.host import madvise_dontneed
from mmu import PAGE_SIZE, Model
from mmurace import Config, RandomWalk, Replay
from mmurace.testing import assert_no_race, assert_race
from scenarios import CATALOG, Scenario

RACE = CATALOG["race_remap"]


def events(result: RunResult) -> list[str]:
    return [e for s in result.steps for e in s.events]


def first_run_with(scenario: Scenario, design: str, event: str, seeds: int = 300) -> RunResult:
    """The first random walk whose trace says ``event``; every walk up to it must pass."""
    config = Config(scenario, design, executor=Executor.DIRECT)
    for seed in range(seeds):
        result = config.run_direct(RandomWalk(seed))
        assert result.finding is None, f"seed {seed}: {result.finding}"
        if any(event in e for e in events(result)):
            assert config.run_direct(Replay(result.schedule)) == result
            return result
    raise AssertionError(f"no {event!r} in {seeds} seeds")


# ---- the merged family on the headline race ----


@pytest.mark.parametrize(
    ("params", "bound"), [({}, None), ({"move": 1}, None), ({"remaps": 2}, 3)], ids=["mmap", "mremap", "two_remaps"]
)
@pytest.mark.parametrize("design", ["power7_hpt", "always_write"])
def test_the_merged_family_survives_every_schedule_of_race_remap(
    design: str, params: dict[str, int], bound: int | None
) -> None:
    """Every schedule of one remap; two remaps for three preemptions (148 executions,
    where the unbounded proof takes some 20 s of the suite's time)."""
    assert_no_race("race_remap", design, params=params, preemptions=bound)


def test_the_fault_path_and_h_enter_never_take_mmu_lock() -> None:
    config = Config(RACE, "power7_hpt", executor=Executor.DIRECT)
    for seed in range(50):
        result = config.run_direct(RandomWalk(seed))
        assert result.finding is None
        assert not [s.label for s in result.steps if s.actor == "vcpu0" and "mmu_lock" in s.label]
        qemu = [s.label for s in result.steps if s.actor == "qemu"]
        assert "mmu_lock: invalidate_begin, unmap, flush" in qemu and "kvm_unmap_rmapp: lock_rmap" in qemu


async def _forgets_seq(design: Design, ctx: ActorContext, gfn: int, mmu_seq: int) -> bool:
    return ctx.model.hpt.retry_in_progress(gfn, ctx.name)


async def _forgets_count(design: Design, ctx: ActorContext, gfn: int, mmu_seq: int) -> bool:
    return ctx.model.hpt.retry_seq(gfn, mmu_seq, ctx.name)


async def _zaps_nothing(design: Design, ctx: ActorContext, gfn: int) -> int:
    return 0


FORGETS_SEQ = DESIGNS["power7_hpt"].replace(notifier_retry=_forgets_seq, name="forgets_seq")
FORGETS_COUNT = DESIGNS["power7_hpt"].replace(notifier_retry=_forgets_count, name="forgets_count")
ZAPS_NOTHING = DESIGNS["power7_hpt"].replace(unmap_rmapp=_zaps_nothing, name="zaps_nothing")


@pytest.mark.parametrize(
    ("variant", "preemptions"), [(FORGETS_SEQ, 1), (FORGETS_COUNT, 2), (ZAPS_NOTHING, 0)], ids=["seq", "count", "zap"]
)
def test_a_broken_check_or_zap_leaves_a_stale_hpte(variant: Design, preemptions: int) -> None:
    """The count alone misses an invalidation that ended after the snapshot; seq alone misses
    one whose zap ran before H_ENTER or the fault took the rmap lock and whose end has not
    come yet; without the rmap walk nothing is zapped at all. (Judged by stale_spte alone:
    with gup-fast, forgets_seq's first race is a divergence a step before the free.)"""
    race = assert_race("race_remap", variant, oracle="stale_spte", oracles=("stale_spte",))
    assert race.preemptions == preemptions


async def _seq_first(design: Design, ctx: ActorContext, gfn: int, mmu_seq: int) -> bool:
    hpt = ctx.model.hpt
    if hpt.retry_seq(gfn, mmu_seq, ctx.name):
        return True
    await ctx.point("mmu_notifier_retry: the count after seq")
    return hpt.retry_in_progress(gfn, ctx.name)


async def _drop_count_first(design: Design, ctx: ActorContext, start: int, end: int) -> None:
    kvm = ctx.model.kvm
    await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: in_progress--")
    await design.drop_count(ctx, start, end)
    ctx.spin_unlock(kvm.mmu_lock)
    await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: seq++")
    await design.bump_seq(ctx, start, end)
    ctx.spin_unlock(kvm.mmu_lock)


SEQ_FIRST = DESIGNS["power7_hpt"].replace(notifier_retry=_seq_first, name="seq_first")
DROP_COUNT_FIRST = DESIGNS["power7_hpt"].replace(invalidate_range_end=_drop_count_first, name="drop_count_first")


@pytest.mark.parametrize("variant", [SEQ_FIRST, DROP_COUNT_FIRST], ids=["reader", "writer"])
def test_the_lockless_check_needs_r3_on_both_sides(variant: Design) -> None:
    """R3 in program order: with the check under the rmap lock alone, an end landing between
    its two reads is seen only if the count is read first and end bumps seq first. The fault
    holds its gup-fast reference until put_page(pages[0]), so the page is not yet freed when
    the HPTE goes in: the check passes on a page the host no longer maps (divergence)."""
    race = assert_race("race_remap", variant, oracle="divergence")
    fatal = race.result.steps[race.finding.step]
    assert fatal.actor == "vcpu0" and fatal.label.startswith("mmu_notifier_retry: ")
    assert "HPTE gfn 0x0 -> pfn 0x100 W valid" in fatal.events, "the check passed on a remapped page"


def test_h_enter_writes_an_absent_hpte_when_the_check_says_retry() -> None:
    """kvmppc_h_enter found the pte before the invalidation and the check sees it in
    progress: the HPTE goes in absent, and the guest's next access fills it through
    kvmppc_book3s_hv_page_fault with the new page."""
    result = first_run_with(RACE, "power7_hpt", "inval in progress, write a non-present HPTE")
    said = events(result)
    absent = said.index("HPTE gfn 0x0 absent (HPTE_V_ABSENT)")
    assert said.index("inval in progress, write a non-present HPTE") < absent
    labels = [(s.actor, s.label) for s in result.steps]
    assert ("vcpu0", "kvmppc_book3s_hv_page_fault") in labels
    assert "HPTE gfn 0x0 -> pfn 0x101 W valid" in said[absent:]


def test_power7_abba_is_reported_by_lockdep_on_the_headline_race() -> None:
    race = assert_race("race_remap", "power7_abba", oracle="lock_order")
    assert race.preemptions == 0
    assert race.finding.message.startswith(
        "qemu takes HPTE_V_HVLOCK while holding KVMPPC_RMAP_LOCK_BIT, but KVMPPC_RMAP_LOCK_BIT was taken"
        " while holding HPTE_V_HVLOCK at step"
    )
    assert race.finding.message.endswith("(vcpu0): possible ABBA deadlock")


# ---- two vcpus on one HPTE ----


def _two_vcpus(design: Design | str) -> World:
    """vcpu0 and vcpu1 write gfn 0 while QEMU remaps it once."""
    model = Model.build(npages=1)
    design = kvm_init_mmu_notifier(model, design)
    hva = model.kvm.memslot.gfn_to_hva(0)
    return World(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(0,))),
            ActorSpec("vcpu1", functools.partial(vcpu, design=design, gfns=(0,))),
            ActorSpec("qemu", functools.partial(remapper, hva=hva, times=1)),
        ),
    )


TWO_VCPUS = Scenario("two_vcpus", "two vcpus fault on one HPTE", "-", _two_vcpus, designs=("power7_hpt",))


def test_a_fault_that_finds_its_hpte_changed_lets_the_guest_retry() -> None:
    result = first_run_with(TWO_VCPUS, "power7_hpt", "HPTE has been changed under us; let the guest retry")
    step = next(s for s in result.steps if "HPTE has been changed under us; let the guest retry" in s.events)
    assert step.label == "kvmppc_book3s_hv_page_fault: lock HPTE"
    rest = [(s.actor, s.label) for s in result.steps[step.index + 1 :] if s.actor == step.actor]
    assert rest[:2] == [(step.actor, "put_page(pages[0])"), (step.actor, "guest write gfn 0x0")]


def test_the_second_h_enter_finds_the_slot_taken() -> None:
    first_run_with(TWO_VCPUS, "power7_hpt", "the slot is in use: H_PTEG_FULL")


def test_two_vcpus_survive_every_schedule_within_two_preemptions() -> None:
    assert_no_race(TWO_VCPUS, "power7_hpt", preemptions=2)


# ---- an invalidation meets a fault that holds a valid HPTE's lock ----


def _write_to_read_only_hpte(design: Design | str) -> World:
    """gfn 0's pte is read-only in a writable VMA (after mprotect(PROT_READ) and back) and
    its HPTE valid and read-only; the guest writes it while QEMU discards it."""
    model = Model.build(npages=1)
    design = kvm_init_mmu_notifier(model, design)
    mm, hpt = model.mm, model.hpt
    hva = model.kvm.memslot.gfn_to_hva(0)
    mm.mmap_lock.acquire("setup", write=True)
    mm.wrprotect_pte(hva, "setup")
    mm.mmap_lock.release("setup", write=True)
    for lock in (hpt.hpte_lock(0), hpt.rmap_lock(0)):
        lock.acquire("setup")
    hpt.enter_hpte(0, mm.ptes[hva].pfn, False, "setup")
    for lock in (hpt.rmap_lock(0), hpt.hpte_lock(0)):
        lock.release("setup")
    model.log.clear()
    model.fp.clear()
    return World(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(0,))),
            ActorSpec("qemu", functools.partial(madvise_dontneed, start=hva, end=hva + PAGE_SIZE)),
        ),
    )


READ_ONLY_HPTE = Scenario(
    "read_only_hpte", "a write fault on a read-only HPTE", "-", _write_to_read_only_hpte,
    designs=("power7_hpt", "power7_abba"),
)


def test_the_unmap_lets_the_rmap_lock_go_when_the_hpte_lock_is_taken() -> None:
    """"To avoid an ABBA deadlock with the HPTE lock bit, we can't spin on the HPTE lock while
    holding the rmap chain lock": the fault holds the HPTE (lock_rmap next), the unmap holds
    the rmap lock, fails try_lock_hpte, drops the rmap lock and spins."""
    result = first_run_with(READ_ONLY_HPTE, "power7_hpt", "try_lock_hpte failed")
    labels = [(s.actor, s.label) for s in result.steps]
    backed_off = labels.index(("qemu", "kvm_unmap_rmapp: lock_rmap"))
    assert labels[backed_off + 1 :].index(("qemu", "kvm_unmap_rmapp: spin on HPTE_V_HVLOCK")) >= 0
    assert ("vcpu0", "lock_rmap: mmu_notifier_retry") in labels[backed_off:]


def test_the_back_off_survives_every_schedule_and_waiting_instead_is_reported() -> None:
    assert_no_race(READ_ONLY_HPTE, "power7_hpt")
    race = assert_race(READ_ONLY_HPTE, "power7_abba", oracle="lock_order")
    assert "KVMPPC_RMAP_LOCK_BIT was taken while holding HPTE_V_HVLOCK" in race.finding.message


def _without_lockdep(scenario: Scenario) -> Scenario:
    """``scenario`` on a kernel built without CONFIG_PROVE_LOCKING: a lock bug is a finding
    only if a schedule hangs on it."""

    def build(design: Design | str, **params: int) -> World:
        world = scenario.build(design, **params)
        world.lockdep = False
        return world

    return attrs.evolve(scenario, build=build)


def test_without_lockdep_power7_abba_hangs_and_the_back_off_does_not() -> None:
    """The fault holds the HPTE lock and waits for the rmap lock, which the unmap holds
    while it waits for the HPTE lock: the ABBA lockdep warns of, as a real hang."""
    no_lockdep = _without_lockdep(READ_ONLY_HPTE)
    race = assert_race(no_lockdep, "power7_abba", oracle="deadlock")
    assert race.finding.message == (
        "deadlock: nobody can run; vcpu0 waits for rmap[0x0] (held by qemu);"
        " qemu waits for hpte[0x0] (held by vcpu0)"
    )
    assert_no_race(no_lockdep, "power7_hpt")
