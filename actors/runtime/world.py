"""A world: the model, the actors that race over it, and the oracles that judge it."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from mmu import ORACLES, Model
from mmu.oracles import Oracle

from .context import ActorFn

#: retries of one guest fault before its vcpu is reported as livelocked
DEFAULT_MAX_RETRIES = 20


@attrs.frozen
class ActorSpec:
    """One actor: a name for the trace, its code, and whether the run waits for it.

    A daemon (an actor serving a ``Mailbox``) serves requests forever; the run ends
    when every non-daemon actor has finished, and a daemon blocked waiting
    for work is not a deadlock.
    """

    name: str
    fn: ActorFn
    daemon: bool = False


@attrs.define(eq=False)
class World:
    """Everything one run needs. Built afresh for each run by a scenario."""

    model: Model
    actors: tuple[ActorSpec, ...]
    oracles: Mapping[str, Oracle] = attrs.field(factory=lambda: dict(ORACLES))
    max_retries: int = DEFAULT_MAX_RETRIES  # see ActorContext.retry_bound
    #: CONFIG_PROVE_LOCKING: False judges a kernel built without lockdep, where a
    #: lock bug is a finding only when a schedule hangs on it (``deadlock``)
    lockdep: bool = True
    #: weak memory for KVM's lockless fields, with its memory actors (``actors.runtime.weak``):
    #: the run ends when the actors it waits for have, whatever the stores still do
    weak: bool = False

    def __attrs_post_init__(self) -> None:
        names = [a.name for a in self.actors]
        if len(set(names)) != len(names):
            raise ValueError(f"actor names must be unique (got {names!r})")
