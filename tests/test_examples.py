"""The examples a newcomer copies from must keep working and keep telling the truth."""

from __future__ import annotations

import re

import pytest

from actors import DESIGNS
from mmurace.cli import main
from mmurace.testing import assert_no_race, assert_race


@pytest.mark.parametrize("example", ["examples/in_progress_only.py", "examples/early_count_drop.py"])
def test_each_buggy_variant_is_caught_on_the_headline_race(example: str) -> None:
    race = assert_race("race_remap", example)
    assert race.oracle in {"stale_spte", "divergence"}


def test_matrix_shows_the_file_designs_as_rows_beside_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["matrix", "--scenario", "race_remap", "--design", "examples/in_progress_only.py",
            "--design", "examples/early_count_drop.py", "--jobs", "1", "--details"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    table = out.split("\n\n")[0].splitlines()[1:]
    rows = {line.split()[0]: line.split(None, 1)[1] for line in table}
    assert len(rows) == len(DESIGNS) + 2  # every catalog design, then the file's two
    assert rows["seq_retry"].startswith("exhausted")
    assert rows["in_progress_only"].startswith("divergence")
    assert rows["early_count_drop"].startswith("divergence")
    assert "race_remap x in_progress_only: mmurace replay race_remap --design examples/in_progress_only.py:in_progress_only --schedule v1:" in out


def test_the_new_scenario_with_its_own_oracle() -> None:
    assert_no_race("examples/virtio_mem.py", "seq_retry")
    assert assert_race("examples/virtio_mem.py", "no_retry").oracle == "stale_spte"
    pinned = assert_race("examples/virtio_mem.py", "pin", oracles=["memory_returned"])
    assert "never went back to the host" in pinned.finding.message


def test_list_knows_what_a_file_defines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "examples/virtio_mem.py", "examples/in_progress_only.py"]) == 0
    out = capsys.readouterr().out
    assert "  virtio_mem " in out
    # names are padded to the longest one listed, catalog included
    assert re.search(r"in_progress_only +seq_retry whose recheck looks at in_progress only, not at seq \(a variant of seq_retry\)", out)
    assert re.search(r"memory_returned +At the end of a run, every frame the host no longer maps is free again\.", out)
