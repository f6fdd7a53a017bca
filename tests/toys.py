"""Toy worlds for runtime tests: actors that record what they do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from actors import ActorContext, ActorSpec, World
from mmu import Model, SpinLock


@attrs.define
class Fixed:
    """A strategy that answers from a list, then 0 (keep running)."""

    answers: list[int]
    asked: list[int] = attrs.field(factory=list)

    def choose(self, runnable: Sequence[int], current: int | None) -> int:
        n = len(runnable)
        self.asked.append(n)
        return self.answers.pop(0) if self.answers else 0


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
