"""Schedule strings: round trip, and clear errors for anything else."""

from __future__ import annotations

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


def test_fewer_preemptions_sort_first() -> None:
    a, b, c = Schedule((0, 0, 0, 1)), Schedule((1, 1)), Schedule((0, 1))
    assert sorted([b, a, c], key=sort_key) == [c, a, b]
