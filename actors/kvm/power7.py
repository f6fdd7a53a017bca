"""POWER7's HPT fault path: a design family that never takes ``mmu_lock`` to fault.

KVM HV on POWER7 with MMU notifiers, as merged in v3.3
(arch/powerpc/kvm/book3s_64_mmu_hv.c, book3s_hv_rm_mmu.c) and, for the hash
MMU, in the same shape today. The guest enters its own HPTEs with H_ENTER;
KVM maps the host page right there if the host pte is present, or enters the
HPTE absent, and an access through an absent HPTE faults to
``kvmppc_book3s_hv_page_fault``. Neither path takes ``kvm->mmu_lock``: they
lock the HPTE (``HPTE_V_HVLOCK``), then the page's rmap chain (``lock_rmap``),
and run ``mmu_notifier_retry`` under the rmap lock alone, reading the count
and then ``seq`` without the lock their writers hold (docs/model.md 1.2 and
1.5). KVM's invalidate callback takes ``mmu_lock`` and then, per page, the
rmap lock and the HPTE lock, in the other order: so it only *tries* the HPTE
lock and, if that fails, lets the rmap lock go before it spins ("to avoid an
ABBA deadlock"). The HPT state and its lock bits are ``mmu.hpt``.

Designs: ``power7_hpt`` (read faults ask for read and map read-only pages
read-only, as since v3.4), ``always_write`` (every fault asks get_user_pages
for write, as merged in v3.3, which could not yet map a page read-only) and
``power7_abba`` (the invalidation spins on the HPTE lock while holding the
rmap lock: the ABBA the kernel avoids).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from mmu import HostPte, Model
from mmu.hpt import lookup_linux_pte

from ..host.gup import get_user_page_fast_only, get_user_pages
from ..runtime.context import ActorContext
from . import refault
from .design import Fault, step
from .fault_path import SeqRetry
from .set_spte import ppc_hv_set_spte_hva


@attrs.define
class HptFault(Fault):
    """A fault on an HPTE the guest entered, with what was seen of the HPTE."""

    pgfault: int = 0  # the HPTE's version at the exit (``vcpu->arch.pgfault_hpte``)
    seen: int = 0  # the HPTE as the fault read it under its lock (``hpte[0..2]``)
    changed: bool = False  # the HPTE changed under the fault: RESUME_GUEST, the guest re-executes


def _hpt_fault(f: Fault) -> HptFault:
    assert isinstance(f, HptFault), f"a POWER7 fault step got {type(f).__name__}"
    return f


@attrs.frozen
class Power7Hpt(SeqRetry):
    """H_ENTER and ``kvmppc_book3s_hv_page_fault`` under the HPTE and rmap lock bits, with
    the lockless ``mmu_notifier_retry``; the invalidation walks the rmap chains."""

    #: every fault asks get_user_pages for write (v3.3); else only write faults do
    always_write: bool = False

    fault_label: ClassVar[str] = "kvmppc_book3s_hv_page_fault"
    lock_label: ClassVar[str] = "kvmppc_book3s_hv_page_fault: lock HPTE"
    release_label: ClassVar[str] = "put_page(pages[0])"
    retry_note: ClassVar[str] = "RESUME_GUEST: the guest re-faults"

    def weak_cells(self, model: Model) -> dict[str, int]:
        """Every rmap word (``Hpt.weak_cells``): ``kvm_unmap_rmapp`` and ``kvm_test_clear_dirty``
        read the ``KVMPPC_RMAP_PRESENT`` and ``_CHANGED`` bits the fault path and H_ENTER
        store, ordered only by the rmap lock bit's acquire and release; and every HPTE's two
        dwords (``Hpt.weak_dwords``), which the guest's accesses walk (docs/model.md 6.6)."""
        return {**model.hpt.weak_cells(), **model.hpt.weak_dwords(), **super().weak_cells(model)}

    def hpte_eieio(self) -> bool:
        """Whether the ``eieio()`` stands between ``hptep[1] = r`` and ``__unlock_hpte`` (it does:
        "Write the first HPTE dword, unlocking the HPTE and making it valid")."""
        return True

    def unlock_rmap(self, ctx: ActorContext, gfn: int) -> None:
        """``unlock_rmap`` (arch/powerpc/include/asm/kvm_book3s_64.h, v3.3 to today):
        ``__clear_bit_unlock(KVMPPC_RMAP_LOCK_BIT, rmap)``, a release
        (``PPC_RELEASE_BARRIER``, ``lwsync``, then the store): the next owner of the bit sees
        every store made under it. ``lock_rmap`` is ``test_and_set_bit_lock`` (an acquire)
        after a spin on the bit read with no lock (``while (test_bit(...)) cpu_relax()``:
        the guard of ``ctx.spin_lock``)."""
        ctx.spin_unlock(ctx.model.hpt.rmap_lock(gfn))

    async def ptesync(self, ctx: ActorContext, gfn: int) -> None:
        """``asm volatile("ptesync")`` after the HPTE's unlocking store (H_ENTER, the fault
        path): in weak memory, a wait until the CPU's stores have reached memory, in the
        order its barriers allow, so that its own walk, once back in the guest, finds
        them (a walk does not read the store buffer: ``Hpt.walk``). Another CPU may walk
        while they do. SC, or the dwords not weak (one vcpu): nothing."""
        memory = ctx.model.kvm.memory
        if memory is None or not ctx.model.hpt.weak_hpte(gfn):
            return
        await ctx.point(
            "ptesync", guard=lambda: memory.drained(ctx.name), waits_for=f"{ctx.name}'s store buffer"
        )

    # ---- the fault path ----

    @step
    async def fault(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """An access with no usable HPTE. No HPTE at all: the guest's own hash fault, which
        ends in H_ENTER (``h_enter``). An absent one (or, for a write, a read-only one):
        ``kvmppc_hpte_hv_fault`` (v3.3 book3s_hv_rm_mmu.c, real mode) saves it as
        ``pgfault_hpte`` and ``kvmppc_book3s_hv_page_fault`` (v3.3) runs,
        one attempt after another until one enters the HPTE, finds the HPTE changed
        under it, or fails. True: the guest re-executes the access."""
        kvm, hpt = ctx.model.kvm, ctx.model.hpt
        pgfault = hpt.guest_hpte(gfn)
        if pgfault is None:
            return await self.h_enter(ctx, gfn, write)
        if hpt.valid_in_flight(gfn, write):
            # kvmppc_hpte_hv_fault: "For not found, if the HPTE is valid by now, retry the instruction"
            await ctx.point(
                "kvmppc_hpte_hv_fault: the HPTE is valid by now, retry the instruction",
                guard=lambda: hpt.valid_landed(gfn),
                waits_for="the HPTE's valid dword 0 to reach memory",
            )
            return True
        f = HptFault(gfn, write, kvm.memslot.gfn_to_hva(gfn), pgfault=pgfault)
        while True:
            f.attempt += 1
            await self.enter(ctx, f)
            if f.changed:
                return True
            if not await self.lookup(ctx, f):
                return False
            await self.snapshot(ctx, f)
            mapped = await self.map_page(ctx, f)
            if mapped is False:
                return False
            if mapped or f.changed:  # entered, or the guest re-executes on a changed HPTE
                return True
            await self.retried(ctx, f)

    @step
    async def enter(self, ctx: ActorContext, f: Fault) -> None:
        """The start of ``kvmppc_book3s_hv_page_fault`` (v3.3): ``preempt_disable(); while
        (!try_lock_hpte(hptep, HPTE_V_HVLOCK)) cpu_relax();`` read ``hpte[0..2]``, unlock;
        ``if (hpte[0] != vcpu->arch.pgfault_hpte[0] ...) return RESUME_GUEST``. A re-fault
        after a retry that met an invalidation in progress first waits for it to end."""
        f = _hpt_fault(f)
        hpt = ctx.model.hpt
        if f.waits:
            await refault.enter(ctx, "kvmppc_hpte_hv_fault: the guest faults again", after_retry=True)
        lock = hpt.hpte_lock(f.gfn)
        await ctx.spin_lock(lock, self.fault_label)  # try_lock_hpte: ldarx/stdcx., isync: an acquire
        f.seen = hpt.read_hpte(f.gfn, ctx.name)
        ctx.spin_unlock(lock)  # v3.3 "lwsync; hptep[0] = hpte[0]", unlock_hpte today: a release
        if f.seen != f.pgfault:
            ctx.note("hpte != vcpu->arch.pgfault_hpte: RESUME_GUEST")
            f.changed = True

    @step
    async def resolve_fast(self, ctx: ActorContext, f: Fault) -> bool:
        """``get_user_pages_fast(hva, 1, writing, pages)`` (v3.4 on), its lockless walk
        first: the page with a reference, writable only for a write fault or if the
        host pte is (``write_ok``: ``kvmppc_read_update_linux_pte``, ``pte_write``, read
        right after); a read-only page maps read-only (``hpte_make_readonly``). With
        ``always_write``, ``get_user_pages_fast(hva, 1, 1, pages)`` as in v3.3: a read
        fault needs a writable pte too, or the slow path breaks COW."""
        want = f.write or self.always_write
        pfn = await get_user_page_fast_only(ctx, f.hva, want)
        if pfn is None:
            return False
        pte = lookup_linux_pte(ctx.model.mm, f.hva)
        f.pfn, f.writable = pfn, want or (pte is not None and pte.pfn == pfn and pte.writable)
        return True

    @step
    async def resolve_slow(self, ctx: ActorContext, f: Fault) -> bool:
        """``get_user_pages_fast``'s fallback, ``get_user_pages`` under ``mmap_sem`` for read
        (v3.3), for write on a write fault (``always_write``: on every fault); writable is
        the pte's write bit. False for -EFAULT."""
        got = await get_user_pages(ctx, f.hva, f.write or self.always_write)
        if got is None:
            return False
        f.pfn, f.writable = got
        return True

    @step
    async def lock(self, ctx: ActorContext, f: Fault) -> None:
        """``kvmppc_book3s_hv_page_fault`` (v3.3) after gup: ``while (!try_lock_hpte(hptep,
        HPTE_V_HVLOCK)) cpu_relax();`` and the recheck under it: "HPTE has been changed
        under us; let the guest retry"; if unchanged, ``lock_rmap(rmap)`` with the HPTE
        lock held: the order HPTE -> rmap."""
        f = _hpt_fault(f)
        hpt = ctx.model.hpt
        await ctx.spin_lock(hpt.hpte_lock(f.gfn), self.lock_label)
        if hpt.hpte_changed(f.gfn, f.seen, ctx.name):
            f.changed = True
            return
        await ctx.spin_lock(hpt.rmap_lock(f.gfn), "lock_rmap: mmu_notifier_retry")

    @step
    async def recheck(self, ctx: ActorContext, f: Fault) -> bool:
        """"Check if we might have been invalidated; let the guest retry if so" (v3.3): the
        HPTE changed, or ``mmu_notifier_retry(vcpu, mmu_seq)`` under the rmap lock."""
        if _hpt_fault(f).changed:
            return True
        assert f.mmu_seq is not None, "recheck without a seq snapshot"
        return await self.notifier_retry(ctx, f.gfn, f.mmu_seq)

    @step
    async def release(self, ctx: ActorContext, f: Fault) -> None:
        """``kvmppc_book3s_hv_page_fault``'s ``out_put`` (v3.3-v3.6): ``put_page(pages[0])``, "not
        page because page might have been set to the head page of a compound", the
        reference gup took (F8); KVM keeps none (R6)."""
        await super().release(ctx, f)

    @step
    async def notifier_retry(self, ctx: ActorContext, gfn: int, mmu_seq: int) -> bool:
        """``mmu_notifier_retry`` (v3.3 include/linux/kvm_host.h; ``mmu_invalidate_retry``
        today) under the rmap lock of ``gfn``, without ``mmu_lock``: the count, then
        ``smp_rmb()``, then ``seq``, each read a step of its own, since the writer
        (invalidate_range_end, under ``mmu_lock``) may store between them (R3). In weak
        memory the count's read is a step of its own too: it need not be satisfied
        when the rmap lock is taken (docs/model.md 6.1)."""
        hpt = ctx.model.hpt
        if ctx.model.kvm.memory is not None:
            await ctx.point("mmu_notifier_retry: in_progress")
        if hpt.retry_in_progress(gfn, ctx.name):
            return True
        await ctx.point("mmu_notifier_retry: smp_rmb(), seq")
        return hpt.retry_seq(gfn, mmu_seq, ctx.name)

    @step
    async def install(self, ctx: ActorContext, f: Fault) -> None:
        """``kvmppc_add_revmap_chain`` and the HPTE's stores (``hptep[1] = r; eieio();
        hptep[0] = hpte[0]``), under both lock bits (v3.3; a valid HPTE is replaced in
        place, the v3.4 write fault on a read-only one)."""
        assert f.pfn is not None, "install without a pfn"
        ctx.model.hpt.enter_hpte(f.gfn, f.pfn, f.writable, ctx.name, eieio=self.hpte_eieio())

    @step
    async def unlock(self, ctx: ActorContext, f: Fault) -> None:
        """``unlock_rmap`` (``kvmppc_add_revmap_chain`` unlocks the chain), then the store of
        ``hptep[0]`` that clears ``HPTE_V_HVLOCK`` (``out_unlock`` on a retry; v3.3).

        In weak memory (docs/model.md 6.6) the HPTE's unlock is a release: ``hptep[1] = r;
        eieio(); hptep[0] = hpte[0]`` (v3.3; ``__unlock_hpte`` after the ``eieio()`` since
        v3.19), the ``eieio`` ordering every earlier store before the one that frees the
        lock bit."""
        hpt = ctx.model.hpt
        rmap = hpt.rmap_lock(f.gfn)
        if rmap.held_by(ctx.name):
            self.unlock_rmap(ctx, f.gfn)
        ctx.spin_unlock(hpt.hpte_lock(f.gfn), release=self.hpte_eieio())
        await self.ptesync(ctx, f.gfn)

    # ---- H_ENTER ----

    @step
    async def h_enter(self, ctx: ActorContext, gfn: int, write: bool) -> bool:
        """The guest has no HPTE for ``gfn``: its hash-fault handler calls H_ENTER, and
        ``kvmppc_h_enter`` (v3.3 book3s_hv_rm_mmu.c, real mode; ``kvmppc_do_h_enter``
        later) enters one. ``mmu_seq`` first; the host pte looked up with no lock and no
        reference (``lookup_linux_pte``); the HPTE slot locked; a present pte makes a
        valid HPTE (read-only over a read-only pte, ``hpte_make_readonly``), once
        ``mmu_notifier_retry`` under the rmap lock passed: else "inval in progress,
        write a non-present HPTE". No present pte: an absent HPTE, which the fault
        path fills. True: the guest re-executes the access.

        XX: with ``always_write`` only a writable pte makes a valid HPTE, a read-only
        one an absent HPTE, whose fault then asks for write: the model's reading of
        a v3.3 that "cannot yet enforce guest read-only protection"."""
        kvm, hpt = ctx.model.kvm, ctx.model.hpt
        await ctx.point("H_ENTER: kvmppc_h_enter")
        hva = kvm.memslot.gfn_to_hva(gfn)
        f = Fault(gfn, write, hva)
        await self.snapshot(ctx, f)  # mmu_seq = kvm->mmu_notifier_seq; smp_rmb()
        assert f.mmu_seq is not None, "snapshot without a seq"
        mmu_seq = f.mmu_seq
        pte = lookup_linux_pte(ctx.model.mm, hva)
        if pte is None:
            ctx.note("lookup_linux_pte: not present")
        else:
            ctx.note(f"lookup_linux_pte: pfn {pte.pfn:#x}{' W' if pte.writable else ' RO'}")
        lock = hpt.hpte_lock(gfn)
        if not ctx.try_spin_lock(lock):
            await ctx.spin_lock(lock, "H_ENTER: lock the HPTE slot")
        if hpt.guest_hpte(gfn) is not None:
            ctx.note("the slot is in use: H_PTEG_FULL")  # another vcpu entered it meanwhile
        elif pte is None or (self.always_write and not pte.writable):
            hpt.enter_absent(gfn, ctx.name)
        else:
            rmap = hpt.rmap_lock(gfn)
            await ctx.spin_lock(rmap, "H_ENTER: lock_rmap, mmu_notifier_retry")
            if await self.notifier_retry(ctx, gfn, mmu_seq):
                ctx.note("inval in progress, write a non-present HPTE")
                hpt.enter_absent(gfn, ctx.name)
            else:
                hpt.enter_hpte(gfn, pte.pfn, pte.writable, ctx.name, eieio=self.hpte_eieio())
            self.unlock_rmap(ctx, gfn)
        ctx.spin_unlock(lock, release=self.hpte_eieio())
        await self.ptesync(ctx, gfn)
        return True

    # ---- KVM's invalidate callback: mmu_lock, then each page's rmap and HPTE ----

    @step
    async def zap(self, ctx: ActorContext, start: int, end: int) -> int:
        """``kvm_unmap_hva`` for each page of [start, end), from
        ``kvm_mmu_notifier_invalidate_range_start`` under ``mmu_lock`` (v3.3;
        ``kvm_unmap_gfn_range_hv`` today): ``kvm_unmap_rmapp`` on each gfn. Returns how
        many HPTEs it made absent."""
        zapped = 0
        for gfn in ctx.model.kvm.memslot.gfns_in(start, end):
            zapped += await self.unmap_rmapp(ctx, gfn)
        return zapped

    @step
    async def flush(self, ctx: ActorContext, start: int, end: int, zapped: int) -> None:
        """Nothing: v3.3's ``kvm_unmap_hva`` returns 0 on Book3S HV, so the generic callback
        has no ``kvm_flush_remote_tlbs`` to make; each HPTE was flushed by its own
        ``tlbie`` (``kvmppc_invalidate_hpte``) before its rmap lock went."""
        if zapped:
            ctx.note("kvm_unmap_hva returned 0: every HPTE had its own tlbie")

    @step
    async def set_spte_hva(self, ctx: ActorContext, hva: int, pte: HostPte) -> int:
        """A 2011 host's ``change_pte``: PPC HV's ``kvm_set_spte_hva`` (v3.3), the rmap walk
        of ``zap`` whatever the new pte says (``actors.kvm.set_spte``)."""
        return await ppc_hv_set_spte_hva(self, ctx, hva, pte)

    @step
    async def unmap_rmapp(self, ctx: ActorContext, gfn: int) -> int:
        """``kvm_unmap_rmapp`` (v3.3 book3s_64_mmu_hv.c): until the chain is empty,
        ``lock_rmap``, lock its first HPTE (``lock_chained_hpte``), make it absent
        (``kvmppc_unmap_hpte``), unlock both. Returns how many it made absent."""
        hpt = ctx.model.hpt
        rmap, hpte = hpt.rmap_lock(gfn), hpt.hpte_lock(gfn)
        zapped = 0
        while True:
            await ctx.spin_lock(rmap, "kvm_unmap_rmapp: lock_rmap")
            if not hpt.rmap_present(gfn, ctx.name):
                self.unlock_rmap(ctx, gfn)
                return zapped
            if not await self.lock_chained_hpte(ctx, gfn):
                continue
            hpt.unmap_hpte(gfn, ctx.name)
            zapped += 1
            self.unlock_rmap(ctx, gfn)
            # "hptep[0] &= ~HPTE_V_HVLOCK" (v3.3; __unlock_hpte today): no barrier of its own,
            # but after unlock_rmap's lwsync, so ordered as a release in weak memory
            ctx.spin_unlock(hpte)

    @step
    async def lock_chained_hpte(self, ctx: ActorContext, gfn: int) -> bool:
        """``kvm_unmap_rmapp`` (v3.3): "To avoid an ABBA deadlock with the HPTE lock bit, we
        can't spin on the HPTE lock while holding the rmap chain lock": ``try_lock_hpte``,
        and if it fails,
        ``unlock_rmap``, ``while (hptep[0] & HPTE_V_HVLOCK) cpu_relax();`` and False:
        start over. True: both held."""
        hpte = ctx.model.hpt.hpte_lock(gfn)
        if ctx.try_spin_lock(hpte):  # ldarx/stdcx., isync: an acquire
            return True
        ctx.note("try_lock_hpte failed: unlock rmap before spinning on the HPTE lock")
        self.unlock_rmap(ctx, gfn)
        await ctx.point(
            "kvm_unmap_rmapp: spin on HPTE_V_HVLOCK",
            guard=lambda: hpte.owner is None,
            waits_for=lambda: f"{hpte.name} (held by {hpte.owner})",
        )
        return False


@attrs.frozen
class Power7Abba(Power7Hpt):
    """``power7_hpt`` whose invalidation spins on the HPTE lock while holding the rmap lock:
    rmap -> HPTE against the fault path's and H_ENTER's HPTE -> rmap."""

    @step
    async def lock_chained_hpte(self, ctx: ActorContext, gfn: int) -> bool:
        """``lock_hpte`` where ``kvm_unmap_rmapp`` (v3.3-v3.6) has ``try_lock_hpte``: wait for
        the HPTE lock with the rmap lock held. A fault holding that HPTE (a write on a read-only one, or
        H_REMOVE) waits for the rmap lock: ABBA, which lockdep reports (``lock_order``)."""
        await ctx.spin_lock(ctx.model.hpt.hpte_lock(gfn), "kvm_unmap_rmapp: lock_hpte, rmap held")
        return True
