"""The reviewed patch's own subject: device memory (PCI passthrough) in a memslot.

    "[PATCH 01/11] KVM: PPC: Add memory-mapping support for PCI passthrough
    and emulation" ... "There is no 'the VMA'. ... You could do all the
    checks you want here, only to have host userspace remap it under your
    feet."  (Avi Kivity, 2011-11-20)

Guest page 0 is a device's memory: the VMM mmapped the device file, whose
driver mapped it with ``remap_pfn_range`` (a VM_PFNMAP VMA, special ptes, no
page references; docs/model.md 3.14). One vcpu writes gfn 0 ``accesses``
times; meanwhile the VMM mmap(MAP_FIXED)s the device file again, ``remaps``
times: the old mapping is zapped (with the MMU notifier), the driver gives
that device memory back, and the new mapping gets other memory. KVM holds no
reference on device memory, so a leaf to it that outlives the zap reaches
memory that is no longer this device's (``stale_spte``, ``corruption`` when
the guest writes through it). ``setup_time`` translated the pfn once, at
registration, from ``vm_pgoff``; ``seq_retry`` (``hva_to_pfn_remapped``, or
POWER7's VM_PFNMAP fallback from v3.3) re-reads the pte at each fault and
lets the notifier zap the leaf.

``divergence`` and ``writable_spte`` do not judge this scenario: a leaf that
outlives the zap disagrees with the (absent) host pte when the invalidation
ends, one step before the driver gives the memory back, and they would end
the run before the oracle that says what the leaf costs (``stale_spte``:
memory that is no longer this device's). ``race_remap`` judges RAM with them. Run it with
``python scenarios/passthrough_remap.py``.
"""

from __future__ import annotations

import functools
import sys

from actors import ActorContext, ActorSpec, Design, World, design_named, kvm_init_mmu_notifier, vcpu
from actors.host import mmap_device_fixed
from mmu import ORACLES, Model, Region
from scenarios.base import Scenario

#: the oracles that judge this scenario (see the module docstring on the two left out)
SCENARIO_ORACLES = {
    name: oracle for name, oracle in ORACLES.items() if name not in ("divergence", "writable_spte")
}


async def _qemu(ctx: ActorContext, hva: int, remaps: int) -> None:
    """The VMM mapping the device's memory afresh (a device reset, a BAR moved)."""
    for _ in range(remaps):
        if not await mmap_device_fixed(ctx, hva):
            return


def build(design: Design | str, *, accesses: int = 2, remaps: int = 1) -> World:
    """One guest page of device memory, ``accesses`` guest writes to it, ``remaps``
    mmap(MAP_FIXED)s of the device over it."""
    design = design_named(design)
    if accesses < 1:
        raise ValueError(f"'accesses' must be >= 1 (got {accesses})")
    if remaps < 0:
        raise ValueError(f"'remaps' must be >= 0 (got {remaps})")
    model = Model.build_regions(Region(1, pfnmap=True))
    kvm_init_mmu_notifier(model, design)
    hva = model.kvm.memslot.gfn_to_hva(0)
    return World(
        model,
        (
            ActorSpec("vcpu0", functools.partial(vcpu, design=design, gfns=(0,) * accesses)),
            ActorSpec("qemu", functools.partial(_qemu, hva=hva, remaps=remaps)),
        ),
        dict(SCENARIO_ORACLES),
    )


SCENARIO = Scenario(
    name="passthrough_remap",
    summary="host userspace maps a passthrough device's memory afresh under a VM_PFNMAP slot",
    story=(
        "Paul's patch 01/11 maps a passthrough device's memory into the guest from \"the "
        "VMA\" at registration; Avi: \"only to have host userspace remap it under your feet\""
    ),
    build=build,
    designs=("setup_time", "no_retry", "seq_retry"),
)


if __name__ == "__main__":
    # The file's own entry point sits above the layers: the scenario code
    # above imports nothing from mmurace.
    from mmurace.cli import main

    sys.exit(main(["run", "passthrough_remap", *sys.argv[1:]]))
