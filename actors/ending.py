"""End of run, as the model sees it: the last actor the run waits for finished.

End-of-run oracles (``leaked_refs``, ``pinned_pages``) judge only once
``Model.ended`` is set. Until the runtime sets it itself, a scenario wraps its
actors with ``signal_end``: the last non-daemon actor to finish calls
``Model.end_run`` inside its own last step, so the oracles that run after
that step see the final state. A daemon (the notifier) never finishes, and
with every caller done it has nothing left to do.
"""

from __future__ import annotations

import attrs

from .context import ActorContext
from .world import ActorFn, ActorSpec


@attrs.define(eq=False)
class _Countdown:
    left: int  # non-daemon actors still running


def _counted(fn: ActorFn, countdown: _Countdown) -> ActorFn:
    async def actor(ctx: ActorContext) -> None:
        await fn(ctx)
        countdown.left -= 1
        if countdown.left == 0:
            ctx.model.end_run()

    return actor


def signal_end(actors: tuple[ActorSpec, ...]) -> tuple[ActorSpec, ...]:
    """Wrap ``actors`` so that the last non-daemon one to finish ends the run for the model."""
    countdown = _Countdown(sum(not a.daemon for a in actors))
    return tuple(a if a.daemon else attrs.evolve(a, fn=_counted(a.fn, countdown)) for a in actors)
