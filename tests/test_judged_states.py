"""The reductions skip schedules, never a state an oracle judges: every model state the
oracles see in the full tree (every schedule, no reduction, nothing remembered) is seen
by the sleep sets alone and by the default search (sleep sets, persistent sets of steps
that touch nothing, remembered states). Oracles judge the model after every step, so a
reduction that ran one order of two steps where another order passes through a state of
its own would lose that state here (docs/exploring.md, section 1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actors import Executor, World
from actors.runtime.fingerprint import Canon, digest
from mmu import Memory, Model, Violation
from mmurace import Config
from mmurace.api import configure

from .small_worlds import exhausted, quiet_counter, toy_config

Judged = set[bytes]
TOYS = Path(__file__).parent / "toys.py"


_JUDGED: Judged = set()
_CANON = Canon()


def _record(model: Model) -> Violation | None:
    # a plain function, what it keeps outside it: a stateful search walks an oracle that
    # keeps state into every fingerprint, and would never find two states alike
    _JUDGED.add(digest(_CANON.form(model)))
    _CANON.reset()
    return None


def _recording(monkeypatch: pytest.MonkeyPatch) -> Judged:
    """Every world built from now on also has an oracle that records each state it is shown."""
    build = Config.world

    def world(self: Config) -> World:
        w = build(self)
        w.oracles = {**w.oracles, "zz_record": _record}  # last: it sees what the others judged
        return w

    monkeypatch.setattr(Config, "world", world)
    return _JUDGED


def _judged(name: str, config: Config, judged: Judged, **search: object) -> frozenset[bytes]:
    judged.clear()
    e = exhausted(config, **search)
    if search.get("stateful", True) and name in CUTS:
        assert e.revisits, f"{name}: the stateful search cut no visit, and the table went untested"
    return frozenset(judged)


CONFIGS: dict[str, Callable[[], Config]] = {
    "race_remap/no_retry": lambda: configure("race_remap", "no_retry"),
    "multi_vma/seq_retry": lambda: configure("multi_vma", "seq_retry"),
    "quiet_counter": lambda: toy_config(quiet_counter),
    # weak memory: the memory actors' commits are steps too, and the run's last step ends them
    "message_passing/no_rmb (weak)": lambda: configure(
        f"{TOYS}:message_passing", "no_rmb", executor=Executor.DIRECT, memory=Memory.WEAK
    ),
}


#: worlds where the stateful search reaches states again, and cuts those visits
CUTS = {"race_remap/no_retry"}


def _modes() -> Iterator[tuple[str, dict[str, object]]]:
    yield "sleep sets alone", {"stateful": False}
    yield "the default search", {}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_state_the_full_tree_judges_is_judged_by_the_reduced_searches(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    judged = _recording(monkeypatch)
    config = CONFIGS[name]()
    full = _judged(name, config, judged, reduce=False, stateful=False)
    assert len(full) > 1
    for mode, search in _modes():
        seen = _judged(name, config, judged, **search)
        assert full <= seen, f"{name}: {len(full - seen)} judged states lost by {mode}"
