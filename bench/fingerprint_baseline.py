"""The fingerprint as it was before it was made cheaper (commit aaaae37): bench/fingerprint.py's baseline.

A copy of ``actors/runtime/fingerprint.py`` and ``DirectExecution.fingerprint``
at that commit, kept verbatim (bar this docstring, and the execution's part at
the end, which cuts an actor's chain at the runtime's suspension wherever the
runtime has it) so that the bench measures the old walk and the new one on the
same states in the same run. Not used by mmurace.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import io
import itertools
import marshal
import operator
import pickle
import random
import sys
import types
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from actors.runtime.awaits import Suspend
from actors.runtime.direct import DirectExecution
from actors.runtime.execution import Actor, Execution
from actors.runtime.lockdep import Lockdep
from mmu.footprint import Footprint

#: code objects (and classes), numbered in the order first met: stable within a process
_CODES: dict[object, int] = {}
#: tokens for what cannot be seen into: each is equal to nothing else
_TOKENS = itertools.count()


def _static(kind: type) -> bool:
    """Is ``kind`` a class its module names (made once), not one made while building a world?"""
    if kind in _STATIC:
        return True
    owner: Any = sys.modules.get(kind.__module__)
    for part in kind.__qualname__.split("."):
        owner = getattr(owner, part, None)
    if owner is kind:
        _STATIC.add(kind)
        return True
    return False


_STATIC: set[type] = set()


def _code(obj: object) -> int:
    number = _CODES.get(obj)
    if number is None:
        number = _CODES[obj] = len(_CODES)
    return number


def _tag(*what: object) -> None:
    """What the pickler names as the constructor of every object it writes (never called)."""


class _Pickler(pickle.Pickler):
    """Writes the builtin containers itself, and asks ``Canon`` for everything else."""

    def __init__(self, file: io.BytesIO, canon: Canon) -> None:
        self.reducer_override = canon._reduce  # type: ignore[method-assign,assignment]  # read by __init__
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)


class Canon:
    """One walk: a canonical form of a graph of objects, sharing made explicit.

    ``special`` maps a type to how its instances are written (the runtime's
    own records, which are not state or are state only in part: the function
    returns plain data standing for the object); ``ends`` are the code objects
    where an await chain stops being walked. The forms of one ``Canon`` share
    one memo: an object met in an earlier ``form`` is a reference in a later one.
    """

    def __init__(
        self,
        special: dict[type, Callable[[Any, Canon], object]] | None = None,
        ends: frozenset[object] = frozenset(),
    ) -> None:
        self._special = {Footprint: _footprint, **(special or {})}
        #: code where an await chain is cut short: the runtime's own, whose locals are its caller's arguments
        self._ends = ends
        #: types met that the walk could not see into (their states never match)
        self.opaque: set[str] = set()
        self._out = io.BytesIO()
        self._pickler = _Pickler(self._out, self)

    def reset(self) -> None:
        """Start a new walk: forget what was met (the memo) and what was opaque."""
        self._pickler.clear_memo()
        self.opaque = set()

    def form(self, obj: object) -> bytes:
        """The canonical form of ``obj``, as bytes (within this walk's memo)."""
        out = self._out
        out.seek(0)
        out.truncate()
        self._pickler.dump(obj)
        return out.getvalue()

    def frames(self, coroutine: Any) -> bytes:
        """Where a coroutine is parked: each frame of its await chain, outermost first."""
        return self.form(Frames(coroutine))

    def _frames(self, coroutine: Any) -> list[object]:
        out: list[object] = []
        obj = coroutine
        while obj is not None:
            frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
            if frame is None:
                if isinstance(obj, types.CoroutineType | types.GeneratorType):
                    out.append("done")  # finished (or never started: it has no frame either)
                else:
                    self.opaque.add(type(obj).__qualname__)
                    out.append(("?", next(_TOKENS)))
                break
            if frame.f_code in self._ends:
                out.append(_code(frame.f_code))
                break
            out.append((_code(frame.f_code), frame.f_lasti, frame.f_locals))
            obj = obj.cr_await if hasattr(obj, "cr_await") else getattr(obj, "gi_yieldfrom", None)
        return out

    def _reduce(self, obj: Any) -> object:
        """How the pickler writes ``obj``: ``(_tag, (kind, ...), fields)``, the fields after
        the object is memoised, so that a cycle through it is a reference."""
        kind = type(obj)
        special = self._special.get(kind)  # first: a fast path below may come from a walk without it
        if special is not None:
            return _tag, ("S",), special(obj, self)
        fast = _FAST.get(kind)
        if fast is not None:  # a class of the model's, seen before: its fields in one call
            code, getter = fast
            try:
                return _tag, (code,), getter(obj)
            except AttributeError:  # a slot left unset: field by field
                return self._object(obj, kind)
        if kind is types.FunctionType and obj is not _tag:  # the oracles, a design's steps
            return _tag, ("f", _code(obj.__code__)), (obj.__closure__, obj.__defaults__, obj.__kwdefaults__)
        if kind is types.CellType:  # a closure's variable
            try:
                return _tag, ("cell",), (obj.cell_contents,)
            except ValueError:  # a cell not yet filled
                return _tag, ("cell",), None
        if kind is type:
            constant = _TYPES.get(obj)
        else:
            constant = _CONSTANTS.get(obj) if isinstance(obj, enum.Enum) else None
        if constant is not None:
            return constant
        plain = _DICTS.get(kind)
        if plain is not None:  # a class of plain instances (a __dict__, no fields), seen before
            return _tag, ("o", plain), obj.__dict__
        return self._object(obj, kind)

    def _object(self, obj: Any, kind: type) -> object:
        if obj is _tag:
            return NotImplemented  # written by name, as pickle writes any function
        if kind is Frames:
            return _tag, ("c",), self._frames(obj.coroutine)
        if kind is deque:
            return _tag, ("q",), list(obj)
        if isinstance(obj, enum.Enum):
            member: tuple[object, ...] = (_tag, ("e", self._type(kind), obj.name))
            if _static(kind):
                _CONSTANTS[obj] = member
            return member
        if isinstance(obj, types.FunctionType):
            return _tag, ("f", _code(obj.__code__)), (obj.__closure__, obj.__defaults__, obj.__kwdefaults__)
        if isinstance(obj, types.CellType):
            try:
                return _tag, ("cell",), (obj.cell_contents,)
            except ValueError:  # a cell not yet filled
                return _tag, ("cell",), None
        if isinstance(obj, types.MethodType):
            return _tag, ("m",), (obj.__func__, obj.__self__)
        if isinstance(obj, types.BuiltinFunctionType):
            owner = obj.__self__
            return _tag, ("b", obj.__qualname__), None if isinstance(owner, types.ModuleType) else (owner,)
        if isinstance(obj, functools.partial):
            return _tag, ("p",), (obj.func, obj.args, obj.keywords)
        if isinstance(obj, type):
            if _static(obj):
                static: tuple[object, ...] = (_tag, ("T", _code(obj)))
                if kind is type:
                    _TYPES[obj] = static
                return static
            # made at run time (a design with steps replaced): what it is, not which object
            namespace = {k: v for k, v in vars(obj).items() if not (k.startswith("__") and k.endswith("__"))}
            return _tag, ("C", obj.__qualname__), (obj.__bases__, namespace)
        if isinstance(obj, types.ModuleType):
            return _tag, ("M", obj.__name__)
        if isinstance(obj, types.CoroutineType | types.GeneratorType):
            return _tag, ("c",), self._frames(obj)
        if isinstance(obj, random.Random):
            return _tag, ("r",), obj.getstate()
        if isinstance(obj, types.CodeType):
            return _tag, ("K", _code(obj))
        fields = _fields(kind)
        if fields is None:
            if not hasattr(obj, "__dict__"):
                self.opaque.add(f"{kind.__module__}.{kind.__qualname__}")
                return _tag, ("?", next(_TOKENS))
            if _static(kind):
                _DICTS[kind] = _code(kind)  # the next instance takes the fast path
            return _tag, ("o", self._type(kind)), obj.__dict__
        raw = tuple(getattr(obj, name, _UNSET) for name in fields)
        extra = getattr(obj, "__dict__", None)
        if fields and _static(kind) and all(v is not _UNSET for v in raw):
            # every field set: the next instance takes the fast path (written as this one)
            getter = operator.attrgetter(*fields)
            get = getter if len(fields) > 1 else lambda o: (getter(o),)
            if extra is None:
                _FAST[kind] = (_code(kind), get)
                return _tag, (_code(kind),), raw
            _FAST[kind] = (_code(kind), lambda o: (*get(o), o.__dict__ or None))
            return _tag, (_code(kind),), (*raw, extra or None)
        return _tag, ("o", self._type(kind)), (raw, extra or None)

    def _type(self, kind: type) -> object:
        return _code(kind) if _static(kind) else kind


@dataclasses.dataclass(frozen=True)
class Frames:
    """A coroutine, to be written as its position: each frame of its await chain."""

    coroutine: Any


def _footprint(fp: Any, canon: Canon) -> object:
    return "fp"  # what the running step touched: empty between steps, not state


_UNSET = ("unset",)
#: classes whose instances keep only a ``__dict__``: their code
_DICTS: dict[type, int] = {}
#: how classes (of metaclass ``type``) are written, once met
_TYPES: dict[type, tuple[object, ...]] = {}
#: how the members of enumerations are written, once met
_CONSTANTS: dict[enum.Enum, tuple[object, ...]] = {}
#: classes whose instances are read field by field in one call: (code, getter)
_FAST: dict[type, tuple[int, Callable[[Any], tuple[Any, ...]]]] = {}
_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _fields(kind: type) -> tuple[str, ...] | None:
    """The attributes an instance of ``kind`` keeps (None: only a ``__dict__``, if any)."""
    if kind in _FIELDS:
        return _FIELDS[kind]
    names: tuple[str, ...] | None
    attrs_fields = getattr(kind, "__attrs_attrs__", None)
    if attrs_fields is not None:
        names = tuple(a.name for a in attrs_fields)
    elif dataclasses.is_dataclass(kind):
        names = tuple(f.name for f in dataclasses.fields(kind))
    else:
        declared = [k.__dict__["__slots__"] for k in kind.__mro__ if "__slots__" in k.__dict__]
        slots = [s for d in declared for s in ((d,) if isinstance(d, str) else d)]
        names = tuple(s for s in slots if s not in ("__dict__", "__weakref__")) if declared else None
    if _static(kind):  # a class made while building a world dies with it: not kept
        _FIELDS[kind] = names
    return names


def plain_functions(functions: Mapping[str, Any]) -> tuple[object, ...] | None:
    """``functions`` (the oracles) as names and code, if none keeps state (no closure, no
    defaults: what a walk of them would say, for less); None if one does: walk them."""
    out: list[object] = []
    for name, fn in functions.items():
        if type(fn) is not types.FunctionType or fn.__closure__ or fn.__defaults__ or fn.__kwdefaults__:
            return None
        out += (name, _code(fn.__code__))
    return tuple(out)


def digest(form: object) -> bytes:
    """16 bytes naming a canonical form (bytes, or a tuple of them)."""
    data = form if type(form) is bytes else marshal.dumps(form, 0)  # type: ignore[arg-type]
    return hashlib.blake2b(data, digest_size=16).digest()


def coroutine_frames(coroutine: Coroutine[Any, Any, None]) -> bytes:
    """A coroutine's position alone (for tests)."""
    return Canon().frames(coroutine)


def _actor(actor: Any, canon: Canon) -> object:
    return ("A", actor.index, actor.thread, actor.finished)


def _lockdep(lockdep: Any, canon: Canon) -> object:
    held = sorted((thread, tuple(locks)) for thread, locks in lockdep._held.items() if locks)
    return ("L", lockdep.enabled, held, sorted(lockdep._order))


def _execution(execution: Any, canon: Canon) -> object:
    return "X"


#: where it cut an actor's await chain: below ``ActorContext._park``, at the runtime's own
#: suspension (``Execution.point`` then; ``Suspend.__await__`` once ``_park`` suspends itself)
_ENDS: frozenset[object] = frozenset({
    Execution.point.__code__ if hasattr(Execution, "point") else Suspend.__await__.__code__,
})


def fingerprint(execution: Any) -> tuple[bytes, set[str]]:
    """``DirectExecution.fingerprint`` as it was: the walk, kept on the execution between calls."""
    canon = execution.__dict__.get("_baseline_canon")
    if canon is None:
        special = {DirectExecution: _execution, Actor: _actor, Lockdep: _lockdep}
        canon = execution._baseline_canon = Canon(special, _ENDS)
    else:
        canon.reset()
    oracles = execution.world.oracles
    form = canon.form((
        execution.model,
        execution.lockdep,
        [(a, Frames(execution._coroutines[a.index])) for a in execution.actors],
        plain_functions(oracles) or oracles,
        execution.world.max_retries,
    ))
    return digest(form), canon.opaque
