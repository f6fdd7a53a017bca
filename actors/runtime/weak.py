"""Weak memory in a run: the actors that make stores commit and become visible.

With ``--memory weak`` (``mmu.weak``), a store waits in its CPU's store
buffer, and a committed store reaches each other CPU when it becomes
visible to it. Both are steps of *memory actors*, daemons the world gets
one of per (CPU, location) and kind, each runnable exactly when it has
something to do: so the strategies choose when stores move as they choose
who runs, the schedule string records it (a replay repeats it byte for
byte), and the search explores it, its partial-order reduction reading
their footprints like any other step's. Their steps are drawn in one
column, ``memory``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mmu import WeakMemory
from mmu.hpt import is_hpte_dword
from mmu.kvm import WEAK_FIELDS

from .context import IDLE, ActorContext, ActorFn
from .world import ActorSpec, World

#: the column memory actors' steps are drawn in, and how their names start
MEMORY = "memory"


def is_memory_actor(name: str) -> bool:
    """Whether ``name`` is a memory actor's (drawn in the ``memory`` column)."""
    return name.startswith(MEMORY + "(")


def _committer(memory: WeakMemory, cpu: str, loc: str) -> ActorFn:
    async def commit(ctx: ActorContext) -> None:
        while True:
            await ctx.point(
                f"{cpu}'s store to {loc} reaches memory",
                guard=lambda: memory.committable(cpu, loc),
                waits_for=f"{IDLE}{cpu}'s store buffer",
            )
            ctx.relabel(memory.commit(cpu, loc))

    return commit


def _propagator(memory: WeakMemory, cpu: str, loc: str) -> ActorFn:
    async def propagate(ctx: ActorContext) -> None:
        while True:
            await ctx.point(
                f"a store to {loc} becomes visible to {cpu}",
                guard=lambda: memory.visible(cpu, loc),
                waits_for=f"{IDLE}a store to {loc}",
            )
            ctx.relabel(memory.propagate(cpu, loc))

    return propagate


def memory_actors(memory: WeakMemory) -> tuple[ActorSpec, ...]:
    """The daemons that move ``memory``'s stores, for each CPU and location."""
    kinds: tuple[tuple[str, Callable[[WeakMemory, str, str], ActorFn]], ...] = (
        ("commit", _committer),
        ("see", _propagator),
    )
    return tuple(
        ActorSpec(f"{MEMORY}({kind} {cpu} {loc})", make(memory, cpu, loc), daemon=True)
        for kind, make in kinds
        for cpu in memory.cpus
        for loc in memory.locations
        if kind == "commit" or loc not in memory.walked
    )


def weaken(world: World, cells: Mapping[str, int] | None = None) -> World:
    """``world`` with weak memory for the model's lockless fields (``mmu.kvm.WEAK_FIELDS``)
    and for ``cells``, the words its design reads without their lock (a location and
    its initial value: ``Design.weak_cells``): every actor a CPU."""
    model = world.model
    cpus = tuple(a.name for a in world.actors)
    extra = dict(cells or {})
    locations = WEAK_FIELDS + tuple(loc for loc in extra if loc not in WEAK_FIELDS)
    walked = frozenset(loc for loc in extra if is_hpte_dword(loc))
    memory = WeakMemory(model.kvm, locations, cpus, model.log, model.fp, cells=extra, walked=walked)
    model.kvm.memory = memory
    world.actors = world.actors + memory_actors(memory)
    world.weak = True
    return world
