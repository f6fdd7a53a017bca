"""The public surface of each package, pinned, and the layering between them."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import actors
import actors.host
import actors.kvm
import actors.runtime
import mmu
import mmurace
import scenarios

RUNTIME = {
    "ActorContext", "ActorFn", "ActorSpec", "DEFAULT_MAX_RETRIES", "DEFAULT_MAX_STEPS", "Executor", "Finding",
    "InternalError", "MAX_STEPS", "Mailbox", "Request", "RunResult", "Runtime", "Schedule", "ScheduleDiverged", "ScheduleError",
    "Status", "Step", "Strategy", "World", "buried", "sort_key", "MEMORY", "is_memory_actor", "weaken",
}
SURFACE = {
    mmu: {
        "Access", "Era", "Footprint", "Frame", "FrameTable", "HostMm", "HostPte", "Kvm", "LockError", "Memslot", "Memslots", "Model", "ORACLES",
        "PAGE_SIZE", "RwSem", "SpinLock", "Spte", "Violation", "Vma", "corruption", "divergence", "stale_spte",
        "Region", "Slot", "leaked_refs", "pinned_pages", "spurious_efault", "writable_spte", "Memory", "WeakMemory",
    },
    actors.runtime: RUNTIME,
    actors.host: {
        "change_pte", "deferred_split_scan", "do_wp_page", "get_user_page", "get_user_page_fast_only", "get_user_pages",
        "get_user_pages_locked", "invalidate_end", "invalidate_page", "invalidate_start", "ksm_merge", "madvise_dontneed",
        "follow_pfnmap_pte", "migrate_page", "mmap", "mmap_device_fixed", "mmap_fixed", "mmu_notifier_register", "mprotect_readonly", "subscribers", "mremap_move",
        "munmap", "remapper", "split_huge_page", "thp_collapse", "thp_split",
    },
    actors.kvm: {
        "DESIGNS", "Design", "Fault", "KvmMmuNotifier", "Power7Hpt", "SeqRetry", "design_named", "kvm_init_mmu_notifier",
        "ppc_hv_set_spte_hva", "step", "vcpu",
    },
    actors: (RUNTIME - {"ActorFn", "buried", "MEMORY", "is_memory_actor", "weaken"}) | {
        "DESIGNS", "Design", "Fault", "Power7Hpt", "SeqRetry", "design_named", "kvm_init_mmu_notifier",
        "ppc_hv_set_spte_hva",
        "remapper", "step", "vcpu",
    },
    scenarios: {"CATALOG", "Scenario"},
    mmurace: {"Config", "Hunt", "MmuraceError", "RandomWalk", "Replay", "UsageError", "hunt", "load_scenario", "replay"},
}

#: mmu <- actors (runtime <- host <- kvm) <- scenarios <- mmurace: what each layer may import from the project
ALLOWED = {
    "mmu": set(),
    "actors.runtime": {"mmu"},
    "actors.host": {"mmu", "actors.runtime"},
    "actors.kvm": {"mmu", "actors.runtime", "actors.host"},
    "actors": {"mmu", "actors.runtime", "actors.host", "actors.kvm"},  # actors/__init__.py re-exports
    "scenarios": {"mmu", "actors", "actors.runtime", "actors.host", "actors.kvm"},
    "mmurace": {"mmu", "actors", "actors.runtime", "actors.host", "actors.kvm", "scenarios"},
}
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mmu", "actors", "scenarios", "mmurace")


@pytest.mark.parametrize("package", list(SURFACE), ids=lambda p: p.__name__)
def test_public_surface_is_pinned(package: types.ModuleType) -> None:
    public = {n for n, v in vars(package).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == SURFACE[package]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _layer(module: str) -> str:
    """The layer of ALLOWED a module belongs to: its longest matching prefix."""
    return max((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), key=len)


def _is_main_guard(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def _imports(module: str) -> set[str]:
    """Project modules ``module`` imports, at any depth (functions, TYPE_CHECKING blocks
    included), except under ``if __name__ == "__main__":`` (a scenario file's own entry
    point runs as __main__, above the layers). ``from P import name`` counts as
    importing the module P.name when there is one, else P itself."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text())]
    while stack:
        node = stack.pop()
        if _is_main_guard(node):
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = node.module or ""
            if node.level:
                target = f"{base}.{target}" if target else base
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: _imports(m) for m in MODULES}


@pytest.mark.parametrize("layer", list(ALLOWED))
def test_nothing_imports_upward(layer: str) -> None:
    for module in (m for m in MODULES if _layer(m) == layer):
        upward = {_layer(t) for t in GRAPH[module]} - ALLOWED[layer] - {layer}
        assert not upward, f"{module} imports from {sorted(upward)}"


def test_host_never_imports_kvm() -> None:
    """The notifier chain reaches KVM only through the subscription KVM registers."""
    for module in (m for m in MODULES if _layer(m) == "actors.host"):
        assert not {t for t in GRAPH[module] if _layer(t) == "actors.kvm"}, module


def _cycle() -> list[str] | None:
    """A cycle in GRAPH, as the modules along it, or None (depth-first, white/grey/black)."""
    colour: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = 1
        path.append(m)
        for t in sorted(GRAPH[m]):
            if colour.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in colour and (found := visit(t)) is not None:
                return found
        path.pop()
        colour[m] = 2
        return None

    for m in sorted(GRAPH):
        if m not in colour and (found := visit(m)) is not None:
            return found
    return None


def test_no_import_cycle_among_modules() -> None:
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_the_cycle_check_sees_a_cycle() -> None:
    """The check above would notice a circle (here: the executors and the context, as they were)."""
    GRAPH["actors.runtime.context"].add("actors.runtime.direct")
    try:
        found = _cycle()
    finally:
        GRAPH["actors.runtime.context"].discard("actors.runtime.direct")
    assert found is not None and "actors.runtime.direct" in found
