"""docs/writing-designs.md's code blocks run, and say what the page says they do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmurace.cli import main

PAGE = Path(__file__).resolve().parent.parent / "docs" / "writing-designs.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def _file(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(source)
    return str(path)


@pytest.mark.parametrize("index", [0, 1], ids=["replace", "subclass"])
def test_the_two_variants_race(index: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = _file(tmp_path, "mine.py", BLOCKS[index])
    assert main(["explore", "race_remap", "--design", mine]) == 1
    assert "VIOLATION" in capsys.readouterr().out


def test_the_scenario_judges_both_its_designs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    discard = _file(tmp_path, "discard.py", BLOCKS[2])
    assert main(["explore", discard, "--design", "seq_retry"]) == 0
    assert "exhausted" in capsys.readouterr().out
    assert main(["explore", discard, "--design", "no_retry"]) == 1
    assert main(["explore", discard, "--design", _file(tmp_path, "mine.py", BLOCKS[0])]) == 1
