"""A design: everything KVM does that a developer might change, as named steps.

A design is registration (``prepare``), the fault path (``fault``), KVM's
MMU-notifier callbacks (``invalidate_range_start``/``_end``, and a 2011
host's ``change_pte`` and ``invalidate_page``) and the dirty-log ioctls,
each an ``async`` method built from smaller named steps.
A variant changes one step and keeps the rest, in either of two ways::

    async def recheck(design, ctx, f):          # a step takes (design, ctx, ...)
        return ctx.model.kvm.check_in_progress(ctx.name)   # forgets the seq check

    in_progress_only = DESIGNS["seq_retry"].replace(recheck=recheck)

    class InProgressOnly(SeqRetry):
        async def recheck(self, ctx, f):
            return ctx.model.kvm.check_in_progress(ctx.name)

Every step is a coroutine function: awaiting ``ctx.point(label)`` inside one
splits it into two scheduling steps; a step that awaits nothing runs inside
the step of its caller. Steps talk to the model only through its methods,
which assert the lock the kernel would hold and record what they touch, so
a user's design is explored exactly as a catalog one is. Which kernel
function each step stands for: docs/model.md section 1.2 (fault path) and 1.3
(notifier callbacks).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

from mmu import PAGE_SIZE, HostPte, Model

from ..runtime.context import ActorContext

#: what marks a method as a step a variant may replace
_STEP = "__mmurace_step__"


def step(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a method of a design as a named step (``Design.replace`` accepts it)."""
    setattr(fn, _STEP, True)
    return fn


@attrs.define
class Fault:
    """One guest fault as it goes through the steps of a fault path.

    Steps read and fill these fields: ``snapshot`` sets ``mmu_seq``, ``resolve``
    sets ``pfn`` and ``writable``, ``recheck``'s answer lands in ``stale``.
    """

    gfn: int
    write: bool
    hva: int
    attempt: int = 0  # 1 for the first try, +1 for each retry
    mmu_seq: int | None = None  # the seq snapshot (F2)
    pfn: int | None = None  # the page gup returned, with a reference held
    writable: bool = False  # whether the leaf may be writable (gup's map_writable)
    size: int = PAGE_SIZE  # the page size of the leaf to install
    stale: bool = False  # the recheck said: retry
    waits: bool = False  # the next attempt waits for the invalidation in progress to end
    #: whether ``pfn`` carries a reference for ``release`` to drop: False for device
    #: memory (``kvm_try_get_pfn`` finds no refcounted page)
    refcounted: bool = True


@attrs.frozen
class Design:
    """What KVM does, as named steps; subclass it or ``replace`` steps to make a variant.

    ``base`` names the catalog design a variant derives from (scenarios judge
    a variant wherever its base applies); None for a catalog design, or for
    a design of one's own that applies anywhere.
    """

    name: str
    summary: str
    base: str | None = None

    #: words this design adds to ``struct kvm`` (``Kvm.words``), each with its value
    #: when the world is built; its steps read and write them with ``kvm.read_once``,
    #: ``write_once``, ``smp_store_release``, ``smp_load_acquire`` (docs/model.md 6.7)
    words: ClassVar[Mapping[str, int]] = {}
    #: which of ``words`` it reads without the lock that orders their writers: with
    #: ``--memory weak`` they go through weak memory, ordered only by ``kvm.smp_wmb``,
    #: ``smp_rmb``, ``smp_mb``, releases and acquires
    weak: ClassVar[tuple[str, ...]] = ()

    @property
    def family(self) -> str:
        """The catalog design this one is, or varies."""
        return self.base or self.name

    @classmethod
    def steps(cls) -> tuple[str, ...]:
        """Every named step of this kind of design, in the order they are defined."""
        names: dict[str, None] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if getattr(value, _STEP, False):
                    names[name] = None
        return tuple(names)

    def replace(self, *, name: str | None = None, summary: str | None = None, **steps: Any) -> Design:
        """A copy of this design with some steps replaced by functions of ``(design, ctx, ...)``.

        The copy is named ``NAME+STEP+...`` and varies this design (``base``)
        unless ``name``, ``summary`` say otherwise.

        Raises:
            TypeError: a name that is not a step, a step that is not an async
                function, or one that takes other arguments than the step it replaces.
        """
        known = self.steps()
        for key, fn in steps.items():
            if key not in known:
                kind = type(self).__name__
                raise TypeError(f"{key!r} is not a step of {kind} (its steps: {', '.join(known)})")
            check_step(type(self), key, fn)
        namespace: dict[str, Any] = {key: step(fn) for key, fn in steps.items()}
        namespace["__slots__"] = ()
        variant = type(type(self).__name__, (type(self),), namespace)
        fields = {a.name: getattr(self, a.name) for a in attrs.fields(type(self))}
        fields["name"] = name or "+".join((self.name, *steps))
        fields["summary"] = summary or f"{self.name} with {', '.join(steps)} replaced"
        fields["base"] = self.family
        return variant(**fields)  # type: ignore[no-any-return]

    def weak_cells(self, model: Model) -> dict[str, int]:
        """The words this design reads without the lock that orders their writers, beyond
        ``seq`` and ``in_progress``, each with its value in ``model`` now: with
        ``--memory weak`` they go through weak memory (docs/model.md 6.6): the
        words it marks ``weak``."""
        return {name: model.kvm.words.get(name, self.words[name]) for name in self.weak}

    # ---- registration ----

    @step
    async def prepare(self, ctx: ActorContext) -> None:
        """At memslot registration (``kvm_arch_prepare_memory_region``), before the guest runs."""

    # ---- the fault path ----

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """Resolve a guest fault on ``gfn`` (a missing or read-only leaf for a write);
        False fails KVM_RUN with -EFAULT."""
        raise NotImplementedError(f"design {self.name!r} has no fault step")

    # ---- KVM's MMU-notifier callbacks (kvm_mmu_notifier_*), each one mmu_lock section ----

    @step
    async def invalidate_range_start(self, ctx: ActorContext, start: int, end: int) -> None:
        """``kvm_mmu_notifier_invalidate_range_start``: in_progress++ and the zap in one
        ``mmu_lock`` section (R2), zapped and flushed before it returns (R4)."""
        kvm = ctx.model.kvm
        await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: invalidate_begin, unmap, flush")
        await self.begin(ctx, start, end)
        zapped = await self.zap(ctx, start, end)
        await self.flush(ctx, start, end, zapped)
        ctx.spin_unlock(kvm.mmu_lock)

    @step
    async def begin(self, ctx: ActorContext, start: int, end: int) -> None:
        """``kvm_mmu_invalidate_begin``: in_progress++."""
        ctx.model.kvm.invalidate_begin(ctx.name)

    @step
    async def zap(self, ctx: ActorContext, start: int, end: int) -> int:
        """``kvm_unmap_gfn_range``: drop every leaf mapping [start, end); returns how many.

        Between two leaves it may drop and retake ``mmu_lock``, as
        ``tdp_mmu_zap_leafs``/``__kvm_rmap_zap_gfn_range`` do when the range may
        block (``cond_resched_rwlock_write``); ``in_progress`` is already raised,
        so a fault that takes the lock meanwhile must retry."""
        kvm = ctx.model.kvm
        leaves = kvm.leaves_in(start, end, ctx.name)
        for i, gfn in enumerate(leaves):
            if i:
                await self.cond_resched(ctx)
            kvm.zap_leaf(gfn, ctx.name)
        return len(leaves)

    @step
    async def cond_resched(self, ctx: ActorContext) -> None:
        """``cond_resched_rwlock_write(&kvm->mmu_lock)`` inside a zap: flush what was
        zapped so far before letting others take the lock (``tdp_mmu_iter_cond_resched``
        with a flush pending, a835429cda91), retake it. Without that flush another
        invalidation of the range finds no leaf, flushes nothing, and its host frees
        a page some vcpu's TLB still maps."""
        kvm = ctx.model.kvm
        kvm.flush_remote_tlbs(ctx.name)
        ctx.spin_unlock(kvm.mmu_lock)
        await ctx.spin_lock(kvm.mmu_lock, "cond_resched_rwlock_write(mmu_lock)")

    @step
    async def flush(self, ctx: ActorContext, start: int, end: int, zapped: int) -> None:
        """``kvm_flush_remote_tlbs`` when anything was zapped ("we've to flush the tlb
        before the pages can be freed"): without it a vcpu's TLB keeps the zapped
        translations (R4)."""
        if zapped:
            ctx.model.kvm.flush_remote_tlbs(ctx.name)

    @step
    async def invalidate_range_end(self, ctx: ActorContext, start: int, end: int) -> None:
        """``kvm_mmu_notifier_invalidate_range_end``: seq++ before in_progress-- (R3), under mmu_lock."""
        kvm = ctx.model.kvm
        await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: kvm_mmu_invalidate_end")
        await self.bump_seq(ctx, start, end)
        await self.order_end(ctx, start, end)
        await self.drop_count(ctx, start, end)
        ctx.spin_unlock(kvm.mmu_lock)

    @step
    async def order_end(self, ctx: ActorContext, start: int, end: int) -> None:
        """``smp_wmb()`` between seq++ and in_progress-- (R3): a checker that reads the
        count and then seq without ``mmu_lock`` sees the new seq once it sees the count
        drop. Nothing in SC; an ordering of the store buffer in weak memory."""
        ctx.model.kvm.smp_wmb(ctx.name)

    @step
    async def bump_seq(self, ctx: ActorContext, start: int, end: int) -> None:
        """``kvm->mmu_invalidate_seq++``."""
        ctx.model.kvm.inc_seq(ctx.name)

    @step
    async def drop_count(self, ctx: ActorContext, start: int, end: int) -> None:
        """``kvm->mmu_invalidate_in_progress--``."""
        ctx.model.kvm.dec_in_progress(ctx.name)

    # ---- a 2011 host's per-page callbacks (docs/model.md 1.3) ----
    # Called with the host's page-table lock held, after the pte changed, with
    # no start/end around them: nothing raises in_progress, so seq++ in the same
    # mmu_lock section as the leaf change is what makes a fault that resolved
    # the old page retry.

    @step
    async def change_pte(self, ctx: ActorContext, hva: int, pte: HostPte) -> None:
        """``kvm_mmu_notifier_change_pte`` (virt/kvm/kvm_main.c, v2.6.32-v6.9) as a 2011
        host calls it, from ``set_pte_at_notify`` (KSM, COW) once the pte at ``hva``
        is ``pte``: ``spin_lock(mmu_lock); mmu_notifier_seq++;
        kvm_set_spte_hva(kvm, hva, pte); spin_unlock``. From v3.6 it ran inside
        start/end and found nothing left to change; v6.10 removed it (997308f9ae72)."""
        kvm = ctx.model.kvm
        await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: kvm_mmu_notifier_change_pte")
        await self.bump_seq(ctx, hva, hva + PAGE_SIZE)
        changed = await self.set_spte_hva(ctx, hva, pte)
        await self.flush(ctx, hva, hva + PAGE_SIZE, changed)
        ctx.spin_unlock(kvm.mmu_lock)

    @step
    async def set_spte_hva(self, ctx: ActorContext, hva: int, pte: HostPte) -> int:
        """``kvm_set_spte_hva`` as x86 has it (arch/x86/kvm/mmu.c ``kvm_set_pte_rmapp``,
        v2.6.32-v6.9): each leaf mapping ``hva`` is dropped if the new pte is writable
        (COW), else repointed read-only to the new pfn (KSM), so the guest goes on
        reading without a fault. Returns how many leaves changed (the flush in
        ``kvm_set_pte_rmapp``). PPC HV only unmaps: ``actors.kvm.ppc_hv_set_spte_hva``.

        XX: a huge leaf is zapped; v3.x x86 repointed a large spte as well (KSM
        splits a huge page before it merges, so it does not happen there).
        """
        kvm = ctx.model.kvm
        leaves = kvm.leaves_in(hva, hva + PAGE_SIZE, ctx.name)
        for gfn in leaves:
            if pte.writable or kvm.sptes[gfn].page_size != PAGE_SIZE:
                kvm.zap_leaf(gfn, ctx.name)
            else:
                kvm.repoint_leaf(gfn, pte.pfn, ctx.name)
        return len(leaves)

    @step
    async def invalidate_page(self, ctx: ActorContext, hva: int) -> None:
        """``kvm_mmu_notifier_invalidate_page`` (virt/kvm/kvm_main.c, v2.6.27-v4.12) as a
        2011 host calls it, from ``try_to_unmap_one`` once the pte at ``hva`` is
        cleared, the page still held: ``spin_lock(mmu_lock); mmu_notifier_seq++;
        kvm_unmap_hva; flush; spin_unlock`` ("Increasing the sequence after the
        spin_unlock would be unsafe because the kvm page fault could then
        establish the pte after kvm_unmap_hva returned"). v3.1 flushed after
        ``spin_unlock``; the model flushes inside the section (docs/model.md 5.1)."""
        kvm = ctx.model.kvm
        await ctx.spin_lock(kvm.mmu_lock, "mmu_lock: kvm_mmu_notifier_invalidate_page")
        await self.bump_seq(ctx, hva, hva + PAGE_SIZE)
        zapped = await self.zap(ctx, hva, hva + PAGE_SIZE)
        await self.flush(ctx, hva, hva + PAGE_SIZE, zapped)
        ctx.spin_unlock(kvm.mmu_lock)

    # ---- dirty logging (live migration) ----
    # The ioctls run in the thread that calls them (QEMU's migration thread).
    # The invariant (docs/model.md section 3, dirty-log row): every page is either
    # dirty in the bitmap or write-protected, so a guest write either is already
    # logged or faults, and the fault logs it before the write lands (F7). Both
    # ioctls write-protect in one mmu_lock critical section with the change of
    # the bitmap, then drop mmu_lock and flush, in a step of their own: until
    # that flush a vcpu may still write through a writable TLB entry, unlogged.
    # That is safe, as x86's kvm_mmu_slot_apply_flags says, because it only
    # concerns pages userspace will read after the ioctl returns: every page
    # (the bulk stage after enabling) or the pages this harvest reported. A
    # design that forgets the flush (flush_memslot) loses such writes for good.
    # XX: slots_lock and the memslot swap (SRCU) of KVM_SET_USER_MEMORY_REGION are
    # folded into the mmu_lock section: a fault reads the logging flag under
    # mmu_lock when it installs, as if it held the new memslot.

    @step
    async def write_protect(self, ctx: ActorContext, gfns: tuple[int, ...]) -> int:
        """``kvm_arch_mmu_enable_log_dirty_pt_masked``, under mmu_lock: make the next guest
        write to each of ``gfns`` fault; returns how many leaves changed. Here as the
        thread proposed it: drop the leaf (HPTE absent), re-fault with write."""
        kvm = ctx.model.kvm
        return sum(kvm.zap_gfn(gfn, ctx.name) for gfn in gfns)

    @step
    async def flush_memslot(self, ctx: ActorContext) -> None:
        """``kvm_flush_remote_tlbs_memslot``, after mmu_unlock: no vcpu keeps a writable
        translation of a page just write-protected."""
        ctx.model.kvm.flush_remote_tlbs_memslot(ctx.name)

    @step
    async def enable_dirty_logging(self, ctx: ActorContext) -> None:
        """``KVM_SET_USER_MEMORY_REGION`` adding ``KVM_MEM_LOG_DIRTY_PAGES``:
        ``kvm_mmu_slot_apply_flags`` write-protects the whole slot under mmu_lock,
        then flushes unconditionally, after dropping it."""
        kvm = ctx.model.kvm
        await ctx.spin_lock(kvm.mmu_lock, "kvm_mmu_slot_apply_flags: mmu_lock, write-protect the slot")
        kvm.enable_dirty_logging(ctx.name)
        slot = kvm.memslot
        await self.write_protect(ctx, tuple(range(slot.base_gfn, slot.base_gfn + slot.npages)))
        ctx.spin_unlock(kvm.mmu_lock)
        await ctx.point("kvm_flush_remote_tlbs_memslot")
        await self.flush_memslot(ctx)

    @step
    async def get_dirty_log(self, ctx: ActorContext) -> tuple[int, ...]:
        """``KVM_GET_DIRTY_LOG`` (``kvm_get_dirty_log_protect``): under mmu_lock, for each
        bitmap word ``mask = xchg(word, 0)`` then write-protect what it names; unlock;
        flush if anything was dirty; ``copy_to_user``. Returns the dirty gfns."""
        kvm = ctx.model.kvm
        await ctx.spin_lock(kvm.mmu_lock, "kvm_get_dirty_log_protect: mmu_lock, xchg, write-protect")
        mask = kvm.get_dirty_log(ctx.name)
        await self.write_protect(ctx, mask)
        ctx.spin_unlock(kvm.mmu_lock)
        if mask:
            await ctx.point("kvm_flush_remote_tlbs_memslot, copy_to_user")
            await self.flush_memslot(ctx)
        ctx.note("copy_to_user(log->dirty_bitmap)")
        return mask


def _origin(kind: type[Design], key: str) -> tuple[type, Any]:
    """The class that first defines the step ``key``, and its definition: what a variant must fit."""
    return next((k, vars(k)[key]) for k in reversed(kind.__mro__) if key in vars(k))


def check_step(kind: type[Design], key: str, fn: Any) -> None:
    """Raise TypeError unless ``fn`` can stand for the step ``key`` of ``kind``."""
    origin, original = _origin(kind, key)
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"step {key!r} must be an async function (got {fn!r})")
    want = len(inspect.signature(original).parameters)
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != want:
        args = ", ".join(list(inspect.signature(original).parameters))
        got = len(positional)
        where = f"{origin.__name__}.{key}"
        raise TypeError(f"step {key!r} must take ({args}), as {where} does (got {got} arguments)")


def validate(design: object) -> str | None:
    """What is wrong with ``design`` as a design, in one line, or None."""
    if not isinstance(design, Design):
        return f"{design!r} is not a Design"
    kind = type(design)
    for name in design.weak:
        if name not in design.words:
            known = ", ".join(design.words) or "none"
            return f"design {design.name!r} marks {name!r} weak, but has no such word (its words: {known})"
    if kind.fault is Design.fault:
        return f"design {design.name!r} has no fault step (define async def fault(self, ctx, gfn, write))"
    for key in kind.steps():
        try:
            check_step(kind, key, getattr(kind, key))
        except TypeError as exc:
            return f"design {design.name!r}: {exc}"
    return None
