"""A design with words of its own in struct kvm, read without the lock that orders them.

POWER7's fault path and H_ENTER decide under a per-page rmap lock, never
under ``mmu_lock`` (docs/model.md 1.5). This design makes that decision on
two words it adds to struct kvm instead of on seq and the count: ``busy``
(invalidations running) and ``gen`` (invalidations ended). Its callbacks
publish them under ``mmu_lock`` as ``kvm_mmu_invalidate_end`` does seq and
the count, ``gen++; smp_wmb(); busy--``; the check reads ``busy``, then
``smp_rmb()``, then ``gen``: the message-passing pattern, on words the
model has never heard of. The class says which words it adds (``words``)
and which it reads without their lock (``weak``); ``--memory weak`` then
puts those through weak memory, and ``kvm.read_once``, ``write_once``,
``smp_wmb``, ``smp_rmb`` are its accessors and barriers (docs/model.md 6.7).

``own_words`` has both barriers; ``own_words_no_wmb`` drops the
``smp_wmb``, so ``busy--`` may become visible before ``gen++``::

    mmurace explore race_remap --design examples/own_words.py:own_words_no_wmb --memory weak
    mmurace explore race_remap --design examples/own_words.py:own_words --memory weak --preemptions 2
"""

from collections.abc import Mapping
from typing import ClassVar

import attrs

from actors import ActorContext, Fault, Power7Hpt


@attrs.frozen
class OwnWords(Power7Hpt):
    """``power7_hpt`` whose lockless retry check reads two words of its own."""

    words: ClassVar[Mapping[str, int]] = {"busy": 0, "gen": 0}
    weak: ClassVar[tuple[str, ...]] = ("busy", "gen")
    #: the ``smp_wmb()`` between ``gen++`` and ``busy--``
    wmb: bool = True

    async def snapshot(self, ctx: ActorContext, f: Fault) -> None:
        """``mmu_seq = READ_ONCE(kvm->gen); smp_rmb()``."""
        kvm = ctx.model.kvm
        f.mmu_seq = kvm.read_once("gen", ctx.name)
        kvm.smp_rmb(ctx.name)

    async def begin(self, ctx: ActorContext, start: int, end: int) -> None:
        """in_progress++ as KVM does, ``smp_wmb()``, ``WRITE_ONCE(kvm->busy, busy + 1)``.

        KVM's own count goes up first and down last (``drop_count``): a fault that
        retried waits for in_progress to reach 0 before it faults again
        (``actors.kvm.refault``), so seeing ``busy`` up means it will wait, and
        once it may go on it finds ``busy`` at 0."""
        await super().begin(ctx, start, end)
        kvm = ctx.model.kvm
        kvm.smp_wmb(ctx.name)
        kvm.write_once("busy", kvm.read_once("busy", ctx.name) + 1, ctx.name)

    async def bump_seq(self, ctx: ActorContext, start: int, end: int) -> None:
        """seq++ as KVM does, and ``WRITE_ONCE(kvm->gen, gen + 1)``."""
        await super().bump_seq(ctx, start, end)
        kvm = ctx.model.kvm
        kvm.write_once("gen", kvm.read_once("gen", ctx.name) + 1, ctx.name)

    async def order_end(self, ctx: ActorContext, start: int, end: int) -> None:
        """``smp_wmb()``, unless the design drops it."""
        if self.wmb:
            ctx.model.kvm.smp_wmb(ctx.name)

    async def drop_count(self, ctx: ActorContext, start: int, end: int) -> None:
        """``WRITE_ONCE(kvm->busy, busy - 1); smp_wmb()``, then in_progress-- as KVM does."""
        kvm = ctx.model.kvm
        kvm.write_once("busy", kvm.read_once("busy", ctx.name) - 1, ctx.name)
        kvm.smp_wmb(ctx.name)
        await super().drop_count(ctx, start, end)

    async def notifier_retry(self, ctx: ActorContext, gfn: int, mmu_seq: int) -> bool:
        """Under the rmap lock of ``gfn``: ``READ_ONCE(kvm->busy)``, ``smp_rmb()``,
        ``READ_ONCE(kvm->gen) != mmu_seq``, each load a step of its own."""
        kvm = ctx.model.kvm
        await ctx.point("own check: busy")
        if kvm.read_once("busy", ctx.name):
            return True
        await ctx.point("own check: smp_rmb(), gen")
        kvm.smp_rmb(ctx.name)
        return kvm.read_once("gen", ctx.name) != mmu_seq


OWN_WORDS = OwnWords(
    "own_words",
    "power7_hpt whose lockless retry check reads busy and gen, two words of its own",
    base="power7_hpt",
)
OWN_WORDS_NO_WMB = OwnWords(
    "own_words_no_wmb",
    "own_words whose invalidate_range_end drops the smp_wmb between gen++ and busy--",
    wmb=False,
    base="power7_hpt",
)
