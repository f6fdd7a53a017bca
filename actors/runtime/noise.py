"""Unrelated work around the racing steps, to bury a race for search benchmarks.

Real vcpus and VMMs do far more than the few steps that race: the guest
touches its other pages, QEMU runs its device models. Such steps touch
nothing the race touches (each writes an object of its own actor), so they
change no outcome; they only make the racing window a small part of the run,
which is what separates a search that finds deep races from one that finds
races near the start.
"""

from __future__ import annotations

from .context import ActorContext, ActorFn


def buried(fn: ActorFn, steps: int, what: str) -> ActorFn:
    """``fn`` with ``steps`` unrelated steps, half before it and half after."""
    if steps == 0:
        return fn

    async def actor(ctx: ActorContext) -> None:
        before = steps // 2
        for i in range(steps):
            if i == before:
                await fn(ctx)
            await ctx.point(what)
            ctx.model.fp.write(("own work", ctx.name, i))
        if before == steps:
            await fn(ctx)

    return actor
