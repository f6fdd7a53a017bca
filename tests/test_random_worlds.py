"""Reductions checked on random small worlds: every state the full tree judges (every
schedule, no reduction) is judged by the sleep sets alone and by the default stateful
search, in worlds of three actors that read, write and lock at random
(``small_worlds.random_world``). A reduction that takes two steps for independent
when they are not (a footprint that misses what a step touched, a lock of the
design's own among them) loses states here."""

from __future__ import annotations

import pytest

from mmu import Model, Violation

from .small_worlds import exhausted, random_program, random_world, toy_config

#: every state the recording oracle was shown, as the words of the model
_JUDGED: set[tuple[tuple[str, int], ...]] = set()


def _record(model: Model) -> Violation | None:
    # a plain function, what it keeps outside it: a stateful search walks an oracle
    # that keeps state into every fingerprint, and would never find two states alike
    _JUDGED.add(tuple(sorted(model.kvm.words.items())))
    return None


def _actors(rich: bool) -> int:
    return 2 if rich else 3  # and a daemon that serves their calls: full trees stay small


def _judged(seed: int, rich: bool, **search: object) -> frozenset[tuple[tuple[str, int], ...]]:
    def recorded() -> object:
        w = random_world(seed, _actors(rich), rich=rich)
        w.oracles = {"record": _record}
        return w

    _JUDGED.clear()
    exhausted(toy_config(recorded), **search)  # on past lockdep's findings: an rwsem under a spinlock
    return frozenset(_JUDGED)


#: seeds 177 and 190 draw worlds where two actors take a lock of the world's own: its
#: footprint once went unrecorded, and both reductions lost states there
SEEDS = [(seed, False) for seed in range(170, 200)]
#: worlds with an rwsem, trylocks, guards and calls to a daemon too
RICH = [(seed, True) for seed in range(1000, 1025)]


@pytest.mark.parametrize(("seed", "rich"), SEEDS + RICH)
def test_the_reductions_judge_every_state_of_a_random_world(seed: int, rich: bool) -> None:
    program = random_program(seed, _actors(rich), rich=rich)
    full = _judged(seed, rich, reduce=False, stateful=False)
    assert len(full) > 1, program
    for mode, search in {"sleep sets alone": {"stateful": False}, "the default search": {}}.items():
        lost = full - _judged(seed, rich, **search)
        assert not lost, f"{mode} lost {len(lost)} of {len(full)} judged states of {program}"
