"""Live migration: dirty logging must not lose a page the guest writes.

    "Does this apply to kvm-internal write protection, like we do for the
    framebuffer and live migration? ... removing access for live migration
    is painful."  (Avi Kivity, 2011-11-21)

One vcpu writes its pages ``accesses`` times in turn. QEMU's migration
thread enables dirty logging (``ram_save_setup`` ->
``memory_global_dirty_log_start``), harvests the bitmap ``rounds`` times
(``migration_bitmap_sync`` -> ``KVM_GET_DIRTY_LOG``) sending what it reports,
then stops the VM (``migration_completion``: ``vm_stop_force_state``; here it
waits for the vcpu to finish its writes) and harvests one last time. Every
guest write made after logging started must be in a bitmap harvested after
it, or still dirty (``lost_dirty``, docs/model.md O3). ``wp_ignore`` keeps
writable sptes, so writes through them are never logged; ``wp_zap_refault``
(the thread's proposal) makes them absent, and the re-fault marks the page
dirty (F7); ``power7_dirty`` (POWER7 as merged in v3.6) write-protects
nothing and harvests the HPTEs' hardware C bits, each HPTE absent briefly
with ``tlbie`` while its C is cleared (docs/model.md 3.12); ``wp_readonly``
(x86) keeps them read-only, and the write fault makes them writable again and
marks the page. Both flush the vcpus' TLBs after dropping mmu_lock, so a write
may still go through a stale writable entry before the ioctl returns: into a
page QEMU sends after it. Run it with ``python scenarios/dirty_log.py``.
"""

from __future__ import annotations

import functools
import sys

import attrs

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.runtime import ActorFn
from mmu import ORACLES, Model
from scenarios.base import Scenario


@attrs.define(eq=False)
class _Stopped:
    """Set in the vcpu's last step; not model state, only the signal the last sync waits for."""

    done: bool = False


def _stopping(fn: ActorFn, stopped: _Stopped) -> ActorFn:
    async def actor(ctx: ActorContext) -> None:
        await fn(ctx)
        ctx.model.fp.write(("vm", "stopped"))  # the final harvest depends on this step
        stopped.done = True

    return actor


def _sent(ctx: ActorContext, mask: tuple[int, ...]) -> None:
    ctx.model.kvm.dirty_log.send(mask)


async def _migration(ctx: ActorContext, design: Design, rounds: int, stopped: _Stopped) -> None:
    await design.enable_dirty_logging(ctx)
    slot = ctx.model.kvm.memslot
    ctx.model.kvm.dirty_log.bulk_stage(slot.base_gfn, slot.base_gfn + slot.npages)
    for _ in range(rounds):
        _sent(ctx, await design.get_dirty_log(ctx))
    await ctx.point(
        "migration_completion: vm_stop_force_state",
        guard=lambda: stopped.done,
        waits_for="the vcpu to stop",
    )
    ctx.model.fp.read(("vm", "stopped"))
    _sent(ctx, await design.get_dirty_log(ctx))
    ctx.note("memory_global_dirty_log_stop: the destination resumes the guest")


def build(design: Design | str, *, pages: int = 1, accesses: int = 3, rounds: int = 1) -> World:
    """``pages`` guest pages, each written ``accesses`` times; ``rounds`` harvests
    while the guest runs, and one after it stopped."""
    design = design_named(design)
    if pages < 1:
        raise ValueError(f"'pages' must be >= 1 (got {pages})")
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    if rounds < 0:
        raise ValueError(f"'rounds' must be >= 0 (got {rounds})")
    model = Model.build(npages=pages)
    kvm_init_mmu_notifier(model, design)
    stopped = _Stopped()
    gfns = tuple(range(pages)) * accesses
    guest = functools.partial(vcpu, design=design, gfns=gfns)
    return World(
        model,
        (
            ActorSpec("vcpu0", _stopping(guest, stopped)),
            ActorSpec(
                "migration",
                functools.partial(
                    _migration, design=design, rounds=rounds, stopped=stopped
                ),
            ),
        ),
        ORACLES,
    )


SCENARIO = Scenario(
    name="dirty_log",
    summary="live migration harvests the dirty log while a vcpu writes guest RAM",
    story=(
        "Avi: \"Does this apply to kvm-internal write protection, like we do for the framebuffer "
        "and live migration? ... removing access for live migration is painful.\""
    ),
    build=build,
    designs=("wp_ignore", "wp_zap_refault", "wp_readonly", "power7_dirty"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "dirty_log", *sys.argv[1:]]))
