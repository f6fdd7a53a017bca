"""TLBs apart from sptes: a zap without its flush leaves a usable stale translation.

Each broken variant of today's KVM forgets one of KVM's flushes and is caught
by the oracle that judges what the stale entry lets the guest do; today's KVM
(and the x86-style dirty-log design) survives the same searches
(docs/model.md 1.3, R4, 3.12, 5.1).

Bounds: ``no_flush`` is found with no preemption on race_remap, mprotect_ro,
ksm_merge and migrate_page; ``yield_no_flush`` within one preemption in two
invalidations of one page (``_two_invalidations``), where seq_retry is
exhausted for two preemptions (about 1500 runs); the dirty-log designs without
``flush_memslot`` within one preemption (wp_readonly's exhaustive search is in
tests/test_scenario_dirty_log.py).
"""

from __future__ import annotations

import functools

import pytest

from actors import DESIGNS, ActorContext, ActorSpec, Design, Executor, World, kvm_init_mmu_notifier, vcpu
from actors.host import madvise_dontneed, migrate_page
from mmu import PAGE_SIZE, Model
from mmurace import Config, RandomWalk, Replay
from mmurace.explore import Verdict, explore
from mmurace.report import render_run
from scenarios import CATALOG, Scenario


async def _no_flush(design: Design, ctx: ActorContext, start: int, end: int, zapped: int) -> None:
    """Zap, then forget ``kvm_flush_remote_tlbs``."""


async def _yield_without_flush(design: Design, ctx: ActorContext) -> None:
    """``cond_resched_rwlock_write`` with the zapped leaves still in the TLBs (before a835429cda91)."""
    kvm = ctx.model.kvm
    ctx.spin_unlock(kvm.mmu_lock)
    await ctx.spin_lock(kvm.mmu_lock, "cond_resched_rwlock_write(mmu_lock)")


async def _no_memslot_flush(design: Design, ctx: ActorContext) -> None:
    """Write-protect for dirty logging, then forget ``kvm_flush_remote_tlbs_memslot``."""


NO_FLUSH = DESIGNS["seq_retry"].replace(flush=_no_flush, name="no_flush")
YIELD_NO_FLUSH = DESIGNS["seq_retry"].replace(cond_resched=_yield_without_flush, name="yield_no_flush")


def config(scenario: str | Scenario, design: Design | str, **params: int) -> Config:
    sc = CATALOG[scenario] if isinstance(scenario, str) else scenario
    return Config(sc, design, params=tuple(params.items()), executor=Executor.DIRECT)


# ---- the notifier's flush (R4) ----


@pytest.mark.parametrize(
    ("scenario", "oracle"),
    [
        ("race_remap", "stale_spte"),  # the freed page stays in vcpu0's TLB
        ("mprotect_ro", "writable_spte"),  # a writable entry over the read-only pte
        ("ksm_merge", "writable_spte"),  # ... over the KSM page
        ("migrate_page", "divergence"),  # the guest stays on the old frame
    ],
)
async def test_a_zap_without_its_flush_is_caught_with_no_preemption(scenario: str, oracle: str) -> None:
    search = await explore(config(scenario, NO_FLUSH), preemptions=0)
    assert search.verdict is Verdict.FOUND and search.result is not None and search.result.finding is not None
    assert search.result.finding.oracle == oracle
    assert search.result.finding.message.startswith("vcpu0 TLB entry gfn 0x")
    assert "(its leaf is gone: zapped, not flushed)" in search.result.finding.message


async def test_the_race_remap_trace_shows_the_stale_entry_outliving_its_leaf() -> None:
    cfg = config("race_remap", NO_FLUSH)
    search = await explore(cfg, preemptions=0)
    assert search.result is not None and search.result.finding is not None
    steps = search.result.steps
    cached = max(i for i, s in enumerate(steps) if s.actor == "vcpu0" and "through TLB -> pfn 0x100" in s.events)
    zap = next(i for i, s in enumerate(steps) if "zap spte gfn 0x0 -> pfn 0x100" in s.events)
    fatal = search.result.finding.step
    assert cached < zap < fatal and steps[fatal].label == "tlb_flush_mmu: put_page"
    assert not any("KVM_REQ_TLB_FLUSH" in e for s in steps for e in s.events), "nobody flushed"
    again = await cfg.run(Replay(search.result.schedule))
    assert render_run(cfg, again, threads=True) == render_run(cfg, search.result, threads=True)


async def test_seq_retry_flushes_what_its_zap_took_away() -> None:
    """The same schedule on today's KVM: the zap's section flushes vcpu0's entry."""
    broken = await explore(config("race_remap", NO_FLUSH), preemptions=0)
    assert broken.result is not None
    result = await config("race_remap", "seq_retry").run(Replay(broken.result.schedule))
    assert result.finding is None
    zap = next(s for s in result.steps if "zap spte gfn 0x0 -> pfn 0x100" in s.events)
    assert "kvm_flush_remote_tlbs: KVM_REQ_TLB_FLUSH, acked by vcpu0 (gfn 0x0)" in zap.events


# ---- cond_resched: flush before dropping mmu_lock (a835429cda91) ----


def _two_invalidations(design: Design | str) -> World:
    """QEMU discards both guest pages while kcompactd migrates the first: QEMU's zap
    yields mmu_lock between its two leaves, and kcompactd's start finds nothing left
    to zap in its range, so flushes nothing, and frees the old page."""
    model = Model.build(npages=2)
    design = kvm_init_mmu_notifier(model, design)
    page0, page1 = (model.kvm.memslot.gfn_to_hva(g) for g in (0, 1))

    async def qemu(ctx: ActorContext) -> None:
        await madvise_dontneed(ctx, page0, page1 + PAGE_SIZE)

    async def kcompactd(ctx: ActorContext) -> None:
        await migrate_page(ctx, page0)

    return World(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(0, 1))),
            ActorSpec("qemu", qemu),
            ActorSpec("kcompactd", kcompactd),
        ),
    )


TWO_INVALIDATIONS = Scenario(
    "two_invalidations", "two host threads invalidate one page", "a835429cda91", _two_invalidations
)


async def test_a_zap_that_yields_without_flushing_is_caught() -> None:
    search = await explore(config(TWO_INVALIDATIONS, YIELD_NO_FLUSH), preemptions=1)
    assert search.verdict is Verdict.FOUND and search.result is not None and search.result.finding is not None
    assert search.result.finding.oracle == "stale_spte"
    assert search.result.finding.message.startswith("vcpu0 TLB entry gfn 0x0 -> pfn 0x100 (its leaf is gone")
    labels = [(s.actor, s.label) for s in search.result.steps]
    yielded = labels.index(("qemu", "mmu_lock: invalidate_begin, unmap, flush"))
    empty = labels.index(("kcompactd", "mmu_lock: invalidate_begin, unmap, flush"))
    assert "no spte in range" in search.result.steps[empty].events
    fatal = search.result.finding.step
    assert yielded < empty < fatal and search.result.steps[fatal].label == "migrate_folio_done: folio_put(src)"
    assert ("qemu", "cond_resched_rwlock_write(mmu_lock)") not in labels, "qemu still waits to retake mmu_lock"


async def test_seq_retry_flushes_before_it_yields_and_survives_two_invalidations() -> None:
    search = await explore(config(TWO_INVALIDATIONS, "seq_retry"), preemptions=2)
    assert search.verdict is Verdict.EXHAUSTED and search.result is None
    broken = await explore(config(TWO_INVALIDATIONS, YIELD_NO_FLUSH), preemptions=1)
    assert broken.result is not None
    result = await config(TWO_INVALIDATIONS, "seq_retry").run(Replay(broken.result.schedule))
    assert result.finding is None
    zap = next(s for s in result.steps if s.actor == "qemu" and s.label.startswith("mmu_lock: invalidate_begin"))
    assert zap.events[1:] == (
        "zap spte gfn 0x0 -> pfn 0x100",
        "kvm_flush_remote_tlbs: KVM_REQ_TLB_FLUSH, acked by vcpu0 (gfn 0x0, gfn 0x1)",
    ), "the zap flushed what it zapped before it yielded mmu_lock"


# ---- the dirty-log ioctls' flush after mmu_unlock (3.12) ----


@pytest.mark.parametrize("design", ["wp_readonly", "wp_zap_refault"])
async def test_dirty_logging_without_the_memslot_flush_loses_a_write(design: str) -> None:
    broken = DESIGNS[design].replace(flush_memslot=_no_memslot_flush)
    search = await explore(config("dirty_log", broken), preemptions=1)
    assert search.verdict is Verdict.FOUND and search.result is not None and search.result.finding is not None
    assert search.result.finding.oracle == "lost_dirty"
    steps = search.result.steps
    protected = next(i for i, s in enumerate(steps) if s.label.startswith("kvm_mmu_slot_apply_flags"))
    assert any(s.actor == "vcpu0" and "through TLB -> pfn 0x100" in s.events for s in steps[protected:])


async def test_a_write_through_a_stale_entry_before_the_flush_is_not_lost() -> None:
    """The window is real: some run writes through the writable entry a harvest has
    write-protected but not yet flushed; QEMU sends that page after the ioctl, so
    nothing is lost."""
    for seed in range(100):
        result = await config("dirty_log", "wp_readonly").run(RandomWalk(seed))
        assert result.finding is None
        labels = [s.label for s in result.steps]
        for i, step in enumerate(result.steps):
            if "write-protect spte gfn 0x0 -> pfn 0x100" not in step.events:
                continue
            flush = labels.index("kvm_flush_remote_tlbs_memslot", i) if step.label.startswith("kvm_mmu") else (
                labels.index("kvm_flush_remote_tlbs_memslot, copy_to_user", i)
            )
            if any("through TLB -> pfn 0x100" in s.events for s in result.steps[i + 1 : flush]):
                return
    pytest.fail("no run of 100 wrote through a write-protected page's stale entry before the flush")
