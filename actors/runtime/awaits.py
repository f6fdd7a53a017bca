"""The one thing an actor may await, and how anything else is named when it does.

A scheduling point suspends the actor's coroutine with ``PARKED``: both
executors drive an actor's coroutine by hand and see every value it yields,
so anything else that reaches them (``trio.sleep(0)``'s checkpoint, a real
``trio.Lock``, ``trio.sleep_forever()``, any other awaitable) is an await of
something that is not the runtime, caught at the moment it happens. The
await is named by walking the chain of awaitables the actor is suspended in
(``cr_await``), down to the first one that is not the actor's own code.

Under the direct executor with no Trio loop running, Trio's primitives fail
before they yield ("must be called from async context"); such an error, when
it comes out of an awaited coroutine of the event-loop library, is the same
await and is named the same way (``foreign_await_raised``), so that both
executors report it alike.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine, Generator, Iterator
from types import FrameType
from typing import Any

#: what a coroutine suspended at a scheduling point yields to its executor
PARKED = object()

#: event-loop libraries whose errors, raised inside an awaited coroutine, mean the actor awaited them
_LOOPS = ("trio", "asyncio", "anyio", "curio")
_CO_ASYNC = 0x80 | 0x100 | 0x200  # CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR


class Suspend:
    """Awaited at a scheduling point: hands control back to the executor."""

    __slots__ = ()

    def __await__(self) -> Generator[object, None, None]:
        yield PARKED


SUSPEND = Suspend()


def close(coroutine: Coroutine[Any, Any, None]) -> None:
    """Unwind a coroutine parked at a point, or in whatever else it awaited."""
    try:
        coroutine.close()
    except RuntimeError:  # an awaitable that will not stop ("ignored GeneratorExit"): left to the GC
        pass


def _public(module: str) -> str:
    """``trio._core._run`` -> ``trio``: a module named as its users import it."""
    parts = module.split(".")
    kept = [p for i, p in enumerate(parts) if not any(q.startswith("_") for q in parts[: i + 1])]
    return ".".join(kept or parts[:1])


def _frame_name(frame: FrameType) -> str:
    code = frame.f_code
    owner = frame.f_locals.get("self") if code.co_argcount else None
    if owner is not None and code.co_varnames[:1] == ("self",):
        kind = type(owner)
        return f"{_public(kind.__module__)}.{kind.__qualname__}.{code.co_name}"
    return f"{_public(frame.f_globals.get('__name__', '?'))}.{code.co_qualname}"


def _where(frame: FrameType) -> str:
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _top(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", "")).partition(".")[0]


def _describe(chain: list[tuple[FrameType | None, str]]) -> str:
    """``what (at file:line)``: the first awaitable outside the actor's own package,
    awaited at the line of the last frame inside it."""
    home = _top(chain[0][0]) if chain[0][0] is not None else ""
    pairs = list(zip(chain, chain[1:], strict=False))
    (caller, _), (_, name) = next(
        ((c, a) for c, a in pairs if a[0] is None or _top(a[0]) != home), pairs[-1]
    )
    return f"{name} (at {_where(caller)})" if caller is not None else name


def _awaiting(coroutine: Coroutine[Any, Any, Any]) -> Iterator[tuple[FrameType | None, str]]:
    obj: Any = coroutine
    while obj is not None:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if frame is None:  # an awaitable written in C (a Future's iterator): named by its type
            yield None, f"{_public(type(obj).__module__)}.{type(obj).__qualname__}"
            return
        yield frame, _frame_name(frame)
        obj = obj.cr_await if hasattr(obj, "cr_await") else getattr(obj, "gi_yieldfrom", None)


def foreign_await(coroutine: Coroutine[Any, Any, Any], yielded: object) -> str:
    """Name what the suspended ``coroutine`` awaited, which yielded ``yielded``, not ``PARKED``."""
    chain = list(_awaiting(coroutine))
    if len(chain) < 2:  # the actor's own body yielded (a generator-based coroutine)
        return f"a bare yield of {yielded!r:.60}"
    return _describe(chain)


def foreign_await_raised(exc: BaseException) -> str | None:
    """If ``exc`` came out of an awaited event-loop coroutine, name it as ``foreign_await`` does.

    ``exc`` is caught by the executor that resumed the actor: its traceback
    starts in the executor's frame, then the actor's coroutines.
    """
    if not isinstance(exc, RuntimeError) or exc.__traceback__ is None:
        return None
    chain: list[tuple[FrameType | None, str]] = []
    tb = exc.__traceback__.tb_next  # below the executor's own frame
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_flags & _CO_ASYNC:
            chain.append((frame, _frame_name(frame)))
        tb = tb.tb_next
    if len(chain) < 2 or not any(_top(f) in _LOOPS for f, _ in chain if f is not None):
        return None
    return _describe(chain)
