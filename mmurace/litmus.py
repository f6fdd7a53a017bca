"""A race found in weak memory, as a litmus test of the Linux-kernel memory model.

``--litmus FILE`` writes the ordering race of a violating weak-memory run in
the C syntax of tools/memory-model (``C name``, an initial-state block, one
``P<n>`` function per CPU with ``READ_ONCE``/``WRITE_ONCE``/``smp_*``, and an
``exists`` clause), so that a reviewer can confirm with herd7 that the
kernel's model allows the outcome too::

    herd7 -conf linux-kernel.cfg FILE

The test is cut from the memory operations the run issued (``WeakMemory.ops``):

- the *reader* is the CPU that issued the run's last load; its part is its
  loads and barriers since it last took a lock (a lock acquisition made it
  see every committed store, so nothing before it matters);
- the *writers* are the other CPUs that stored to what the reader loaded:
  each one's stores and barriers in the lock section of its last such store
  before the reader's last load (the read of a read-modify-write gives the
  location's value before it: the initial state);
- ``exists`` is what the reader's loads returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from actors import RunResult, Runtime, Schedule
from mmu import Memory
from mmu.weak import Op

from .api import Config
from .strategies import Replay


class NoOrderingRace(ValueError):
    """Raised by ``litmus`` for a run that has no lockless load to cut a test from."""


def ops_of(config: Config, schedule: Schedule) -> list[Op]:
    """The memory operations of the run ``schedule`` makes, replayed."""
    if config.memory is not Memory.WEAK:
        raise NoOrderingRace("a litmus test is cut from a run in weak memory (--memory weak)")
    world = config.world()
    Runtime(config.max_steps).run_direct(world, Replay(schedule))
    memory = world.model.kvm.memory
    assert memory is not None, "a weak world without its memory"
    return list(memory.ops)


def _since_lock(ops: Sequence[Op], cpu: str, until: int) -> list[Op]:
    """``cpu``'s operations after its last lock acquisition before time ``until``, up to it."""
    mine = [op for op in ops if op.cpu == cpu and op.time <= until]
    starts = [i for i, op in enumerate(mine) if op.kind == "acquire" and op.lock]
    return mine[starts[-1] + 1 :] if starts else mine


_BARRIER = {"wmb": "smp_wmb();", "rmb": "smp_rmb();", "mb": "smp_mb();", "acquire": "smp_rmb();"}


def _fences(ops: Sequence[Op]) -> list[Op]:
    """``ops`` without leading or trailing barriers (they order nothing in the test)."""
    out = list(ops)
    while out and out[0].kind not in ("load", "store"):
        out.pop(0)
    while out and out[-1].kind not in ("load", "store"):
        out.pop()
    return out


def _rmw_reads(ops: Sequence[Op]) -> set[int]:
    """The times of the loads a read-modify-write makes (its CPU's next operation stores
    to the same location): an update under a lock, not a check."""
    times: set[int] = set()
    last: dict[str, Op] = {}
    for op in ops:
        prev = last.get(op.cpu)
        if prev is not None and prev.kind == "load" and op.kind == "store" and op.loc == prev.loc:
            times.add(prev.time)
        last[op.cpu] = op
    return times


def litmus(name: str, ops: Sequence[Op], comment: str = "") -> str:
    """The litmus test of the last lockless check in ``ops``.

    Raises:
        NoOrderingRace: no CPU loaded a weak location, or none stored to what it loaded.
    """
    rmw = _rmw_reads(ops)
    loads = [op for op in ops if op.kind == "load" and op.time not in rmw]
    if not loads:
        raise NoOrderingRace("the run loaded no weak location")
    reader, last = loads[-1].cpu, loads[-1].time
    section = _since_lock(ops, reader, last)
    checks = [op for op in section if op.kind not in ("store", "release", "unlock") and op.time not in rmw]
    mine = _fences(checks)
    read = [op for op in mine if op.kind == "load"]
    locations = list(dict.fromkeys(op.loc for op in read))
    procs: list[tuple[str, list[Op]]] = []
    init: dict[str, int] = {}
    for cpu in dict.fromkeys(op.cpu for op in ops):
        stores = [op for op in ops if op.cpu == cpu != reader and op.kind == "store" and op.loc in locations]
        stores = [op for op in stores if op.time < last]
        if not stores:
            continue
        section = _since_lock(ops, cpu, stores[-1].time)
        for op in section:  # a read-modify-write's read: the value before the store
            if op.kind == "load" and op.loc in locations:
                init.setdefault(op.loc, op.value)
        kept = [op for op in section if op.kind != "load" and (op.kind != "store" or op.loc in locations)]
        body = _fences(kept)
        procs.append((cpu, body))
    if not procs:
        raise NoOrderingRace(f"no CPU stored to what {reader} loaded")
    for op in read:
        init.setdefault(op.loc, op.value)
    procs.append((reader, mine))
    return _render(name, locations, init, procs, comment)


def _render(
    name: str, locations: list[str], init: dict[str, int], procs: list[tuple[str, list[Op]]], comment: str
) -> str:
    params = ", ".join(f"int *{loc}" for loc in locations)
    lines = [f"C {name}", "", "(*", " * Result: Sometimes", " *"]
    lines += [f" * {text}".rstrip() for text in comment.splitlines()]
    lines += [" *", " * " + "; ".join(f"P{i} is {cpu}" for i, (cpu, _) in enumerate(procs)), " *)", ""]
    lines += ["{"] + [f"\tint {loc} = {init[loc]};" for loc in locations] + ["}", ""]
    exists: list[str] = []
    for i, (_, body) in enumerate(procs):
        lines += [f"P{i}({params})", "{"]
        registers = [op for op in body if op.kind == "load"]
        lines += [f"\tint r{n};" for n in range(len(registers))]
        if registers:
            lines.append("")
        n = 0
        for op in body:
            if op.kind == "store":
                lines.append(f"\tWRITE_ONCE(*{op.loc}, {op.value});")
            elif op.kind == "load":
                lines.append(f"\tr{n} = READ_ONCE(*{op.loc});")
                exists.append(f"{i}:r{n}={op.value}")
                n += 1
            elif op.kind == "release":
                lines.append(f"\tsmp_wmb(); /* spin_unlock({op.lock}) */")
            elif op.kind == "unlock":
                lines.append(f"\t/* unlock {op.lock}: a plain store, no barrier */")
            else:
                lines.append(f"\t{_BARRIER[op.kind]}")
        lines += ["}", ""]
    lines.append("exists (" + " /\\ ".join(exists) + ")")
    return "\n".join(lines) + "\n"


def write_litmus(config: Config, result: RunResult) -> str:
    """The litmus test of ``result``, a violating run of ``config`` in weak memory.

    Raises:
        NoOrderingRace: not a weak-memory run, or one without a lockless check.
    """
    comment = (
        "Found by mmurace in weak memory, the stores moved by its memory actors:\n"
        f"{result.finding.oracle if result.finding else 'no finding'} in {config.describe()}\n"
        f"schedule {config.schedule_string(result.schedule)}"
    )
    name = f"{config.scenario.name}+{config.design.name}"
    return litmus(name, ops_of(config, result.schedule), comment)
