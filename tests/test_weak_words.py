"""A design's own words in weak memory (docs/model.md 6.7): its missing barrier is found,
its barriered twin is not, and a word nobody declared is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors import Executor
from mmu import Memory
from mmurace.api import Config, configure
from mmurace.cli import main
from mmurace.explore import Verdict, explore_direct
from mmurace.strategies import RandomWalk, Replay

EXAMPLE = "examples/own_words.py"
#: the race ``explore --order bfs`` finds without the smp_wmb: busy=0 is seen, gen++ is not
NO_WMB_RACE = "v1:15:1=1,5=1,6=2,10=2,11=2,12=2"


def own(design: str, memory: Memory = Memory.WEAK) -> Config:
    return configure("race_remap", f"{EXAMPLE}:{design}", executor=Executor.DIRECT, memory=memory)


def test_without_its_wmb_the_design_maps_a_freed_page_on_its_own_words() -> None:
    config = own("own_words_no_wmb")
    found = config.run_direct(Replay(config.parse_schedule(NO_WMB_RACE)))
    assert found.finding is not None and found.finding.oracle == "stale_spte"
    labels = [(s.actor, s.label) for s in found.steps]
    late = labels.index(("memory(commit qemu busy)", "store busy=0 by qemu reaches memory"))
    check = labels.index(("vcpu0", "own check: smp_rmb(), gen"))
    assert late < check and "READ_ONCE(gen) = 0" in found.steps[check].events
    assert any("WRITE_ONCE(gen, 1)" in s.events for s in found.steps[:late])


def test_random_stress_finds_the_missing_wmb_and_not_in_the_barriered_twin() -> None:
    broken, twin = own("own_words_no_wmb"), own("own_words")
    first = next(s for s in range(2000) if broken.run_direct(RandomWalk(s)).finding is not None)
    assert first == 429
    assert all(twin.run_direct(RandomWalk(s)).finding is None for s in range(first + 1))


def test_in_sc_the_words_are_plain_and_neither_design_races() -> None:
    for design in ("own_words", "own_words_no_wmb"):
        assert explore_direct(own(design, Memory.SC), preemptions=1).verdict is Verdict.EXHAUSTED


def test_a_weak_name_that_is_no_word_of_the_design_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from typing import ClassVar\n"
        "from actors import SeqRetry\n\n"
        "class Bad(SeqRetry):\n"
        "    words: ClassVar = {'busy': 0}\n"
        "    weak: ClassVar = ('bussy',)\n\n"
        "BAD = Bad('bad', 'marks a word it does not have')\n"
    )
    assert main(["list", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("design 'bad' marks 'bussy' weak, but has no such word (its words: busy)")
    assert len(err.splitlines()) == 1


def test_reading_a_word_nobody_declared_says_which_exist() -> None:
    world = own("own_words").world()
    with pytest.raises(ValueError, match=r"^kvm has no word 'gem' \(seq, in_progress, or a design's: busy, gen\)$"):
        world.model.kvm.read_once("gem", "vcpu0")
    with pytest.raises(ValueError, match=r"^kvm has no word 'seq' a design may write \(its words: busy, gen\)$"):
        world.model.kvm.write_once("seq", 1, "vcpu0")
