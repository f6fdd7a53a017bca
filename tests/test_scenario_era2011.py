"""A 2011 host (v3.1-v3.5): KSM, COW and migration report through change_pte and
invalidate_page, with no start/end, and KVM's callbacks are steps of the design.

Bounds (random walks, direct executor): seq_retry and its PPC HV variant
survive 300 seeds of ksm_merge_2011 and migrate_page_2011 (the matrix proves
them for two preemptions and unbounded); KVM's callbacks as v6.10 has them
(none per page) are caught on both within 100 seeds.
"""

from __future__ import annotations

import attrs
import pytest

from actors import DESIGNS, ActorContext, ActorSpec, Design, Executor, RunResult, World, ppc_hv_set_spte_hva
from actors.host import (
    change_pte,
    get_user_pages,
    ksm_merge,
    migrate_page,
    mmu_notifier_register,
)
from mmu import ORACLES, Era, HostPte, Model
from mmurace import Config, RandomWalk, Replay, hunt
from mmurace.cli import main
from scenarios import CATALOG
from tests.hunting import run

SEQ_RETRY = DESIGNS["seq_retry"]
KSM_2011, MIGRATE_2011 = CATALOG["ksm_merge_2011"], CATALOG["migrate_page_2011"]
HVA0, HVA1 = 0x40000000, 0x40001000


def events(result: RunResult, label: str | None = None) -> list[str]:
    return [e for s in result.steps if label is None or s.label == label for e in s.events]


# ---- the chain: who is called back, when, and under which lock ----


@attrs.define
class Recorder:
    """A subscriber that writes down what it is told and what the host looked like then."""

    calls: list[tuple[str, int, HostPte | None, HostPte | None, str | None]] = attrs.field(factory=list)

    def _note(self, ctx: ActorContext, kind: str, hva: int, pte: HostPte | None) -> None:
        mm = ctx.model.mm
        self.calls.append((kind, hva, pte, mm.ptes.get(hva), mm.ptl.owner))

    async def invalidate_range_start(self, ctx: ActorContext, start: int, end: int) -> None:
        self._note(ctx, "start", start, None)

    async def invalidate_range_end(self, ctx: ActorContext, start: int, end: int) -> None:
        self._note(ctx, "end", start, None)

    async def change_pte(self, ctx: ActorContext, hva: int, pte: HostPte) -> None:
        self._note(ctx, "change_pte", hva, pte)
        await ctx.point("recorder: change_pte")

    async def invalidate_page(self, ctx: ActorContext, hva: int) -> None:
        self._note(ctx, "invalidate_page", hva, None)
        await ctx.point("recorder: invalidate_page")


def _host_alone(era: Era, op: str, subscriber: object) -> World:
    """One host thread doing ``op`` on a model with ``subscriber`` on its chain, no KVM."""
    model = Model.build(npages=2, era=era)
    mmu_notifier_register(model.mm, subscriber)  # type: ignore[arg-type]

    async def ksmd(ctx: ActorContext) -> None:
        await ksm_merge(ctx, HVA1, HVA0)

    async def kcompactd(ctx: ActorContext) -> None:
        await migrate_page(ctx, HVA0)

    async def cow(ctx: ActorContext) -> None:  # a write to a page ksmd merged a moment ago
        await ksm_merge(ctx, HVA1, HVA0)
        got = await get_user_pages(ctx, HVA0, True)
        assert got is not None
        ctx.model.frames.put_page(got[0])

    return World(model, (ActorSpec(op, {"ksmd": ksmd, "kcompactd": kcompactd, "cow": cow}[op]),))


def test_ksm_tells_change_pte_after_each_switch_holding_the_page_table_lock() -> None:
    recorder = Recorder()
    result = run(_host_alone(Era.Y2011, "ksmd", recorder), RandomWalk(0))
    assert result.finding is None
    ro = HostPte(0x101, False)
    assert recorder.calls == [
        ("change_pte", HVA1, ro, ro, "ksmd"),  # write_protect_page(page): the KSM page to be
        ("change_pte", HVA0, HostPte(0x100, False), HostPte(0x100, False), "ksmd"),  # write_protect_page(tree_page)
        ("change_pte", HVA0, ro, ro, "ksmd"),  # replace_page: tree_page's address now maps the KSM page
    ]
    labels = [s.label for s in result.steps]
    assert "mmu_notifier_invalidate_range_start" not in labels
    assert labels.count("recorder: change_pte") == 3


def test_cow_tells_change_pte_the_new_writable_page() -> None:
    recorder = Recorder()
    result = run(_host_alone(Era.Y2011, "cow", recorder), RandomWalk(0))
    assert result.finding is None
    copy = HostPte(0x102, True)
    assert recorder.calls[-1] == ("change_pte", HVA0, copy, copy, "cow")
    assert "do_wp_page: pte_unmap_unlock, page_cache_release(old)" in [s.label for s in result.steps]


def test_migration_tells_invalidate_page_once_the_pte_is_gone_and_the_page_still_held() -> None:
    recorder = Recorder()
    world = _host_alone(Era.Y2011, "kcompactd", recorder)
    result = run(world, RandomWalk(0))
    assert result.finding is None
    assert recorder.calls == [("invalidate_page", HVA0, None, None, "kcompactd")]
    ev = events(result, "try_to_unmap_one: ptep_clear_flush_notify, migration entry")
    assert ev[-1] == "ptep_clear_flush_notify: ->invalidate_page hva 0x40000000"
    assert "migrate_folio_done: folio_put(src)" in [s.label for s in result.steps]  # it moved all the same


@pytest.mark.parametrize("op", ["ksmd", "kcompactd", "cow"])
def test_a_host_of_today_brackets_everything_and_has_no_per_page_callback(op: str) -> None:
    recorder = Recorder()
    assert run(_host_alone(Era.TODAY, op, recorder), RandomWalk(0)).finding is None
    kinds = [kind for kind, *_ in recorder.calls]
    assert kinds and set(kinds) == {"start", "end"} and kinds.count("start") == kinds.count("end")


def test_a_subscriber_without_change_pte_is_told_through_invalidate_page() -> None:
    """``__mmu_notifier_change_pte`` until v3.6: "some drivers dont have change_pte"."""

    @attrs.define
    class PageOnly:
        pages: list[int] = attrs.field(factory=list)

        async def invalidate_range_start(self, ctx: ActorContext, start: int, end: int) -> None: ...

        async def invalidate_range_end(self, ctx: ActorContext, start: int, end: int) -> None: ...

        async def invalidate_page(self, ctx: ActorContext, hva: int) -> None:
            self.pages.append(hva)

    subscriber = PageOnly()
    assert run(_host_alone(Era.Y2011, "ksmd", subscriber), RandomWalk(0)).finding is None
    assert subscriber.pages == [HVA1, HVA0, HVA0]


def test_a_host_of_today_calling_change_pte_is_a_crash() -> None:
    model = Model.build()

    async def host(ctx: ActorContext) -> None:
        await ctx.point("set_pte_at_notify")
        await change_pte(ctx, HVA0, HostPte(0x100, False), resume="after")

    result = run(World(model, (ActorSpec("ksmd", host),)), RandomWalk(0))
    assert result.finding is not None and result.finding.oracle == "crash"
    assert "a 2024 host reports no pte switch through ->change_pte" in result.finding.message


# ---- KVM's callbacks: the design's steps ----


def _hunt_events(scenario_design: tuple[str, Design], want: str, seeds: int = 200) -> list[str]:
    """The events of the first clean run whose events hold ``want``."""
    return events(_hunt(scenario_design, want, seeds))


def _hunt(scenario_design: tuple[str, Design], want: str, seeds: int = 200, *oracles: str) -> RunResult:
    """The first clean run whose events hold ``want`` (judged by ``oracles``, or all)."""
    scenario, design = scenario_design
    for seed in range(seeds):
        result = run(CATALOG[scenario].build(design), RandomWalk(seed), *oracles)
        assert result.finding is None, result.finding
        if any(want in e for e in events(result)):
            return result
    pytest.fail(f"no run of {seeds} had {want!r}")


CALLBACK = "mmu_lock: kvm_mmu_notifier_change_pte"


def test_x86_change_pte_repoints_the_leaf_read_only_to_the_ksm_page() -> None:
    repoint = "spte gfn 0x0 -> pfn 0x101 RO (was pfn 0x100"
    result = _hunt(("ksm_merge_2011", SEQ_RETRY), repoint)
    (step,) = [s for s in result.steps if any(repoint in e for e in s.events)]
    assert (step.actor, step.label) == ("ksmd", CALLBACK)  # in the host's thread
    assert step.events[0].startswith("seq ") and step.events[-1].startswith("kvm_flush_remote_tlbs: KVM_REQ_TLB_FLUSH")


def test_x86_change_pte_drops_the_leaf_under_a_writable_copy() -> None:
    result = _hunt(("ksm_merge_2011", SEQ_RETRY), "->change_pte hva 0x40000000 -> pfn 0x102 W")
    after_copy = [s for s in result.steps if s.label == CALLBACK and s.index > next(
        t.index for t in result.steps if "set_pte_at_notify: ->change_pte hva 0x40000000 -> pfn 0x102 W" in t.events
    )][0]
    assert after_copy.events[0].startswith("seq ")
    assert after_copy.events[1] in {"zap spte gfn 0x0 -> pfn 0x101", "zap spte gfn 0x0 -> pfn 0x100", "no spte in range"}


def test_ppc_hv_change_pte_only_unmaps() -> None:
    ppc = SEQ_RETRY.replace(set_spte_hva=ppc_hv_set_spte_hva, name="ppc_hv")
    ev = _hunt_events(("ksm_merge_2011", ppc), "zap spte gfn 0x0 -> pfn 0x100")
    assert "kvm_set_spte_hva (book3s_hv): kvm_handle_hva(kvm_unmap_rmapp)" in ev
    assert not any("(was pfn" in e for e in ev)


def test_ppc970_keeps_its_pinned_leaf_through_change_pte() -> None:
    """Judged without ``ksm_undone``: PPC970 pins for write even on a read fault
    (``kvmppc_get_guest_page``), so a read of a merged page undoes the merge, which
    the matrix pins; here only the pinned leaf matters."""
    want = "kvm_set_spte_hva: !using_mmu_notifiers (PPC970)"
    oracles = [name for name in ORACLES if name != "ksm_undone"]
    ev = events(_hunt(("ksm_merge_2011", DESIGNS["pin"]), want, 200, *oracles))
    assert not any(e.startswith("zap spte") or "(was pfn" in e for e in ev)


# ---- verdicts ----


@pytest.mark.parametrize("scenario", ["ksm_merge_2011", "migrate_page_2011"])
@pytest.mark.parametrize("design", [SEQ_RETRY, SEQ_RETRY.replace(set_spte_hva=ppc_hv_set_spte_hva, name="ppc_hv")],
                         ids=["x86", "ppc_hv"])
async def test_seq_retry_survives_a_2011_host(scenario: str, design: Design) -> None:
    config = Config(CATALOG[scenario], design, executor=Executor.DIRECT)
    assert (await hunt(config, range(300))).result is None


async def _nothing(design: Design, ctx: ActorContext, *args: object) -> None:
    """No such callback: ``kvm_mmu_notifier_ops`` as v6.10 has it."""


#: KVM as it is since v6.10, with no per-page callback, on a host that reports through them
KVM_TODAY = SEQ_RETRY.replace(change_pte=_nothing, invalidate_page=_nothing, name="kvm_v6_10")


@pytest.mark.parametrize(("scenario", "oracles"), [
    ("ksm_merge_2011", {"writable_spte", "divergence"}),
    ("migrate_page_2011", {"divergence", "stale_spte"}),
])
async def test_kvm_without_per_page_callbacks_is_caught_on_a_2011_host(scenario: str, oracles: set[str]) -> None:
    found = await hunt(Config(CATALOG[scenario], KVM_TODAY, executor=Executor.DIRECT), range(100))
    assert found.result is not None and found.result.finding is not None
    assert found.result.finding.oracle in oracles


async def test_kvm_without_per_page_callbacks_is_fine_on_a_host_of_today() -> None:
    for scenario in ("ksm_merge", "migrate_page"):
        assert (await hunt(Config(CATALOG[scenario], KVM_TODAY, executor=Executor.DIRECT), range(100))).result is None


@pytest.mark.parametrize("scenario", ["ksm_merge_2011", "migrate_page_2011"])
async def test_replay_gives_the_identical_run(scenario: str) -> None:
    for design in CATALOG[scenario].designs:
        config = Config(CATALOG[scenario], design, executor=Executor.DIRECT)
        for seed in range(10):
            first = await config.run(RandomWalk(seed))
            assert await config.run(Replay(first.schedule)) == first


# ---- the parameter ----


def test_the_2011_columns_are_the_era_parameter_of_their_scenario() -> None:
    for seed in range(20):
        column = run(KSM_2011.build("seq_retry"), RandomWalk(seed))
        param = run(CATALOG["ksm_merge"].build("seq_retry", reads=1, era=2011), RandomWalk(seed))
        assert column.steps == param.steps
        column = run(MIGRATE_2011.build("no_retry"), RandomWalk(seed))
        param = run(CATALOG["migrate_page"].build("no_retry", era=2011), RandomWalk(seed))
        assert column.steps == param.steps


def test_an_era_the_model_does_not_have_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "ksm_merge", "--design", "seq_retry", "-p", "era=2017", "--seeds", "1"]) == 2
    assert capsys.readouterr().err == (
        "mmurace: error: bad parameter for ksm_merge: 'era' must be 2011 (v3.1-v3.5) or 2024"
        " (v6.10 and later) (got 2017)\n"
    )


def test_reads_come_before_the_writes() -> None:
    result = run(CATALOG["ksm_merge"].build("seq_retry", reads=2), RandomWalk(0))
    guest = [s.label for s in result.steps if s.label.startswith("guest ")]
    accesses = [label for i, label in enumerate(guest) if i == 0 or guest[i - 1] != label]  # a re-try is one access
    assert accesses == [f"guest {kind} gfn {gfn:#x}" for kind in ("read", "read", "write") for gfn in (0, 1)]
    with pytest.raises(ValueError, match=r"^'reads' must be >= 0 \(got -1\)$"):
        CATALOG["ksm_merge"].build("seq_retry", reads=-1)


# ---- the page-table lock around a callback ----


async def _sleeping_change_pte(design: Design, ctx: ActorContext, hva: int, pte: HostPte) -> None:
    """A callback that takes a sleeping lock: fine inside start/end, not under the page-table lock."""
    mm = ctx.model.mm
    await ctx.down_read(mm.rmap_lock, "change_pte: anon_vma lock")
    ctx.up_read(mm.rmap_lock)
    await SEQ_RETRY.change_pte(ctx, hva, pte)


def test_a_change_pte_that_sleeps_is_reported_under_the_page_table_lock() -> None:
    sleeper = SEQ_RETRY.replace(change_pte=_sleeping_change_pte, name="sleeper")
    result = run(KSM_2011.build(sleeper), RandomWalk(0))
    assert result.finding is not None and result.finding.oracle == "sleep_in_atomic"
    assert result.finding.message == (
        "ksmd takes anon_vma->rwsem, which may sleep, while holding spinlock ptl"
    )


def _ksmd_and_a_writer() -> World:
    """ksmd merges both pages while QEMU writes them (gup(FOLL_WRITE) breaks COW on a merged
    page): two host threads whose 2011 sections meet on the same ptes, KVM listening."""
    world = KSM_2011.build(SEQ_RETRY)

    async def qemu(ctx: ActorContext) -> None:
        for hva in (HVA0, HVA1, HVA0):
            got = await get_user_pages(ctx, hva, True)
            assert got is not None
            ctx.model.frames.put_page(got[0])

    return World(world.model, (*world.actors, ActorSpec("qemu", qemu)))


def test_two_host_sections_never_share_the_page_table_lock() -> None:
    """A second section waits for the first one's callback to return (the model's SpinLock would
    raise otherwise, a crash finding); seq_retry stays safe throughout."""
    copies = 0
    for seed in range(150):
        result = run(_ksmd_and_a_writer(), RandomWalk(seed))
        assert result.finding is None, result.finding
        copies += sum(s.label == "do_wp_page: pte_same, ptep_clear_flush, set_pte_at_notify(new)"
                      for s in result.steps)
    assert copies, "no run of 150 broke COW on a merged page"
