"""Small worlds for the search tests: few actors, few steps, every schedule runnable."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from actors import ActorContext, ActorSpec, Design, Executor, World
from actors.runtime.mailbox import Mailbox
from mmu import Model, SpinLock, Violation
from mmu.locks import RwSem
from mmurace import Config
from mmurace.explore import Exploration, Verdict, explore_direct
from scenarios import Scenario

from .toys import world


def exhausted(config: Config, **search: object) -> Exploration:
    """An unbounded search of ``config`` run to the end, on past any finding (the runs
    that end at one stop there, and the reductions must cope with them too)."""
    e = explore_direct(config, preemptions=None, limit=20_000, accept=lambda r: False, **search)  # type: ignore[arg-type]
    assert e.verdict is Verdict.EXHAUSTED
    return e


def toy_config(world_fn: Callable[[], World]) -> Config:
    scenario = Scenario("toy", "toy", "toy", lambda design: world_fn(), ("toy",))
    return Config(scenario, Design("toy", "toy"), executor=Executor.DIRECT)


def shared_counter(actors: int = 3, steps: int = 1) -> World:
    """Actors that read-modify-write a shared model field in two steps each, under no lock:
    lost updates make many distinct final states."""

    def worker(i: int) -> Callable[[ActorContext], object]:
        async def actor(ctx: ActorContext) -> None:
            for _ in range(steps):
                await ctx.point(f"w{i} read")
                ctx.model.fp.read(("kvm", "seq"))
                seen = ctx.model.kvm.seq
                await ctx.point(f"w{i} write")
                ctx.model.fp.write(("kvm", "seq"))
                ctx.model.kvm.seq = seen + i + 1

        return actor

    return world(*(ActorSpec(f"w{i}", worker(i)) for i in range(actors)))


def quiet_counter(actors: int = 2, steps: int = 2) -> World:
    """``shared_counter`` with steps that touch nothing around each read-modify-write (a
    marker step, as ``mmu_notifier_invalidate_range_start`` is): what the search may run
    alone, without the other actors' branches (a persistent set)."""

    def worker(i: int) -> Callable[[ActorContext], object]:
        async def actor(ctx: ActorContext) -> None:
            for _ in range(steps):
                await ctx.point(f"w{i} begin")
                await ctx.point(f"w{i} read")
                ctx.model.fp.read(("kvm", "seq"))
                seen = ctx.model.kvm.seq
                await ctx.point(f"w{i} think")
                await ctx.point(f"w{i} write")
                ctx.model.fp.write(("kvm", "seq"))
                ctx.model.kvm.seq = seen * 3 + i + 1

        return actor

    return world(*(ActorSpec(f"w{i}", worker(i)) for i in range(actors)))


def locked_counter(workers: int = 3, rounds: int = 1) -> World:
    lock = SpinLock("L")

    def worker(i: int) -> Callable[[ActorContext], object]:
        async def actor(ctx: ActorContext) -> None:
            for _ in range(rounds):
                await ctx.spin_lock(lock)
                ctx.model.fp.write(("kvm", "seq"))
                ctx.model.kvm.seq = ctx.model.kvm.seq * 2 + i
                await ctx.point(f"w{i} unlock")
                ctx.spin_unlock(lock)

        return actor

    return world(*(ActorSpec(f"w{i}", worker(i)) for i in range(workers)))




#: the words ``random_world``'s actors read and write (``Kvm.words``)
WORDS = ("x", "y", "z")


def random_program(seed: int, actors: int = 3, ops: int = 3, *, rich: bool = False) -> list[list[tuple[str, str]]]:
    """Each actor's operations, drawn from ``seed``: ``("read" | "write", word)``, and
    ``("lock" | "unlock", name)`` of two spinlocks the model did not make, nested and
    balanced (every lock taken is dropped before the actor ends). ``rich`` adds an
    rwsem of the world's own (``"S"`` for read or ``"W"`` for write, as the lock
    name), ``("trylock", name)``, ``("wait", word)``: a read after a guard, and
    ``("call", word)``: a request to a daemon that serves it in two steps."""
    rng = random.Random(seed)
    locks = "LMSW" if rich else "LM"
    programs = []
    for _ in range(actors):
        program: list[tuple[str, str]] = []
        held: list[str] = []
        for _ in range(ops):
            r = rng.random()
            if r < 0.2 and not held:
                held.append(rng.choice(locks))
                program.append(("lock", held[-1]))
            elif r < 0.35 and held:
                program.append(("unlock", held.pop()))
            elif rich and r < 0.5:
                op = "trylock" if r < 0.4 else "wait" if r < 0.45 else "call"
                program.append((op, rng.choice("LM") if op == "trylock" else rng.choice(WORDS)))
            else:
                program.append(("read" if r < 0.65 else "write", rng.choice(WORDS)))
        program += [("unlock", lock) for lock in reversed(held)]
        programs.append(program)
    return programs


def random_world(seed: int, actors: int = 3, ops: int = 3, *, rich: bool = False) -> World:
    """``random_program(seed)`` as a world: each read or write is a step of its own, each
    lock taken a point; a write stores what the actor has read so far, so that the
    order of steps shows in the words. Its locks are its own, as a design's may be."""
    spin = {"L": SpinLock("L"), "M": SpinLock("M")}
    sem = RwSem("S")
    box = Mailbox("box")

    async def server(ctx: ActorContext) -> None:
        kvm = ctx.model.kvm
        for n in itertools.count():
            request = await ctx.receive(box, f"serve ({n})")
            word, value = request.message
            read = kvm.read_once(word, ctx.name)
            await ctx.point(f"serve write ({n})")
            kvm.write_once(WORDS[n % len(WORDS)], (read + value) % 7, ctx.name)
            ctx.answer(request, read)

    async def lock(ctx: ActorContext, name: str) -> None:
        if name in spin:
            await ctx.spin_lock(spin[name])
        else:
            await (ctx.down_read if name == "S" else ctx.down_write)(sem)

    def unlock(ctx: ActorContext, name: str) -> None:
        if name in spin:
            ctx.spin_unlock(spin[name])
        else:
            (ctx.up_read if name == "S" else ctx.up_write)(sem)

    def actor_fn(i: int, program: list[tuple[str, str]]) -> Callable[[ActorContext], object]:
        async def actor(ctx: ActorContext) -> None:
            kvm, seen = ctx.model.kvm, i + 1
            for k, (op, arg) in enumerate(program):
                if op == "lock":
                    await lock(ctx, arg)
                elif op == "unlock":
                    unlock(ctx, arg)
                elif op == "call":  # the server answers with what it read, and writes a word
                    got = await ctx.call(box, (arg, seen), label=f"call {arg} ({k})", resume=f"back ({k})")
                    seen = (seen * 2 + got) % 7
                elif op == "trylock":
                    await ctx.point(f"trylock {arg} ({k})")
                    if ctx.try_spin_lock(spin[arg]):
                        seen = (seen * 5 + 1) % 7
                        ctx.spin_unlock(spin[arg])
                else:
                    # a guard is code no footprint sees: the step after it is dependent with all
                    guard = (lambda: True) if op == "wait" else None
                    await ctx.point(f"{op} {arg} ({k})", guard=guard)
                    if op == "write":
                        kvm.write_once(arg, seen, ctx.name)
                    else:
                        seen = (seen * 3 + kvm.read_once(arg, ctx.name)) % 7

        return actor

    programs = random_program(seed, actors, ops, rich=rich)
    specs = [ActorSpec(f"a{i}", actor_fn(i, p)) for i, p in enumerate(programs)]
    if any(op == "call" for p in programs for op, _ in p):
        specs.append(ActorSpec("server", server, daemon=True))
    w = world(*specs)
    w.model.kvm.words.update(dict.fromkeys(WORDS, 0))
    return w


def lost_update(actors: int = 2, steps: int = 2) -> World:
    """``shared_counter``, judged: a finding when the final count lost an update."""
    w = shared_counter(actors, steps)
    expected = sum(steps * (i + 1) for i in range(actors))

    def lost(model: Model) -> Violation | None:
        if model.ended and model.kvm.seq != expected:
            return Violation("lost_update", f"seq is {model.kvm.seq}, not {expected}")
        return None

    w.oracles = {"lost_update": lost}
    return w
