"""The pte switches of a 2011 host (v3.1-v3.5): per-page callbacks, no start/end.

Before 6bdb913f0a70 (v3.6) KSM and COW reported their pte switch only through
``set_pte_at_notify`` -> ``->change_pte``, and ``try_to_unmap_one`` reported a
cleared pte through ``ptep_clear_flush_notify`` -> ``->invalidate_page``; both
ran with the page-table lock held, after the pte had changed, with nothing
raising KVM's ``in_progress`` (docs/model.md 1.3). KVM's only protection is
then that its callback changes the leaf and bumps ``seq`` in one ``mmu_lock``
section before the page can go: the caller still holds the old page until
the callback returns, and a fault that resolved it before the switch finds
``seq`` moved when it rechecks.

The page-table lock is taken as a model lock here (``HostMm.ptl``), because
these are the kernel's only page-table-lock sections that span a notifier
call: a callback's ``mmu_lock`` step is a point, and another host section on
the same ptes must not run inside it. Each function is the one of
``actors.host.ksm``, ``cow`` or ``migrate`` that a 2011 host runs instead;
the callers pick by ``ctx.model.era``.
"""

from __future__ import annotations

from mmu import HostPte

from ..runtime.context import ActorContext
from .ksm_pte import wrprotect_pte
from .notifier import change_pte, invalidate_page


async def write_protect_page(ctx: ActorContext, hva: int, page: int) -> HostPte | None:
    """mm/ksm.c ``write_protect_page`` (v3.1-v3.5): under the page-table lock
    (``page_check_address``), a writable pte is cleared (``ptep_clear_flush``, no
    notifier), the ``page_mapcount + 1 + swapped != page_count`` check restores it
    (``set_pte_at``) on an extra reference, else ``set_pte_at_notify`` makes it
    clean and read-only: ``set_pte_at``, then ``->change_pte`` with the read-only
    pte. Returns ``*orig_pte``, or None as ``actors.host.ksm.write_protect_page``.
    The caller holds mmap_lock for read.
    """
    mm = ctx.model.mm
    await ctx.spin_lock(mm.ptl, "write_protect_page: page_check_address, ptep_clear_flush, page_count check")
    orig, protected = wrprotect_pte(ctx, hva, page, "page_check_address")
    if protected:
        assert orig is not None
        await change_pte(ctx, hva, orig, resume="write_protect_page: pte_unmap_unlock")
    ctx.spin_unlock(mm.ptl)
    return orig


async def replace_page(ctx: ActorContext, hva: int, page: int, kpage: int, orig: HostPte) -> bool:
    """mm/ksm.c ``replace_page`` (v3.1-v3.5): under the page-table lock ``pte_same(orig)``,
    ``get_page(kpage)`` + ``page_add_anon_rmap``, ``ptep_clear_flush`` (no notifier),
    ``set_pte_at_notify(mk_pte(kpage, vm_page_prot))`` (read-only: ``set_pte_at``,
    then ``->change_pte``), ``page_remove_rmap(page)``, ``put_page(page)``; unlock.
    ``page`` stays alive on ksmd's reference until ``cmp_and_merge_page`` drops it.
    Returns False if the pte changed since ``write_protect_page``.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.spin_lock(mm.ptl, "replace_page: pte_same, ptep_clear_flush, set_pte_at_notify(kpage)")
    replaced = mm.follow_pte(hva, ctx.name) == orig
    if replaced:
        frames.get_page(kpage)  # the new pte's reference
        old = mm.zap_pte(hva, ctx.name)
        mm.set_pte(hva, kpage, False, ctx.name)
        frames.put_page(old.pfn)  # put_page(page), after the callback in the kernel; ksmd's ref holds it
        await change_pte(ctx, hva, mm.ptes[hva], resume="replace_page: pte_unmap_unlock")
    else:
        ctx.note("!pte_same: the pte changed since write_protect_page, -EFAULT")
    ctx.spin_unlock(mm.ptl)
    return replaced


async def do_wp_page_copy(ctx: ActorContext, hva: int, old: int, orig_writable: bool) -> None:
    """mm/memory.c ``do_wp_page``'s copy path (label ``gotten:``, v3.1-v3.5; split out as
    ``wp_page_copy`` in v4.0): allocate and copy with the page-table lock dropped,
    retake it, ``pte_same``, ``ptep_clear_flush`` (no notifier),
    ``page_add_new_anon_rmap``, ``set_pte_at_notify(new, writable)`` (``set_pte_at``,
    then ``->change_pte``), ``page_remove_rmap(old)``; unlock; ``page_cache_release``
    of the mapping's and of ``do_wp_page``'s reference on the old page.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.point("do_wp_page: alloc_page_vma, cow_user_page")
    new = frames.alloc_page()
    frames.copy_page(old, new)
    await ctx.spin_lock(mm.ptl, "do_wp_page: pte_same, ptep_clear_flush, set_pte_at_notify(new)")
    pte = mm.follow_pte(hva, ctx.name)
    if pte is not None and pte.pfn == old and pte.writable == orig_writable:
        mapped = mm.zap_pte(hva, ctx.name)  # hands over the mapping's reference
        mm.set_pte(hva, new, True, ctx.name)  # the allocation's reference becomes the pte's
        frames.put_page(mapped.pfn)  # page_remove_rmap; the release after unlock, in the kernel
        if frames.is_ksm(old):
            ctx.model.ksm.cow_broken(ctx.thread, hva, old)
        resume = "do_wp_page: pte_unmap_unlock, page_cache_release(old)"
        await change_pte(ctx, hva, mm.ptes[hva], resume=resume)
    else:
        ctx.note("!pte_same: somebody changed the pte meanwhile, drop the copy")
        frames.put_page(new)
    ctx.spin_unlock(mm.ptl)
    frames.put_page(old)


async def try_to_unmap_one(ctx: ActorContext, hva: int, page: int, *, resume: str) -> bool:
    """mm/rmap.c ``try_to_unmap_one`` for migration (v3.1-v3.5), under the anon_vma
    lock: under the page-table lock, ``ptep_clear_flush_notify`` clears the pte and
    calls ``->invalidate_page`` while the caller still holds the page
    (isolation), then a migration entry replaces it, ``page_remove_rmap``,
    ``page_cache_release``; unlock. From v3.6 the callback came after
    ``pte_unmap_unlock``; from v4.13 start/end replaced it. Returns whether ``page``
    was mapped at ``hva``; the code after the callbacks is the step ``resume``.
    """
    mm, frames = ctx.model.mm, ctx.model.frames
    await ctx.spin_lock(mm.ptl, "try_to_unmap_one: ptep_clear_flush_notify, migration entry")
    mapped = mm.rmap_pte(hva, ctx.name)
    unmapped = mapped is not None and mapped.pfn == page
    if unmapped:
        # the entry goes in after the callback in the kernel; a fault waits on the cleared pte either way
        frames.put_page(mm.set_migration_entry(hva, ctx.name).pfn)  # page_remove_rmap; page_cache_release
        await invalidate_page(ctx, hva, resume=resume)
    else:
        ctx.note("page no longer mapped at hva: nothing to unmap")
        await ctx.point(resume)
    ctx.spin_unlock(mm.ptl)
    return unmapped
