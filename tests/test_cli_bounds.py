"""Numbers a user types are bounded data: a huge one is one line and exit 2, never a traceback."""

from __future__ import annotations

import pytest

from mmurace.cli import main

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "race_remap", "--design", "no_retry", "--schedule", "v1:1000000000:2=1"],
        ["replay", "race_remap", "--design", "no_retry", "--schedule", "v1:99999999999999999999:2=1"],
        ["replay", "race_remap", "--design", "no_retry", "--schedule", "v1:\u0661\u0660:2=1"],
        ["shrink", "race_remap", "--design", "no_retry", "--schedule", "v1:2001:2=1"],
        ["run", "race_remap", "--seeds", HUGE],
        ["run", "race_remap", "--seed", HUGE],
        ["run", "race_remap", "--max-steps", HUGE],
        ["run", "race_remap", "--max-retries", HUGE],
        ["stress", "race_remap", "--design", "no_retry", "--schedules", HUGE],
        ["stress", "race_remap", "--design", "no_retry", "--seed", HUGE],
        ["stress", "race_remap", "--design", "no_retry", "--depth", HUGE],
        ["explore", "race_remap", "--design", "no_retry", "--preemptions", HUGE],
        ["explore", "race_remap", "--design", "no_retry", "--limit", HUGE],
        ["matrix", "--budget", HUGE],
        ["matrix", "--jobs", HUGE],
    ],
    ids=lambda argv: " ".join([argv[0], *(a for a in argv if a.startswith("--"))]),
)
def test_huge_numbers_are_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("mmurace: error: ") and err.count("\n") == 1, err


def test_a_schedule_longer_than_the_step_bound_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["replay", "race_remap", "--design", "no_retry", "--schedule", "v1:11:2=1"]
    assert main([*argv, "--max-steps", "10"]) == 2
    assert capsys.readouterr().err == (
        "mmurace: error: schedule 'v1:11:2=1' has more decisions than a run of at most 10 steps makes\n"
    )
    assert main(argv) == 1  # the same string within the bound replays its race
