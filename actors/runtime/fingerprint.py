"""The state of a run between two steps, as a digest: what a stateful search remembers.

A state is everything the rest of the run can depend on:

- the model, walked generically: every attribute of every object reachable
  from it (attrs classes, dataclasses, ``__dict__`` and ``__slots__``),
  so that state added to ``mmu/`` later is covered without touching this file;
- each actor's position: the chain of coroutine frames it is parked in
  (``cr_frame``, then ``cr_await`` down to the scheduling point), each as its
  code, its instruction offset (``f_lasti``) and its named locals, walked the
  same way (closures, bound methods and partials included: a guard's cells,
  a design's functions, a ``Mailbox`` a local refers to);
- the runtime's own cross-step state: each actor's kernel thread and whether
  it finished, and lockdep's history (the locks each thread holds, and the
  set of nestings seen, which later acquisitions are judged against);
- the world's oracles (a stateful oracle is walked like anything else).

Aliasing is kept: an object met twice is written as a back-reference to its
first visit, so two states with the same digest have isomorphic object
graphs. Dicts keep their insertion order (code may iterate them); sets are
sorted (code must not depend on their order). Objects the walk cannot see
into (written in C, other than the builtin containers) get a fresh token,
equal to nothing: such a state is never matched, which is sound but prunes
nothing; ``Canon.opaque`` names their types so that a test can insist on none.

What the walk cannot see, and a design must therefore not rely on: values
held only on a suspended frame's value stack (``f(model.x, await ctx.point())``
computes ``model.x`` before the point and keeps it where no walk reaches: write
it to a local first), module globals that change during a run, and anything
outside the model and the actors' locals (files, clocks, global random state).

The digest is a 128-bit BLAKE2b of the canonical form, serialized with
``marshal`` (version 0, which writes equal values alike whatever their
sharing); it is meaningful within one process only (code objects are named by
their number in this process).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import itertools
import marshal
import operator
import random
import sys
import types
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from mmu.footprint import Footprint

#: values written as they are
_ATOMS = frozenset({int, str, bool, float, bytes, type(None), complex})
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


class Canon:
    """One walk: a canonical form of a graph of objects, sharing made explicit.

    ``special`` maps a type to how its instances are written (the runtime's
    own records, which are not state or are state only in part); ``ends``
    are the code objects where an await chain stops being walked.
    """

    def __init__(
        self,
        special: dict[type, Callable[[Any, Canon], object]] | None = None,
        ends: frozenset[object] = frozenset(),
    ) -> None:
        self._memo: dict[int, int] = {}
        self._keep: list[object] = []  # memo'd objects stay alive: their ids stay theirs
        self._special = {Footprint: _footprint, **(special or {})}
        #: code where an await chain is cut short: the runtime's own, whose locals are its caller's arguments
        self._ends = ends
        #: types met that the walk could not see into (their states never match)
        self.opaque: set[str] = set()

    def form(self, obj: object) -> object:
        """The canonical form of ``obj``: atoms, and tuples tagged by kind."""
        kind = type(obj)
        if kind in _ATOMS:
            return obj
        if kind is tuple:
            return ("t", *self._each(obj))  # type: ignore[arg-type]
        if kind is frozenset:
            return ("z", *self._sorted(obj))  # type: ignore[arg-type]
        seen = self._memo.get(id(obj))
        if seen is not None:
            return ("@", seen)
        self._memo[id(obj)] = len(self._memo)
        self._keep.append(obj)
        special = self._special.get(kind)
        if special is not None:
            return special(obj, self)
        fast = _FAST.get(kind)
        if fast is not None:  # a class of the model's, seen before: its fields in one call
            code, getter = fast
            try:
                return ("o", code, *self._each(getter(obj)), None)
            except AttributeError:  # a slot left unset: field by field
                return self._object(obj, kind)
        if kind is list or kind is deque:
            return ("l" if kind is list else "q", *self._each(obj))  # type: ignore[arg-type]
        if kind is dict:
            return ("d", *self._each(itertools.chain.from_iterable(obj.items())))  # type: ignore[attr-defined]
        if kind is set:
            return ("s", *self._sorted(obj))  # type: ignore[arg-type]
        return self._object(obj, kind)

    def _each(self, items: Iterable[object]) -> list[object]:
        form, atoms = self.form, _ATOMS
        return [x if type(x) in atoms else form(x) for x in items]

    def _sorted(self, items: Iterable[object]) -> list[object]:
        return sorted((self.form(x) for x in items), key=repr)

    def _object(self, obj: Any, kind: type) -> object:
        if isinstance(obj, enum.Enum):
            return ("e", self._type(kind), obj.name)
        if isinstance(obj, types.FunctionType):
            cells = tuple(self._cell(c) for c in obj.__closure__ or ())
            defaults = (self.form(obj.__defaults__), self.form(obj.__kwdefaults__))
            return ("f", _code(obj.__code__), cells, defaults)
        if isinstance(obj, types.MethodType):
            return ("m", self.form(obj.__func__), self.form(obj.__self__))
        if isinstance(obj, types.BuiltinFunctionType):
            owner = obj.__self__
            return ("b", obj.__qualname__, None if isinstance(owner, types.ModuleType) else self.form(owner))
        if isinstance(obj, functools.partial):
            return ("p", self.form(obj.func), self.form(obj.args), self.form(obj.keywords))
        if isinstance(obj, type):
            if _static(obj):
                return ("T", _code(obj))
            # made at run time (a design with steps replaced): what it is, not which object
            namespace = {k: v for k, v in vars(obj).items() if not (k.startswith("__") and k.endswith("__"))}
            return ("C", obj.__qualname__, self.form(obj.__bases__), self.form(namespace))
        if isinstance(obj, types.ModuleType):
            return ("M", obj.__name__)
        if isinstance(obj, types.CoroutineType | types.GeneratorType):
            return ("c", *self.frames(obj))
        if isinstance(obj, random.Random):
            return ("r", self.form(obj.getstate()))
        fields = _fields(kind)
        if fields is None:
            if not hasattr(obj, "__dict__"):
                self.opaque.add(f"{kind.__module__}.{kind.__qualname__}")
                return ("?", next(_TOKENS))
            return ("o", self._type(kind), self.form(obj.__dict__))
        raw = [getattr(obj, name, _UNSET) for name in fields]
        values = self._each(raw)
        extra = getattr(obj, "__dict__", None)
        if extra is None and fields and _static(kind) and all(v is not _UNSET for v in raw):
            # every field set, no __dict__: the next instance takes the fast path
            getter = operator.attrgetter(*fields)
            _FAST[kind] = (_code(kind), getter if len(fields) > 1 else lambda o: (getter(o),))
        return ("o", self._type(kind), *values, self.form(extra) if extra else None)

    def _type(self, kind: type) -> object:
        return _code(kind) if _static(kind) else self.form(kind)

    def _cell(self, cell: types.CellType) -> object:
        try:
            return self.form(cell.cell_contents)
        except ValueError:  # a cell not yet filled
            return ("cell",)

    def frames(self, coroutine: Any) -> list[object]:
        """Where a coroutine is parked: each frame of its await chain, outermost first."""
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
            out.append((_code(frame.f_code), frame.f_lasti, self.form(frame.f_locals)))
            obj = obj.cr_await if hasattr(obj, "cr_await") else getattr(obj, "gi_yieldfrom", None)
        return out


def _footprint(fp: Any, canon: Canon) -> object:
    return "fp"  # what the running step touched: empty between steps, not state


_UNSET = ("unset",)
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


def digest(form: object) -> bytes:
    """16 bytes naming a canonical form."""
    return hashlib.blake2b(marshal.dumps(form, 0), digest_size=16).digest()  # type: ignore[arg-type]


def coroutine_frames(coroutine: Coroutine[Any, Any, None]) -> list[object]:
    """A coroutine's position alone (for tests)."""
    return Canon().frames(coroutine)
