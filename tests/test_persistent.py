"""A step that touches nothing is run alone: the other actors' branches at that decision
only reorder it (a persistent set), so the search skips them, and still reaches every
final state and every race (tests/test_stateful.py runs the small worlds both ways)."""

from __future__ import annotations

import pytest

from actors import Executor
from mmu import Memory, Model, Violation
from mmurace import explore
from mmurace.api import configure
from mmurace.explore import Verdict, explore_direct

from .small_worlds import quiet_counter, toy_config
from .toys import Observing


def _runs(e: explore.Exploration) -> int:
    return e.executions + e.pruned


@pytest.mark.parametrize("stateful", [True, False])
def test_steps_that_touch_nothing_are_not_interleaved(monkeypatch: pytest.MonkeyPatch, stateful: bool) -> None:
    config = toy_config(quiet_counter)
    reduced = explore_direct(config, preemptions=None, stateful=stateful)
    monkeypatch.setattr(explore, "_NOTHING", object())  # no footprint equals it: the rule never applies
    interleaved = explore_direct(config, preemptions=None, stateful=stateful)
    assert reduced.verdict is interleaved.verdict is Verdict.EXHAUSTED
    assert _runs(reduced) < _runs(interleaved) * 0.7


def test_a_race_across_a_step_that_touches_nothing_is_still_found() -> None:
    def lost(model: Model) -> Violation | None:
        # each worker adds its own amount once: any other final value lost an update
        if model.ended and model.kvm.seq not in (7, 8):  # 0*3+1 then *3+2, or 0*3+2 then *3+1
            return Violation("lost_update", f"seq={model.kvm.seq}")
        return None

    def judged():  # type: ignore[no-untyped-def]
        w = quiet_counter(2, 1)
        w.oracles = {"lost_update": lost}
        return w

    e = explore_direct(toy_config(judged), preemptions=None)
    assert e.verdict is Verdict.FOUND and e.result is not None
    assert e.result.finding is not None and e.result.finding.oracle == "lost_update"


def test_the_rule_holds_off_under_a_preemption_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # reordering a step may cost a preemption the bound does not have: every branch is run
    config = toy_config(quiet_counter)
    bounded = explore_direct(config, preemptions=3)
    monkeypatch.setattr(explore, "_NOTHING", object())
    assert _runs(explore_direct(config, preemptions=3)) == _runs(bounded)


def test_in_weak_memory_the_last_step_of_the_run_is_ordered_with_every_step() -> None:
    """Once every actor but the memory's has finished, the stores still buffered are never
    committed (``Execution.decide``): the step that ends the run is dependent with a commit."""
    config = configure("race_remap", "seq_retry", executor=Executor.DIRECT, memory=Memory.WEAK)
    observer = Observing()
    result = config.run_direct(observer)
    assert result.finding is None
    daemons = {i for i, spec in enumerate(config.world().actors) if spec.daemon}
    last = max(i for i, (actor, _) in enumerate(observer.accesses) if actor not in daemons)
    assert observer.accesses[last][1].unseen
