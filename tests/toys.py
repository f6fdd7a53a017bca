"""Toy worlds for runtime tests: actors that record what they do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from actors import ActorContext, ActorSpec, Design, Fault, World
from actors.kvm.lockless import UnsafePrecheck
from mmu import PAGE_SIZE, Access, Model, SpinLock, Violation
from scenarios import Scenario


@attrs.define
class Fixed:
    """A strategy that answers from a list, then 0 (keep running)."""

    answers: list[int]
    asked: list[int] = attrs.field(factory=list)

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        n = len(runnable)
        self.asked.append(n)
        return self.answers.pop(0) if self.answers else 0


@attrs.define
class Observing:
    """A strategy that keeps every actor running (choice 0) and records each step's footprint."""

    accesses: list[tuple[int, Access]] = attrs.field(factory=list)  # (actor, what its step touched)

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        return 0

    def observe(self, actor: int, access: Access) -> None:
        self.accesses.append((actor, access))


def recorder(record: list[str], name: str, steps: int) -> Callable[[ActorContext], object]:
    async def actor(ctx: ActorContext) -> None:
        for i in range(steps):
            await ctx.point(f"{name}{i}")
            record.append(f"{name}{i}")
            ctx.note(f"{name} did {i}")

    return actor


def world(*actors: ActorSpec, oracles: dict | None = None) -> World:
    w = World(Model.build(), actors)
    w.oracles = oracles if oracles is not None else {}
    return w


def two_locks_abba() -> World:
    """Two actors taking two spinlocks in opposite orders."""
    a, b = SpinLock("A"), SpinLock("B")

    def taker(first: SpinLock, second: SpinLock) -> Callable[[ActorContext], object]:
        async def actor(ctx: ActorContext) -> None:
            await ctx.spin_lock(first)
            await ctx.spin_lock(second)
            ctx.spin_unlock(second)
            ctx.spin_unlock(first)

        return actor

    return world(ActorSpec("ab", taker(a, b)), ActorSpec("ba", taker(b, a)))


def back_and_forth() -> World:
    """A race that needs two preemptions between two actors that never block.

    ``a`` sets a flag and clears it; ``b`` looks at it twice. The oracle
    fires when ``b`` saw it set, then clear: only ``a0 b0 a1 b1`` does that,
    which preempts ``a`` after ``a0`` and then ``b`` after ``b0``.
    """
    flag: list[int] = [0]
    seen: list[int] = []

    async def a(ctx: ActorContext) -> None:
        for value in (1, 0):
            await ctx.point(f"a sets flag {value}")
            ctx.model.fp.write(("flag",))  # what the search's reduction sees
            flag[0] = value

    async def b(ctx: ActorContext) -> None:
        for i in range(2):
            await ctx.point(f"b{i} reads flag")
            ctx.model.fp.read(("flag",))
            seen.append(flag[0])

    def saw_it_flip(model: Model) -> Violation | None:
        return Violation("toy", "b saw the flag set, then clear") if seen == [1, 0] else None

    return world(ActorSpec("a", a), ActorSpec("b", b), oracles={"toy": saw_it_flip})


def stopped_late(steps: int = 12, late: int = 8) -> World:
    """Two workers that stop as soon as ``stop`` runs; a finding if both got far first.

    ``a`` and ``c`` each do up to ``steps`` steps, ending early once the
    stop flag is set; ``stop`` sets it. The oracle fires when the flag is set
    after both workers did at least ``late`` steps. A random walk picks
    ``stop`` within a few decisions, so its runs are short; a run in which
    ``stop`` has the lowest priority lasts ``steps`` decisions and more.
    """
    done = {"a": 0, "c": 0}
    stopped: list[bool] = [False]

    def worker(name: str) -> Callable[[ActorContext], object]:
        async def actor(ctx: ActorContext) -> None:
            for i in range(steps):
                await ctx.point(f"{name}{i}")
                if stopped[0]:
                    return
                done[name] += 1

        return actor

    async def stop(ctx: ActorContext) -> None:
        await ctx.point("stop")
        stopped[0] = True

    def both_got_far(model: Model) -> Violation | None:
        late_stop = stopped[0] and min(done.values()) >= late
        return Violation("toy", f"stopped after {done}") if late_stop else None

    specs = (ActorSpec("a", worker("a")), ActorSpec("stop", stop), ActorSpec("c", worker("c")))
    return world(*specs, oracles={"toy": both_got_far})


def message_passing(design: Design) -> World:
    """The lockless check against end's stores, alone: the message-passing pattern.

    An invalidation is in progress (``in_progress`` 1, ``seq`` 0, the fault's
    snapshot 0); ``qemu`` runs ``design``'s ``invalidate_range_end`` (``seq++;
    smp_wmb(); in_progress--`` under ``mmu_lock``), ``vcpu0`` its lockless
    check (``in_progress``, ``smp_rmb()``, ``seq``) with no lock, as POWER7's
    ``mmu_notifier_retry`` runs under the rmap lock alone. The check must say
    retry whatever it reads: either the invalidation is still in progress, or
    seq moved. It passes only if it sees the count drop but not seq's bump.
    """
    model = Model.build()
    model.kvm.in_progress = 1
    passed: list[bool] = []
    hva = model.kvm.memslot.gfn_to_hva(0)

    async def qemu(ctx: ActorContext) -> None:
        await ctx.point("mmu_notifier_invalidate_range_end")
        await design.invalidate_range_end(ctx, hva, hva + PAGE_SIZE)

    async def vcpu0(ctx: ActorContext) -> None:
        f = Fault(0, True, hva, mmu_seq=0)
        retry = await design.precheck(ctx, f)  # type: ignore[attr-defined]
        passed.append(not retry)

    def check_passed(model: Model) -> Violation | None:
        if passed == [True]:
            return Violation("stale_check", "the lockless check passed: it saw in_progress drop, not seq++")
        return None

    return World(model, (ActorSpec("vcpu0", vcpu0), ActorSpec("qemu", qemu)), oracles={"stale_check": check_passed})


def lockless(name: str, **barriers: bool) -> UnsafePrecheck:
    """A lockless check and an end with the barriers ``barriers`` says (default: both)."""
    return UnsafePrecheck(name, f"lockless check, {barriers or 'both barriers'}", **{"rmb": True, **barriers})


#: the check and end with both barriers, without one, or with end's stores swapped
BOTH = lockless("both")
NO_RMB = lockless("no_rmb", rmb=False)
NO_WMB = lockless("no_wmb", wmb=False)
SWAPPED = lockless("swapped", swapped=True)
#: message_passing as a scenario, for the search and the CLI (``tests/toys.py:message_passing``)
MESSAGE_PASSING = Scenario(
    "message_passing", "end's stores against a lockless check", "", message_passing,
    designs=("both", "no_rmb", "no_wmb", "swapped"),
)
