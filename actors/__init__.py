"""Who races: the controlled runtime, the host kernel and KVM.

Three layers, each depending only on those before it: ``actors.runtime``
(the engine), ``actors.host`` (the host kernel's memory management and its
MMU-notifier chain) and ``actors.kvm`` (KVM's designs, fault paths and
notifier callbacks). This package re-exports what scenarios and users need.
"""

from .host import (
    remapper as remapper,
)
from .kvm import (
    DESIGNS as DESIGNS,
    Design as Design,
    Fault as Fault,
    Power7Hpt as Power7Hpt,
    SeqRetry as SeqRetry,
    design_named as design_named,
    kvm_init_mmu_notifier as kvm_init_mmu_notifier,
    ppc_hv_set_spte_hva as ppc_hv_set_spte_hva,
    step as step,
    vcpu as vcpu,
)
from .runtime import (
    DEFAULT_MAX_RETRIES as DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_STEPS as DEFAULT_MAX_STEPS,
    MAX_STEPS as MAX_STEPS,
    ActorContext as ActorContext,
    ActorSpec as ActorSpec,
    Executor as Executor,
    Finding as Finding,
    InternalError as InternalError,
    Mailbox as Mailbox,
    Request as Request,
    RunResult as RunResult,
    Runtime as Runtime,
    Schedule as Schedule,
    ScheduleDiverged as ScheduleDiverged,
    ScheduleError as ScheduleError,
    Status as Status,
    Step as Step,
    Strategy as Strategy,
    World as World,
    sort_key as sort_key,
)
