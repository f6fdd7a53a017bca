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
written in their iteration order (code must not depend on it; two equal sets
built in different orders may be written differently, and their states then
explored twice, which is sound; lockdep's are sorted). Objects the walk cannot see
into (written in C, other than the builtin containers) get a fresh token,
equal to nothing: such a state is never matched, which is sound but prunes
nothing; ``Canon.opaque`` names their types so that a test can insist on none.

What the walk cannot see, and a design must therefore not rely on: values
held only on a suspended frame's value stack (``f(model.x, await ctx.point())``
computes ``model.x`` before the point and keeps it where no walk reaches: write
it to a local first), module globals that change during a run, the attributes
of classes (a class its module names is written as its number; one made at run
time, a design with steps replaced, as its name, bases and namespace, read the
first time it is met), and anything outside the model and the actors' locals
(files, clocks, global random state).

The walk is a ``pickle`` of the state (``Canon``): the builtin containers are
walked in C, and every other object is written, through ``reducer_override``,
as its kind and its fields, so that the walk costs a Python call per object
of the model rather than per value: one dictionary look-up finds how its kind
is written (``Entry``), and its fields are read in C (``operator.attrgetter``).
Pickle's memo makes sharing explicit: an object met twice is written as a
reference to its first visit. Strings and tuples are memoised too, by
identity, so two equal states whose strings are shared differently may get
different digests: a state then explored twice, which is sound. Code objects
are numbered by identity, in the order first met (two equal code objects get
two numbers: sound too). The digest is a 128-bit XXH3 of what the pickler
wrote; it is meaningful within one process only.

``bench/fingerprint.py`` measures a fingerprint against the walk as it was
before these choices, on the same states.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import io
import itertools
import marshal
import operator
import pickle
import random
import sys
import threading
import types
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import xxhash

from mmu.footprint import Footprint

#: code objects (and classes), numbered in the order first met: id -> number, stable within a process
_NUMBERS: dict[int, int] = {}
#: what ``_NUMBERS`` numbers, kept alive so that no id is reused for another object
_NUMBERED: list[object] = []
#: held while a number is handed out (``_code``, ``number``)
_NUMBERING = threading.Lock()
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
    """The number of a code object or a class: by identity (code objects compare by value,
    which costs a walk of their contents at every lookup; two equal ones get two numbers,
    which is sound: their states are never matched)."""
    number = _NUMBERS.get(id(obj))
    if number is None:
        with _NUMBERING:  # two threads must not hand out one number twice
            number = _NUMBERS.get(id(obj))
            if number is None:
                number = _NUMBERS[id(obj)] = len(_NUMBERED)
                _NUMBERED.append(obj)
    return number


def _tag(*what: object) -> None:
    """What the pickler names as the constructor of every object it writes (never called)."""


#: how the instances of a class are written: (the reduce's arguments, naming the kind;
#: a function of the instance giving its fields, called as the pickler meets it)
Entry = tuple[tuple[object, ...], Callable[[Any], object]]


def _cell(cell: Any) -> object:
    try:
        return (cell.cell_contents,)
    except ValueError:  # a cell not yet filled
        return None


def _builtin(fn: Any) -> object:
    owner = fn.__self__
    return fn.__qualname__, None if isinstance(owner, types.ModuleType) else (owner,)


def _class(kind: type) -> object:
    form = _CLASSES.get(kind)
    if form is None:
        if _static(kind):
            form = _code(kind)
        else:  # made at run time (a design with steps replaced): what it is, not which object
            namespace = {k: v for k, v in vars(kind).items() if not (k.startswith("__") and k.endswith("__"))}
            form = kind.__qualname__, kind.__bases__, namespace
        if len(_CLASSES) >= _MADE:  # classes made at run time die with their world: forget them
            _CLASSES.clear()
        _CLASSES[kind] = form
    return form


#: how each class met is written (its namespace read once: it must not change while it lives)
_CLASSES: dict[type, object] = {}


def _footprint(fp: Any) -> object:
    return "fp"  # what the running step touched: empty between steps, not state


#: entries of the kinds every walk knows, and of the model's classes once met (static classes only)
_ENTRIES: dict[type, Entry] = {
    types.FunctionType: (
        ("f",), operator.attrgetter("__code__", "__closure__", "__defaults__", "__kwdefaults__"),
    ),
    types.CodeType: (("K",), _code),
    types.CellType: (("cell",), _cell),
    types.MethodType: (("m",), operator.attrgetter("__func__", "__self__")),
    types.BuiltinFunctionType: (("b",), _builtin),
    types.ModuleType: (("M",), operator.attrgetter("__name__")),
    functools.partial: (("p",), operator.attrgetter("func", "args", "keywords")),
    deque: (("q",), list),
    random.Random: (("r",), operator.methodcaller("getstate")),
    type: (("T",), _class),
    enum.EnumType: (("T",), _class),
}

#: the kinds above: their subclasses are written as they are
_BUILTIN = tuple(_ENTRIES)


class _Pickler(pickle.Pickler):
    """Writes the builtin containers itself, and asks ``Canon`` for everything else."""

    def __init__(self, file: io.BytesIO, reduce: Callable[[Any], object]) -> None:
        self.reducer_override = reduce  # type: ignore[method-assign,assignment]  # read by __init__
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
        special: dict[type, Callable[[Any], object]] | None = None,
        ends: frozenset[object] = frozenset(),
    ) -> None:
        #: code where an await chain is cut short: the runtime's own, whose locals are its caller's arguments
        self._ends = frozenset(_code(end) for end in ends)
        #: types met that the walk could not see into (their states never match)
        self.opaque: set[str] = set()
        coroutine = (("c",), self.position)
        #: how the kinds every walk knows, and this walk's specials, are written
        self._known: dict[type, Entry] = {
            types.CoroutineType: coroutine, types.GeneratorType: coroutine,
            Frames: (("c",), lambda f: self.position(f.coroutine)),
            **{
                kind: (("S", _code(kind)), fn)
                for kind, fn in {Footprint: _footprint, **(special or {})}.items()},
        }
        #: how each kind met is written: the above, the model's classes, and the classes made
        #: at run time that this walk met (at most ``_MADE``: they die with their world)
        self._entries: dict[type, Entry] = {**_ENTRIES, **self._known}
        self._made = 0
        self._out = io.BytesIO()
        self._pickler = _Pickler(self._out, self._reducer())

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
        return self.form(coroutine)

    def position(self, coroutine: Any, out: list[object] | None = None) -> list[object]:
        """Where a coroutine is parked, to be written in a ``form`` of this walk, appended to
        ``out``: each frame of its await chain, outermost first, as three items (its code's
        number, its offset, its locals), then what ends the chain (one item: the number of
        code in ``ends``, "done", or an opaque token)."""
        if out is None:
            out = []
        append = out.append
        ends, numbers = self._ends, _NUMBERS
        coroutine_type = types.CoroutineType
        obj = coroutine
        while obj is not None:
            if type(obj) is coroutine_type:
                frame = obj.cr_frame
                below = obj.cr_await
            elif type(obj) is types.GeneratorType:
                frame, below = obj.gi_frame, obj.gi_yieldfrom
            else:
                frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
                below = obj.cr_await if hasattr(obj, "cr_await") else getattr(obj, "gi_yieldfrom", None)
            if frame is None:
                if isinstance(obj, types.CoroutineType | types.GeneratorType):
                    append("done")  # finished (or never started: it has no frame either)
                else:
                    self.opaque.add(type(obj).__qualname__)
                    append(("?", next(_TOKENS)))
                break
            code = frame.f_code
            code_number = numbers.get(id(code))
            if code_number is None:
                code_number = _code(code)
            if code_number in ends:
                append(code_number)
                break
            append(code_number)
            append(frame.f_lasti)
            append(frame.f_locals)
            obj = below
        return out

    def _reducer(self) -> Callable[[Any], object]:
        """The pickler's ``reducer_override``: how it writes ``obj``, as ``(_tag, (kind, ...),
        fields)``, the fields after the object is memoised, so that a cycle through it is a
        reference. One dictionary look-up names the kind's entry; the fields are mostly read
        in C (``operator.attrgetter``)."""
        entries = self._entries
        first = self._first
        tag = _tag

        def reduce(obj: Any) -> object:
            entry = entries.get(type(obj))
            if entry is None or obj is tag:
                return first(obj)
            try:
                return tag, entry[0], entry[1](obj)
            except AttributeError:  # a slot left unset: field by field
                return first(obj)

        return reduce

    def _first(self, obj: Any) -> object:
        """An object of a kind without an entry (or one whose entry cannot read it): written
        field by field, and its kind given an entry if it is a class of the model's."""
        if obj is _tag:
            return NotImplemented  # written by name, as pickle writes any function
        kind = type(obj)
        if isinstance(obj, enum.Enum):
            entry: Entry = (("e", self._type(kind)), operator.attrgetter("_name_"))
            self._remember(kind, entry)
            return _tag, entry[0], entry[1](obj)
        if isinstance(obj, type):  # of a metaclass not met yet
            self._remember(kind, _ENTRIES[type])
            return _tag, ("T",), _class(obj)
        for known in _BUILTIN:  # a subclass of a kind every walk knows
            if isinstance(obj, known):
                entry = _ENTRIES[known]
                return _tag, entry[0], entry[1](obj)
        fields = _fields(kind)
        if fields is None:
            if not hasattr(obj, "__dict__"):
                self.opaque.add(f"{kind.__module__}.{kind.__qualname__}")
                return _tag, ("?", next(_TOKENS))
            entry = (("o", self._type(kind)), operator.attrgetter("__dict__"))
            self._remember(kind, entry)  # the next instance takes the fast path
            return _tag, entry[0], obj.__dict__
        raw = tuple(getattr(obj, name, _UNSET) for name in fields)
        extra = getattr(obj, "__dict__", None)
        if fields and all(v is not _UNSET for v in raw):
            # every field set: the next instance takes the fast path (written as this one)
            getter = operator.attrgetter(*fields)
            get = getter if len(fields) > 1 else lambda o: (getter(o),)
            args = (self._type(kind),)
            if extra is None:
                entry = (args, get)
                raw_form: object = raw
            else:
                entry = (args, lambda o: (*get(o), o.__dict__ or None))
                raw_form = (*raw, extra or None)
            self._remember(kind, entry)
            return _tag, args, raw_form
        return _tag, ("o", self._type(kind)), (raw, extra or None)

    def _remember(self, kind: type, entry: Entry) -> None:
        """The next instance of ``kind`` takes the fast path: in every walk if ``kind`` is
        a class its module names, in this one (until ``_MADE`` such) if it was made at run time."""
        if _static(kind):
            _ENTRIES[kind] = entry
        elif self._made < _MADE:
            self._made += 1
        else:  # forget the classes of worlds gone (in place: the reducer holds the table)
            self._entries.clear()
            self._entries.update({**_ENTRIES, **self._known})
            self._made = 1
        self._entries[kind] = entry

    def _type(self, kind: type) -> object:
        return _code(kind) if _static(kind) else kind


@dataclasses.dataclass(frozen=True)
class Frames:
    """A coroutine, to be written as its position: each frame of its await chain."""

    coroutine: Any


_UNSET = ("unset",)
#: classes made at run time a walk keeps entries for, before it forgets them all
_MADE = 256
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
    try:
        key: object = tuple(functions.items())
        return _PLAIN[key]
    except TypeError:  # a callable that cannot be a key: not kept
        key = None
    except KeyError:
        pass
    out: list[object] = []
    for name, fn in functions.items():
        if type(fn) is not types.FunctionType or fn.__closure__ or fn.__defaults__ or fn.__kwdefaults__:
            out = []
            break
        out += (name, _code(fn.__code__))
    plain = tuple(out) if out or not functions else None
    if key is not None and plain is not None:  # functions without state, the same in every world
        if len(_PLAIN) >= _MADE:
            _PLAIN.clear()
        _PLAIN[key] = plain
    return plain


#: ``plain_functions``' answers, by the functions asked about
_PLAIN: dict[object, tuple[object, ...]] = {}


def number(value: tuple[object, ...]) -> int:
    """A number standing for ``value``, a tuple of constants (str, int): equal values get the
    same number within this process, so a walk may write it instead of the value."""
    found = _VALUES.get(value)
    if found is None:
        with _NUMBERING:
            found = _VALUES.setdefault(value, len(_VALUES))
    return found


#: ``number``'s answers
_VALUES: dict[tuple[object, ...], int] = {}


def digest(form: object) -> bytes:
    """16 bytes naming a canonical form (bytes, or a tuple of them): a 128-bit XXH3, a
    hash for tables, not for adversaries (a state is never chosen to collide)."""
    data = form if type(form) is bytes else marshal.dumps(form, 0)  # type: ignore[arg-type]
    return xxhash.xxh3_128_digest(data)


def coroutine_frames(coroutine: Coroutine[Any, Any, None]) -> bytes:
    """A coroutine's position alone (for tests)."""
    return Canon().frames(coroutine)
