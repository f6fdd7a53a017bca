"""The MMU-notifier chain: KVM's callbacks run in the host thread that calls them."""

from __future__ import annotations

import functools

from actors import DESIGNS, ActorContext, ActorSpec, World, kvm_init_mmu_notifier, vcpu
from actors.host import madvise_dontneed, migrate_page, subscribers
from mmu import PAGE_SIZE, Model
from mmurace import RandomWalk
from tests.hunting import run


def _two_hosts() -> World:
    """QEMU discards page 1 while kcompactd migrates page 0: two invalidations, two threads."""
    model = Model.build(npages=2)
    kvm_init_mmu_notifier(model, DESIGNS["seq_retry"])
    page0, page1 = (model.kvm.memslot.gfn_to_hva(g) for g in (0, 1))

    async def qemu(ctx: ActorContext) -> None:
        await madvise_dontneed(ctx, page1, page1 + PAGE_SIZE)

    async def kcompactd(ctx: ActorContext) -> None:
        await migrate_page(ctx, page0)

    return World(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=DESIGNS["seq_retry"], gfns=(0, 1, 0, 1))),
            ActorSpec("qemu", qemu),
            ActorSpec("kcompactd", kcompactd),
        ),
    )


def test_kvm_registers_its_design_on_the_mm_when_the_world_is_built() -> None:
    world = _two_hosts()
    (ops,) = subscribers(world.model.mm)
    assert ops.design is DESIGNS["seq_retry"]  # type: ignore[attr-defined]


def test_two_host_threads_can_be_inside_their_callbacks_at_once() -> None:
    """In the kernel two threads may both be between start and end: in_progress reaches 2,
    each callback's steps are its caller's, and seq_retry stays safe throughout."""
    overlapped = False
    for seed in range(300):
        result = run(_two_hosts(), RandomWalk(seed))
        assert result.finding is None, result.finding
        zaps = [s for s in result.steps if s.label == "mmu_lock: invalidate_begin, unmap, flush"]
        assert {s.actor for s in zaps} <= {"qemu", "kcompactd"}
        assert all(s.thread == s.actor for s in zaps)
        overlapped |= any("in_progress 1->2" in e for s in zaps for e in s.events)
    assert overlapped, "no schedule of 300 had both invalidations in flight at once"
