"""A user's view: designs, scenarios and oracles of one's own, with public names only.

Everything here is written as a kernel developer would write it outside the
project: imports from ``actors``, ``mmu``, ``scenarios``, ``mmurace`` and
``mmurace.testing`` only, no footprint keys, no private helpers.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from actors import DESIGNS, ActorContext, Design, Fault, SeqRetry
from actors.host import get_user_page_fast_only, get_user_pages
from mmurace.cli import main
from mmurace.testing import assert_no_race, assert_race, find_race
from scenarios import CATALOG

ROOT = Path(__file__).resolve().parent.parent

# ---- three variants of one step each, in a few lines ----


async def _in_progress_only(design: Design, ctx: ActorContext, f: Fault) -> bool:
    return ctx.model.kvm.check_in_progress(ctx.name)  # forgets that seq remembers a finished invalidation


IN_PROGRESS_ONLY = DESIGNS["seq_retry"].replace(recheck=_in_progress_only, name="in_progress_only")


async def _zap_nothing(design: Design, ctx: ActorContext, start: int, end: int) -> int:
    return 0  # invalidate_range_start counts the invalidation but leaves the leaves


ZAP_NOTHING = DESIGNS["seq_retry"].replace(zap=_zap_nothing, name="zap_nothing")


class LateSnapshot(SeqRetry):
    """The seq snapshot moved after get_user_pages, as a step of its own: R1's counter-example.
    (Without the point, the read would run inside gup's step, where no invalidation can land.)"""

    async def snapshot(self, ctx: ActorContext, f: Fault) -> None:
        pass

    async def resolve(self, ctx: ActorContext, f: Fault) -> bool:
        got = await SeqRetry.resolve(self, ctx, f)
        await ctx.point("mmu_seq = mmu_invalidate_seq")
        f.mmu_seq = ctx.model.kvm.snapshot_seq()
        return got


LATE_SNAPSHOT = LateSnapshot("late_snapshot", "seq snapshot after gup", base="seq_retry")


@pytest.mark.parametrize("variant", [IN_PROGRESS_ONLY, ZAP_NOTHING, LATE_SNAPSHOT], ids=lambda d: d.name)
def test_a_one_step_variant_is_caught(variant: Design) -> None:
    race = assert_race("race_remap", variant)
    assert race.oracle in {"stale_spte", "divergence", "corruption"}
    assert race.preemptions <= 3


def test_the_design_they_vary_survives_every_schedule() -> None:
    assert_no_race("race_remap", DESIGNS["seq_retry"])
    assert_no_race("race_remap", "seq_retry", params={"remaps": 2})


async def test_the_helpers_work_inside_a_trio_test_too() -> None:
    assert_no_race("mprotect_ro", "seq_retry")
    assert find_race("mprotect_ro", "no_retry", strategy="random", schedules=200) is not None


def test_a_failing_helper_shows_the_drawn_race_and_its_replay_command() -> None:
    with pytest.raises(AssertionError) as failure:
        assert_no_race("race_remap", IN_PROGRESS_ONLY)
    message = str(failure.value)
    assert "VIOLATION" in message and ">>" in message
    assert "replay:   mmurace replay race_remap --design tests/test_user_api.py:in_progress_only --schedule v1:" in message


def test_the_replay_command_printed_for_a_test_design_runs(capsys: pytest.CaptureFixture[str]) -> None:
    race = assert_race("race_remap", IN_PROGRESS_ONLY)
    argv = race.replay.split()[1:]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert race.drawn().splitlines()[2:] == out.splitlines()[2:]


def test_replace_says_what_is_wrong() -> None:
    seq_retry = DESIGNS["seq_retry"]

    async def recheck(design: Design, ctx: ActorContext) -> bool:
        return False

    def sync(design: Design, ctx: ActorContext, f: Fault) -> bool:
        return False

    with pytest.raises(TypeError, match=r"^'rechek' is not a step of SeqRetry \(its steps: prepare, fault, "):
        seq_retry.replace(rechek=recheck)
    with pytest.raises(TypeError, match=r"^step 'recheck' must take \(self, ctx, f\), as SeqRetry.recheck does"):
        seq_retry.replace(recheck=recheck)
    with pytest.raises(TypeError, match=r"^step 'recheck' must be an async function"):
        seq_retry.replace(recheck=sync)


# ---- a design written from scratch is explored as completely as the catalog's ----


class ScratchSeqRetry(Design):
    """seq_retry written with public model operations only."""

    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        kvm = ctx.model.kvm
        waits = False
        for _ in itertools.count():
            await ctx.point("kvm_faultin_pfn", guard=(lambda: kvm.in_progress == 0) if waits else None)
            mmu_seq = kvm.snapshot_seq()
            hva = kvm.memslot.gfn_to_hva(gfn)
            fast = await get_user_page_fast_only(ctx, hva, True)
            got = (fast, True) if fast is not None else await get_user_pages(ctx, hva, write)
            if got is None:
                return False
            await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: recheck, map")
            stale = kvm.check_in_progress(ctx.name) | kvm.check_seq(mmu_seq, ctx.name)
            if not stale:
                kvm.install_spte(gfn, got[0], got[1], ctx.name)
            ctx.spin_unlock(kvm.mmu_lock)
            await ctx.point("kvm_release_pfn_clean")
            ctx.model.frames.put_page(got[0])
            if not stale:
                return True
            waits = kvm.in_progress != 0
        raise AssertionError("unreachable")


SCRATCH = ScratchSeqRetry("scratch", "seq_retry from scratch", base="seq_retry")


@pytest.mark.parametrize("scenario", ["race_remap", "mprotect_ro", "migrate_page"])
def test_a_design_from_scratch_is_explored_like_the_catalog_one(scenario: str, capsys: pytest.CaptureFixture[str]) -> None:
    def runs(design: str, *how: str) -> str:
        assert main(["explore", scenario, "--design", design, *how]) == 0
        return capsys.readouterr().out.split(": ", 1)[1]

    assert runs("tests/test_user_api.py:scratch", "--stateless") == runs("seq_retry", "--stateless")
    # stateful, the two designs' frames differ (other code, other locals): the states do, not the proof
    assert runs("tests/test_user_api.py:scratch").startswith("exhausted")


# ---- files: bad ones are one line and exit 2 ----

BAD_FILES = {
    "unknown design in a scenario": (
        """
        from scenarios import CATALOG, Scenario
        SCENARIO = Scenario("mine", "m", "m", CATALOG["race_remap"].build, ("seq_retry", "nope"))
        """,
        "scenario 'mine' names design(s) 'nope' that neither the catalog nor the file defines",
    ),
    "build raises": (
        """
        from scenarios import Scenario
        def build(design):
            raise RuntimeError("no memory")
        SCENARIO = Scenario("mine", "m", "m", build, ("seq_retry",))
        """,
        "scenario 'mine': build() raised RuntimeError: no memory",
    ),
    "build returns the wrong type": (
        """
        from scenarios import Scenario
        SCENARIO = Scenario("mine", "m", "m", lambda design: 42, ("seq_retry",))
        """,
        "scenario 'mine': build() returned int, not a World",
    ),
    "a design without a fault step": (
        """
        from actors import Design
        class Nothing(Design):
            pass
        NOTHING = Nothing("nothing", "does nothing")
        """,
        "design 'nothing' has no fault step (define async def fault(self, ctx, gfn, write))",
    ),
    "a step with the wrong arguments": (
        """
        from actors import SeqRetry
        class Mine(SeqRetry):
            async def recheck(self, ctx):
                return False
        MINE = Mine("mine", "m")
        """,
        "design 'mine': step 'recheck' must take (self, ctx, f), as SeqRetry.recheck does (got 2 arguments)",
    ),
    "a step that is not async": (
        """
        from actors import SeqRetry
        class Mine(SeqRetry):
            def unlock(self, ctx, f):
                pass
        MINE = Mine("mine", "m")
        """,
        "design 'mine': step 'unlock' must be an async function",
    ),
    "an oracle with a bad signature": (
        """
        from actors import DESIGNS
        MINE = DESIGNS["seq_retry"].replace(name="mine")
        def two(model, other):
            return None
        ORACLES = {"two": two}
        """,
        "oracle 'two' must take one argument, the model (it takes (model, other))",
    ),
    "a replace naming no step": (
        """
        from actors import DESIGNS
        async def f(design, ctx, fault):
            return False
        MINE = DESIGNS["seq_retry"].replace(rechek=f)
        """,
        "does not load: TypeError: 'rechek' is not a step of SeqRetry",
    ),
    "a catalog name taken": (
        """
        from actors import DESIGNS
        MINE = DESIGNS["no_retry"].replace(name="seq_retry")
        """,
        "design 'seq_retry' has the name of a catalog design; rename it",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, message = BAD_FILES[case]
    path = tmp_path / f"{case.replace(' ', '_')}.py"
    path.write_text(textwrap.dedent(source))
    defines_scenario = "SCENARIO" in source
    argv = ["run", str(path), "--design", "seq_retry"] if defines_scenario else ["run", "race_remap", "--design", str(path)]
    status = main(argv)
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("mmurace: error: ")
    assert message in err


def test_a_design_only_file_run_as_a_scenario_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "examples/in_progress_only.py"]) == 2
    assert capsys.readouterr().err == (
        "mmurace: error: examples/in_progress_only.py defines designs but no scenario: run one of its designs"
        " on a catalog scenario, e.g. mmurace run race_remap --design examples/in_progress_only.py:in_progress_only\n"
    )


# ---- schedule strings know what they were recorded for ----


def _broken_cells() -> list[tuple[str, str, str]]:
    """(scenario, design, schedule) of one race per broken catalog cell, found by a short search."""
    cells = []
    for scenario, sc in CATALOG.items():
        for design in sc.designs:
            race = find_race(scenario, design, strategy="pct", schedules=300)
            if race is not None:
                cells.append((scenario, design, race.schedule))
    return cells


def test_a_schedule_pasted_against_another_configuration_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    cells = _broken_cells()
    assert len(cells) >= 10
    pasted = 0
    for (scenario, design, schedule), (other, other_design, _) in itertools.product(cells, cells):
        if (scenario, design) == (other, other_design):
            continue
        pasted += 1
        assert main(["replay", other, "--design", other_design, "--schedule", schedule]) == 2
        err = capsys.readouterr().err
        assert "was recorded for another scenario, design, parameters or memory model" in err, (scenario, design, other, other_design)
    assert pasted >= 90
    scenario, design, schedule = cells[0]
    assert main(["replay", scenario, "--design", design, "--schedule", schedule]) == 1
    assert main(["replay", scenario, "--design", design, "-p", "accesses=5", "--schedule", schedule]) == 2
    assert "recorded for another" in capsys.readouterr().err


def test_a_file_scenario_replays_byte_for_byte_with_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "examples/virtio_mem.py", "--design", "no_retry", "-p", "accesses=1", "--oracle", "stale_spte",
            "--threads"]
    assert main(argv) == 1
    first = capsys.readouterr().out
    replay = next(line for line in first.splitlines() if line.startswith("replay:"))
    assert "-p accesses=1 --oracle stale_spte --threads --schedule v1:" in replay
    assert main(replay.split()[2:]) == 1
    again = capsys.readouterr().out
    assert first.startswith(again)  # the hunt adds only its "found by seed" line


def test_a_file_with_its_own_scenario_and_design_tells_the_story(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "both.py"
    path.write_text(textwrap.dedent(
        """
        from actors import DESIGNS
        from scenarios import CATALOG, Scenario

        async def no_recheck(design, ctx, f):
            return False

        BLIND = DESIGNS["seq_retry"].replace(recheck=no_recheck, name="blind")
        SCENARIO = Scenario("remap_again", "race_remap, mine", "why", CATALOG["race_remap"].build, ("seq_retry", "blind"))
        """
    ))
    assert main(["run", str(path), "--seeds", "1000"]) == 1
    out = capsys.readouterr().out
    assert "== seq_retry:" in out and "survived 1000 schedules" in out
    assert "== blind: seq_retry with recheck replaced" in out
    assert f"mmurace replay {path} --design blind --schedule v1:" in out
    assert main(["shrink", str(path), "--design", "blind", "--schedule", out.split("--schedule ")[-1].split()[0]]) == 1
