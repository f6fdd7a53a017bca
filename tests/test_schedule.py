"""Schedule strings: round trip, and clear errors for anything else."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings, strategies as st

from actors import Schedule, ScheduleError, sort_key


@settings(derandomize=True, max_examples=300)
@given(st.lists(st.integers(0, 5), max_size=60))
def test_encode_decode_round_trip(choices: list[int]) -> None:
    schedule = Schedule(tuple(choices))
    text = schedule.encode()
    assert Schedule.decode(text) == schedule
    assert text.startswith(f"v1:{len(choices)}")


def test_encoding_lists_only_preemptions() -> None:
    assert Schedule((0, 0, 1, 0, 2)).encode() == "v1:5:2=1,4=2"
    assert Schedule((0, 0)).encode() == "v1:2"
    assert Schedule((0, 0, 1, 0, 2)).preemptions == 2


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "expected"),
        ("v2:3", "expected"),
        ("v1:3:1=", "expected"),
        ("v1:abc", "expected"),
        ("v1:3:5=1", "decision 5 beyond length 3"),
        ("v1:5:3=1,2=1", "non-zero and in increasing order"),
        ("v1:5:2=0", "non-zero and in increasing order"),
    ],
)
def test_malformed_strings_say_why(text: str, why: str) -> None:
    with pytest.raises(ScheduleError, match=rf"^malformed schedule {text!r}: .*{why}"):
        Schedule.decode(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("v1:1000000000:2=1", "has more decisions than a run of at most 2000 steps makes"),
        ("v1:99999999999999999999:2=1", "has more decisions than a run of at most 2000 steps makes"),
        ("v1:2001", "has more decisions than a run of at most 2000 steps makes"),
        ("v1:" + "9" * 5000, "has more decisions than a run of at most 2000 steps makes"),
        ("v1:10:2=99999999999999999999", "choice 99999999999999999999 above 9999"),
        ("v1:10:99999999999999999999=1", "decision 99999999999999999999 beyond length 10"),
        ("v1:\u0661\u0660", "expected 'v1:N'"),  # Arabic-Indic digits: int() would take them
        ("v1:10:\uff12=1", "expected 'v1:N'"),  # a fullwidth 2
        ("v1:10:" + ",".join(f"{i}=1" for i in range(1, 10**5)), "is longer than any run of 2000 steps"),
    ],
)
def test_bounds_are_checked_before_anything_is_allocated(text: str, why: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ScheduleError, match=why):
            Schedule.decode(text, 2000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"decoding a refused string took {peak} bytes"


def test_a_schedule_as_long_as_the_step_bound_is_accepted() -> None:
    assert Schedule.decode("v1:2000:1999=3", 2000).choices[-1] == 3
    assert Schedule.decode("v1:0010:002=01") == Schedule.decode("v1:10:2=1")  # leading zeros read as such


def test_fewer_preemptions_sort_first() -> None:
    a, b, c = Schedule((0, 0, 0, 1)), Schedule((1, 1)), Schedule((0, 1))
    assert sorted([b, a, c], key=sort_key) == [c, a, b]
