"""``mmurace explore``'s stateful options: the default, --stateless, --max-states, --order, --jobs."""

from __future__ import annotations

import json
import re

import pytest

from mmurace.cli import main


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    status, out, _ = cli(capsys, "explore", "race_remap", *argv, "--json", "--no-save")
    return status, json.loads(out)


def test_stateful_by_default_and_stateless_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    status, stateful = _json(capsys, "--design", "seq_retry")
    assert (status, stateful["verdict"]) == (0, "exhausted")
    assert stateful["states"] > 0 and stateful["revisits"] > 0
    status, stateless = _json(capsys, "--design", "seq_retry", "--stateless")
    assert (status, stateless["verdict"], stateless["states"]) == (0, "exhausted", None)
    assert stateful["executions"] < stateless["executions"]


def test_a_full_table_goes_on_statelessly_and_still_proves(capsys: pytest.CaptureFixture[str]) -> None:
    status, e = _json(capsys, "--design", "seq_retry", "--max-states", "3")
    assert (status, e["verdict"], e["states"], e["table_full"]) == (0, "exhausted", 3, True)
    status, out, _ = cli(capsys, "explore", "race_remap", "--design", "seq_retry", "--max-states", "3")
    assert "the state table filled up" in out
    status, e = _json(capsys, "--design", "no_retry", "--max-states", "1")
    assert (status, e["verdict"]) == (1, "found")


def test_orders_say_what_is_fewest(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "explore", "race_remap", "--design", "setup_time", "--order", "bfs", "--no-save")
    assert status == 1 and "the fewest steps of any race: 10" in out
    status, out, _ = cli(capsys, "explore", "race_remap", "--design", "no_retry", "--order", "preemptions",
                         "--no-save")
    assert status == 1 and "the fewest preemptions of any race: 1" in out
    status, e = _json(capsys, "--design", "seq_retry", "--order", "bfs")
    assert (status, e["verdict"], e["order"]) == (0, "exhausted", "bfs")


def test_jobs_split_the_search_and_merge_its_parts(capsys: pytest.CaptureFixture[str]) -> None:
    status, e = _json(capsys, "--design", "seq_retry", "--jobs", "2")
    assert (status, e["verdict"]) == (0, "exhausted")
    status, e = _json(capsys, "--design", "no_retry", "--jobs", "2")
    assert (status, e["verdict"]) == (1, "found")


@pytest.mark.parametrize("argv", [["--order", "bfs", "--jobs", "2"], ["--order", "preemptions", "--stateless"],
                                  ["--stateless", "--jobs", "2"]])
def test_options_that_do_not_go_together_are_refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, out, err = cli(capsys, "explore", "race_remap", "--design", "seq_retry", *argv)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("mmurace: error: ")


def test_a_plain_progress_line_when_stderr_is_no_terminal(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, quiet = cli(capsys, "explore", "race_remap", "--design", "seq_retry", "--no-save")
    assert quiet == ""  # a short search prints no progress
    monkeypatch.setattr("mmurace.progress_line.PLAIN_SECONDS", 0.0)
    _, _, err = cli(capsys, "explore", "race_remap", "--design", "seq_retry", "--no-save")
    lines = err.splitlines()
    assert lines and all(
        re.fullmatch(r"race_remap --design seq_retry explore: [0-9,]+ states, [0-9,]+ runs, depth [0-9]+,"
                     r" [0-9,]+ runs/s", line) for line in lines), err
