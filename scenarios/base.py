"""What a scenario is: a named way to build a world for any design."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import attrs

from actors import DESIGNS, ActorContext, ActorSpec, Design, World
from mmu import Model


@attrs.frozen
class Scenario:
    """A race to hunt: ``build(design)`` makes a fresh world for one run.

    ``story`` is the question from the review thread the scenario answers,
    shown before its results. ``build`` takes the design name and keyword-only
    integer parameters with defaults, which the CLI exposes as ``-p NAME=N``;
    it raises ValueError for a parameter out of range.
    """

    name: str
    summary: str
    story: str
    build: Callable[..., World]
    designs: tuple[str, ...] = tuple(DESIGNS)

    def params(self) -> dict[str, int]:
        """Return the scenario's parameters and their defaults."""
        return {
            p.name: p.default
            for p in inspect.signature(self.build).parameters.values()
            if p.kind is p.KEYWORD_ONLY
        }


def full_world(model: Model, actors: tuple[ActorSpec, ...]) -> World:
    """A world judged by every oracle; the runtime judges the end-of-run ones
    once every non-daemon actor finished."""
    return World(model, actors)


@attrs.define(eq=False)
class Registered:
    """Set once the vcpu registered guest memory: a start signal for kernel
    threads (ksmd, kcompactd) that only act on a running VM; not model state."""

    done: bool = False


def registering(design: Design, registered: Registered) -> Design:
    """``design`` whose registration (``prepare``) also sets ``registered``."""

    async def prepare(self: Design, ctx: ActorContext) -> None:
        await design.prepare(ctx)
        registered.done = True

    return design.replace(prepare=prepare, name=design.name, summary=design.summary)
