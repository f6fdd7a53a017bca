"""The public surface of each package, pinned, and the layering between them."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import actors
import mmu
import mmurace
import scenarios

SURFACE = {
    mmu: {
        "Access", "Footprint", "Frame", "FrameTable", "HostMm", "HostPte", "Kvm", "LockError", "Memslot", "Model", "ORACLES",
        "PAGE_SIZE", "RwSem", "SpinLock", "Spte", "Violation", "Vma", "corruption", "divergence", "stale_spte",
        "Region", "leaked_refs", "pinned_pages", "spurious_efault", "writable_spte",
    },
    actors: {
        "ActorContext", "ActorSpec", "DEFAULT_MAX_RETRIES", "DEFAULT_MAX_STEPS", "DESIGNS", "Design", "Executor", "Finding", "InternalError",
        "InvalidateEnd", "InvalidateStart", "Mailbox", "Request", "RunResult", "Runtime", "Schedule",
        "ScheduleDiverged", "ScheduleError", "Status", "Step", "Strategy", "World", "notifier_dispatcher",
        "remapper", "sort_key", "vcpu",
    },
    scenarios: {"CATALOG", "Scenario"},
    mmurace: {"Config", "Hunt", "MmuraceError", "RandomWalk", "Replay", "UsageError", "hunt", "load_scenario", "replay"},
}

#: mmu <- actors <- scenarios <- mmurace: what each package may import from the project
ALLOWED = {
    "mmu": set(),
    "actors": {"mmu"},
    "scenarios": {"mmu", "actors"},
    "mmurace": {"mmu", "actors", "scenarios"},
}
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("package", list(SURFACE), ids=lambda p: p.__name__)
def test_public_surface_is_pinned(package: types.ModuleType) -> None:
    public = {n for n, v in vars(package).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == SURFACE[package]


def _is_main_guard(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def _project_imports(path: Path) -> set[str]:
    """Project packages imported by ``path``, except under ``if __name__ == "__main__":``
    (a scenario file's own entry point sits above the layers)."""
    found: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text())]
    while stack:
        node = stack.pop()
        if _is_main_guard(node):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        stack.extend(ast.iter_child_nodes(node))
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", list(ALLOWED))
def test_nothing_imports_upward(package: str) -> None:
    for path in sorted((ROOT / package).glob("*.py")):
        upward = _project_imports(path) - ALLOWED[package] - {package}
        assert not upward, f"{path.name} imports {sorted(upward)}"
