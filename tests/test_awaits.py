"""Actors may await only the runtime, and a step must reach its next point.

An await of anything else (Trio's checkpoints and primitives, asyncio, any
awaitable) is a ``foreign_await`` finding at once, the same under both
executors and with no event loop at all; a step stuck in a loop is a
``step_timeout`` finding when the watchdog can interrupt it.

What the watchdog cannot do, by what Python allows (actors/runtime/watchdog.py):
it interrupts a pure-Python loop and a C call that waits (``time.sleep``),
both tested here, but not a C call that computes while holding the GIL
(``sum(range(10**12))``): the signal handler runs only once that returns, so
no test can show it without hanging for as long. It watches only runs in a
process's main thread.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path

import pytest
import trio

from actors import ActorContext, ActorSpec, Executor, RunResult, Runtime, World
from mmurace.cli import main
from mmurace.strategies import RandomWalk

from .toys import Fixed, recorder, world


class Yields42:
    def __await__(self) -> Generator[int, None, None]:
        yield 42


async def in_a_lock() -> None:
    async with trio.Lock():
        pass


#: what an actor awaits, and how the finding names it
FOREIGN: dict[str, tuple[Callable[[], Awaitable[object]], str]] = {
    "trio.sleep(0)": (lambda: trio.sleep(0), "trio.sleep"),
    "trio.sleep_forever()": (trio.sleep_forever, "trio.sleep_forever"),
    "a real trio.Lock": (in_a_lock, "trio.Lock.__aenter__"),
    "trio.Event().wait()": (lambda: trio.Event().wait(), "trio.Event.wait"),
    "asyncio.sleep(0)": (lambda: asyncio.sleep(0), "asyncio.tasks.sleep"),
    "an awaitable of its own": (Yields42, "tests.test_awaits.Yields42.__await__"),
}


def awaiting(what: Callable[[], Awaitable[object]]) -> World:
    async def vcpu(ctx: ActorContext) -> None:
        await ctx.point("fault")
        ctx.note("took the fault")
        await what()
        await ctx.point("never reached")

    return world(ActorSpec("vcpu0", vcpu), ActorSpec("qemu", recorder([], "q", 3)))


def under_every_executor(build: Callable[[], World], **runtime: float) -> list[RunResult]:
    """The same world run by the Trio executor, the direct one in a Trio loop, and with no loop
    (a sync test: pytest-trio runs it outside any loop, in the main thread)."""

    async def in_a_loop(executor: Executor) -> RunResult:
        return await Runtime(executor=executor, **runtime).run(build(), Fixed([]))

    results = [trio.run(in_a_loop, e) for e in Executor]
    return [*results, Runtime(executor=Executor.DIRECT, **runtime).run_direct(build(), Fixed([]))]


@pytest.mark.parametrize("case", list(FOREIGN))
def test_a_foreign_await_is_reported_at_once_alike_under_every_executor(case: str) -> None:
    what, name = FOREIGN[case]
    results = under_every_executor(lambda: awaiting(what))
    assert results[0] == results[1] == results[2]
    finding = results[0].finding
    assert finding is not None
    assert (finding.oracle, finding.step) == ("foreign_await", 0)
    assert re.fullmatch(
        rf"vcpu0 awaited {re.escape(name)} \(at test_awaits\.py:[0-9]+\) in step 'fault':"
        " an actor may await only its ActorContext",
        finding.message,
    ), finding.message
    assert results[0].steps[0].events == ("took the fault",)


def test_a_foreign_await_before_the_first_point_is_reported_too() -> None:
    async def eager(ctx: ActorContext) -> None:
        await trio.sleep(0)

    results = under_every_executor(lambda: world(ActorSpec("vcpu0", eager), ActorSpec("q", recorder([], "q", 2))))
    assert results[0] == results[1] == results[2]
    assert results[0].finding is not None
    assert results[0].finding.message.startswith("vcpu0 awaited trio.sleep (at test_awaits.py:")
    assert results[0].finding.message.endswith(" before its first point: an actor may await only its ActorContext")


SCENARIO_FILE = '''
import trio
from actors import ActorSpec, World
from mmu import Model
from scenarios import Scenario


def build(design) -> World:  # the same actors whatever the design
    async def retrying(ctx):
        # awaits Trio only on the path where it runs after the remapper: a retry path
        await ctx.point("fault")
        ctx.note("faulted")
        await ctx.point("retry?")
        if unmapped:
            await trio.sleep(0)

    unmapped = []

    async def remap(ctx):
        await ctx.point("munmap")
        unmapped.append(True)
        ctx.note("unmapped")

    w = World(Model.build(), (ActorSpec("vcpu0", retrying), ActorSpec("qemu", remap)))
    w.oracles = {}
    return w


SCENARIO = Scenario("retry_await", "awaits Trio on its retry path", "", build, ("seq_retry",))
'''


def test_a_foreign_await_on_some_schedules_is_found_and_its_replay_reproduces_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "retry_await.py"
    path.write_text(SCENARIO_FILE)
    assert main(["replay", str(path), "--design", "seq_retry", "--schedule", "v1:2"]) == 0, "the clean path"
    capsys.readouterr()
    assert main(["run", str(path), "--design", "seq_retry"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION foreign_await at step " in out
    assert "vcpu0 awaited trio.sleep (at retry_await.py:" in out
    command = next(line for line in out.splitlines() if line.startswith("replay:"))
    schedule = command.split("--schedule ")[1]
    assert main(["replay", str(path), "--design", "seq_retry", "--schedule", schedule]) == 1
    replayed = capsys.readouterr().out
    assert replayed.split("replay:")[0] == out.split("replay:")[0]


def busy_world() -> World:
    async def spinning(ctx: ActorContext) -> None:
        await ctx.point("spin_lock(mmu_lock)")
        ctx.note("spinning")
        while True:
            pass

    return world(ActorSpec("vcpu0", spinning), ActorSpec("qemu", recorder([], "q", 3)))


def sleeping_world() -> World:
    async def sleeping(ctx: ActorContext) -> None:
        await ctx.point("msleep")
        time.sleep(3600)  # a C call that waits: the alarm breaks out of it

    return world(ActorSpec("vcpu0", sleeping), ActorSpec("qemu", recorder([], "q", 3)))


@pytest.mark.parametrize("build", [busy_world, sleeping_world])
def test_a_step_that_never_reaches_its_next_point_is_reported(build: Callable[[], World]) -> None:
    results = under_every_executor(build, step_seconds=0.2)
    assert results[0] == results[1] == results[2]
    finding = results[0].finding
    assert finding is not None
    assert (finding.oracle, finding.step) == ("step_timeout", 0)
    assert finding.message == (
        f"vcpu0 ran step {results[0].steps[0].label!r} for more than 0.2 s without reaching its next point:"
        " a loop that never ends?"
    )
    assert results[0].steps[0].events == (), "what it did before it was stopped depends on when: not shown"


def test_the_watchdog_watches_a_run_with_no_loop_and_gives_back_the_alarm() -> None:
    def before(signum: int, frame: object) -> None:
        raise AssertionError("not ours")

    previous = signal.signal(signal.SIGALRM, before)
    try:
        result = Runtime(executor=Executor.DIRECT, step_seconds=0.2).run_direct(busy_world(), Fixed([]))
        assert result.finding is not None and result.finding.oracle == "step_timeout"
        assert signal.getsignal(signal.SIGALRM) is before
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, previous)


async def test_short_steps_are_never_stopped() -> None:
    from scenarios import CATALOG

    runtime = Runtime(executor=Executor.DIRECT, step_seconds=0.2)
    for seed in range(50):
        result = await runtime.run(CATALOG["race_remap"].build("seq_retry"), RandomWalk(seed))
        assert result.finding is None
