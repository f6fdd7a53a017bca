"""What a command can name: the catalog, and the scenarios, designs and oracles of users' files.

A user's file is plain Python. It may define any of:

- scenarios: module-level ``Scenario`` objects (``SCENARIO = Scenario(...)``);
- designs: module-level ``Design`` objects (``MINE = DESIGNS["seq_retry"].replace(...)``);
- oracles: a module-level ``ORACLES`` dict of name -> ``oracle(model) -> Violation | None``.

Each is named on the command line by its ``name`` (a file's names shadow
nothing: a name the catalog has already is refused), or as ``FILE.py:NAME``;
``FILE.py`` alone names the file's only scenario or design. Everything a
file defines is checked when it loads, and every mistake is one line
(``UsageError``), never a traceback.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import attrs

from actors import DESIGNS, Design, World
from actors.kvm.design import validate
from mmu import ORACLES
from mmu.oracles import Oracle
from scenarios import CATALOG, Scenario

from .errors import UsageError, unknown


@attrs.frozen
class UserFile:
    """What one user's file defines, checked."""

    path: str  # as the user gave it
    scenarios: Mapping[str, Scenario]
    designs: Mapping[str, Design]
    oracles: Mapping[str, Oracle]


#: files loaded in this process, by resolved path: loading twice must give the same objects
_LOADED: dict[Path, UserFile] = {}


def is_file_ref(ref: str) -> bool:
    """Does ``ref`` name a file (``x.py`` or ``x.py:NAME``) rather than a catalog entry?"""
    return ref.partition(":")[0].endswith(".py")


def load_file(path_text: str) -> UserFile:
    """Import a user's file once and check what it defines.

    Raises:
        UsageError: the file does not exist or does not load, or something it defines is
            malformed (a design without a fault step, an oracle with a bad signature,
            a scenario naming designs nobody defines ...).
    """
    path = Path(path_text)
    if path.suffix != ".py":
        raise UsageError(f"{path_text!r} is not a Python file")
    if not path.is_file():
        raise UsageError(f"file {path_text!r} does not exist")
    key = path.resolve()
    if key in _LOADED:
        return _LOADED[key]
    module = _import(path, path_text)
    scenarios = _collect(module, Scenario, "scenario", path_text, CATALOG)
    designs = _collect(module, Design, "design", path_text, DESIGNS)
    for design in designs.values():
        problem = validate(design)
        if problem is not None:
            raise UsageError(f"{path_text}: {problem}")
    oracles = _oracles(module, path_text)
    for sc in scenarios.values():
        missing = [d for d in sc.designs if d not in DESIGNS and d not in designs]
        if missing:
            raise UsageError(
                f"{path_text}: scenario {sc.name!r} names design(s) {', '.join(map(repr, missing))}"
                " that neither the catalog nor the file defines"
            )
    loaded = UserFile(path_text, scenarios, designs, oracles)
    _LOADED[key] = loaded
    return loaded


def _import(path: Path, path_text: str) -> ModuleType:
    for known in CATALOG.values():  # a catalog file by path: the catalog's module, not a second copy
        if path.resolve() == Path(sys.modules[known.build.__module__].__file__ or "").resolve():
            return sys.modules[known.build.__module__]
    digest = hashlib.blake2s(str(path.resolve()).encode(), digest_size=4).hexdigest()
    name = f"_mmurace_file_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pickling and dataclass-like machinery look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UsageError(f"file {path_text!r} does not load: {type(exc).__name__}: {exc}") from None
    # by value: a worker process, above all a Dask worker elsewhere, has no module of that name
    import cloudpickle  # only a user's file needs it: not imported at start-up

    cloudpickle.register_pickle_by_value(module)
    return module


def _collect(
    module: ModuleType, kind: type, what: str, path_text: str, catalog: Mapping[str, object]
) -> dict:
    found: dict[str, object] = {}
    for value in vars(module).values():
        if not isinstance(value, kind) or any(value is v for v in found.values()):
            continue
        name = value.name  # type: ignore[attr-defined]
        if name in catalog and catalog[name] is not value:
            raise UsageError(f"{path_text}: {what} {name!r} has the name of a catalog {what}; rename it")
        if name in found:
            raise UsageError(f"{path_text}: two {what}s are named {name!r}")
        found[name] = value
    return found


def _oracles(module: ModuleType, path_text: str) -> dict[str, Oracle]:
    table = getattr(module, "ORACLES", None)
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        got = type(table).__name__
        raise UsageError(f"{path_text}: ORACLES must be a dict of name -> oracle(model) (got {got})")
    oracles: dict[str, Oracle] = {}
    for name, fn in table.items():
        if name in ORACLES and ORACLES[name] is not fn:
            raise UsageError(f"{path_text}: oracle {name!r} has the name of a catalog oracle; rename it")
        problem = _oracle_problem(fn)
        if problem is not None:
            raise UsageError(f"{path_text}: oracle {name!r} {problem}")
        oracles[name] = fn
    return oracles


def _oracle_problem(fn: object) -> str | None:
    if not callable(fn):
        return f"is not a function (got {fn!r})"
    if inspect.iscoroutinefunction(fn):
        return "must be a plain function of the model, not async: oracles judge a state, they do not step"
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None  # a builtin: nothing to check
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(required) > 1 or not (positional or any(p.kind is p.VAR_POSITIONAL for p in params)):
        return f"must take one argument, the model (it takes ({', '.join(p.name for p in params)}))"
    return None


def _one(file: UserFile, table: Mapping[str, object], what: str) -> str:
    if not table:
        example = "SCENARIO = Scenario(...)" if what == "scenario" else "MINE = SeqRetry(...)"
        raise UsageError(f"{file.path} defines no {what} (a module-level {example})")
    if len(table) > 1:
        names = ", ".join(table)
        raise UsageError(f"{file.path} defines {len(table)} {what}s ({names}): name one as {file.path}:NAME")
    return next(iter(table))


def resolve_scenario(ref: str) -> tuple[Scenario, UserFile | None]:
    """A catalog name, ``FILE.py`` (its only scenario) or ``FILE.py:NAME``; and its file, if any."""
    if not is_file_ref(ref):
        if ref not in CATALOG:
            raise unknown("scenario", ref, CATALOG)
        return CATALOG[ref], None
    path, _, name = ref.partition(":")
    file = load_file(path)
    if not file.scenarios and file.designs:
        raise UsageError(
            f"{path} defines designs but no scenario: run one of its designs on a catalog scenario,"
            f" e.g. mmurace run race_remap --design {path}:{next(iter(file.designs))}"
        )
    name = name or _one(file, file.scenarios, "scenario")
    if name not in file.scenarios:
        raise unknown(f"scenario in {path}", name, file.scenarios)
    return file.scenarios[name], file


def resolve_design(
    ref: str, scenario: Scenario, scenario_file: UserFile | None
) -> tuple[Design, UserFile | None]:
    """A catalog name, a name the scenario's file defines, ``FILE.py`` or ``FILE.py:NAME``,
    which must apply to ``scenario`` (``applies``)."""
    design, file = resolve_design_anywhere(ref, scenario_file)
    return _applicable(design, scenario), file


def resolve_design_anywhere(
    ref: str, scenario_file: UserFile | None = None
) -> tuple[Design, UserFile | None]:
    """The design ``ref`` names, whatever scenario it is for (``resolve_design`` checks that)."""
    if is_file_ref(ref):
        path, _, name = ref.partition(":")
        file = load_file(path)
        name = name or _one(file, file.designs, "design")
        if name not in file.designs:
            raise unknown(f"design in {path}", name, file.designs)
        return file.designs[name], file
    if scenario_file is not None and ref in scenario_file.designs:
        return scenario_file.designs[ref], scenario_file
    if ref in DESIGNS:
        return DESIGNS[ref], None
    raise unknown("design", ref, [*DESIGNS, *(scenario_file.designs if scenario_file else ())])


def applies(design: Design, scenario: Scenario) -> bool:
    """Is ``design`` judged on ``scenario``: its family is one of the scenario's designs,
    or it is a user's design of its own (no catalog family)."""
    return design.family in scenario.designs or (design.base is None and design.name not in DESIGNS)


def _applicable(design: Design, scenario: Scenario) -> Design:
    if not applies(design, scenario):
        which = f"{design.name!r}" + ("" if design.base is None else f" (a variant of {design.base!r})")
        raise UsageError(
            f"design {which} does not apply to {scenario.name}: it judges {', '.join(scenario.designs)}"
        )
    return design


def oracle_table(*files: UserFile | None) -> dict[str, Oracle]:
    """The catalog's oracles and those the files define."""
    table = dict(ORACLES)
    for file in files:
        if file is not None:
            table.update(file.oracles)
    return table


def check_build(scenario: Scenario, design: Design) -> None:
    """Build one world with default parameters: a user's build() that raises or returns
    something else than a World is one line, here, not a crash later."""
    try:
        world = scenario.build(design)
    except Exception as exc:
        raise UsageError(f"scenario {scenario.name!r}: build() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(world, World):
        raise UsageError(f"scenario {scenario.name!r}: build() returned {type(world).__name__}, not a World")
