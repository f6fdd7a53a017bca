"""Layering: ``mmu`` is pure and synchronous, below everything else.

It must import, build a model and judge it with trio unavailable, and without
pulling in the packages layered on top of it (actors, scenarios, mmurace).
Each check runs in a fresh interpreter, since this one has long imported them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mmu import ORACLES

ROOT = Path(__file__).resolve().parent.parent

#: runs in a fresh interpreter; prints one JSON line
PROBE = r"""
import importlib.abc, json, sys

ABOVE = ("trio", "actors", "scenarios", "mmurace")
attempts = []

class Refuse(importlib.abc.MetaPathFinder):
    # refuses (and records) every attempt to import a package above mmu, or trio
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABOVE:
            attempts.append(name)
            raise ImportError(f"{name} is blocked for this test")
        return None

sys.meta_path.insert(0, Refuse())
for name in ABOVE:
    sys.modules.pop(name, None)

import mmu
from mmu import ORACLES, Model

m = Model.build(npages=2, nframes=4)
print(json.dumps({
    "file": mmu.__file__,
    "attempts": attempts,
    "loaded": sorted(k for k in sys.modules if k.split(".")[0] in ABOVE),
    "ptes": len(m.mm.ptes),
    "verdicts": {name: oracle(m) is None for name, oracle in ORACLES.items()},
}))
"""


def probe(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_mmu_imports_and_builds_without_trio() -> None:
    proc = probe("import sys\nsys.modules['trio'] = None\nimport mmu\nprint(mmu.Model.build().kvm.seq)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "0\n"


def test_blocking_trio_does_block_it() -> None:
    """The way the test above blocks trio is effective, so its success means something."""
    proc = probe("import sys\nsys.modules['trio'] = None\nimport trio")
    assert proc.returncode == 1
    assert "ModuleNotFoundError" in proc.stderr
    assert "trio" in proc.stderr


def test_mmu_imports_nothing_above_it() -> None:
    proc = probe(PROBE)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert Path(report["file"]).resolve() == ROOT / "mmu" / "__init__.py"
    assert report["attempts"] == []  # not even a guarded try-import
    assert report["loaded"] == []
    assert report["ptes"] == 2
    assert report["verdicts"] == dict.fromkeys(ORACLES, True)


def test_the_probe_notices_an_import_from_above() -> None:
    """The probe's blocker fires on the packages it guards (here: importing actors after mmu)."""
    guarded = "import mmu\ntry:\n    import actors\nexcept ImportError:\n    pass\n"
    proc = probe(PROBE.replace("import mmu\n", guarded))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["attempts"] == ["actors"]
