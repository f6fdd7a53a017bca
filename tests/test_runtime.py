"""The controlled scheduler on toy worlds: order, decisions, findings."""

from __future__ import annotations

import pytest
import trio

from actors import ActorContext, ActorSpec, Executor, Mailbox, Runtime, Schedule, ScheduleDiverged, Status
from mmurace.strategies import RandomWalk, Replay

from .toys import Fixed, recorder, two_locks_abba, world


@pytest.fixture(params=list(Executor), ids=lambda e: e.value)
def executor(request: pytest.FixtureRequest) -> Executor:
    """Every runtime test runs under both executors: they must decide alike."""
    return request.param


async def test_zero_choices_run_each_actor_to_completion_in_order(executor: Executor) -> None:
    record: list[str] = []
    w = world(ActorSpec("a", recorder(record, "a", 3)), ActorSpec("b", recorder(record, "b", 2)))
    result = await Runtime(executor=executor).run(w, Fixed([]))
    assert record == ["a0", "a1", "a2", "b0", "b1"]
    assert [s.label for s in result.steps] == record
    assert result.steps[1].events == ("a did 1",)
    assert result.status is Status.PASSED
    assert result.schedule.preemptions == 0


async def test_choices_are_relative_to_the_running_actor(executor: Executor) -> None:
    record: list[str] = []
    w = world(
        ActorSpec("a", recorder(record, "a", 2)),
        ActorSpec("b", recorder(record, "b", 2)),
        ActorSpec("c", recorder(record, "c", 2)),
    )
    # first decision: 3 runnable from a: [a, b, c] -> 2 is c; then from c: [c, a, b] -> 1 is a
    strategy = Fixed([2, 1])
    result = await Runtime(executor=executor).run(w, strategy)
    assert record[:2] == ["c0", "a0"]
    assert strategy.asked[:2] == [3, 3]
    assert result.schedule.choices[:2] == (2, 1)


async def test_forced_decisions_are_not_recorded(executor: Executor) -> None:
    record: list[str] = []
    result = await Runtime(executor=executor).run(world(ActorSpec("a", recorder(record, "a", 4))), Fixed([]))
    assert record == ["a0", "a1", "a2", "a3"]
    assert result.schedule == Schedule(())


async def test_same_seed_same_trace_and_replay_reproduces_it(executor: Executor) -> None:
    def build() -> object:
        record: list[str] = []
        return world(*(ActorSpec(n, recorder(record, n, 5)) for n in "abc"))

    runtime = Runtime(executor=executor)
    first = await runtime.run(build(), RandomWalk(7))
    again = await runtime.run(build(), RandomWalk(7))
    replayed = await runtime.run(build(), Replay(first.schedule))
    assert first.steps == again.steps == replayed.steps
    assert first.schedule.preemptions > 0
    other = [await runtime.run(build(), RandomWalk(s)) for s in range(10)]
    assert len({r.steps for r in other}) > 1, "seeds should give different interleavings"


async def test_abba_deadlock_is_a_finding(executor: Executor) -> None:
    # ab takes A; switch to ba, which takes B; both then wait: deadlock
    result = await Runtime(executor=executor).run(two_locks_abba(), Fixed([0, 1]))
    assert result.status is Status.VIOLATION
    assert result.finding is not None
    assert result.finding.oracle == "deadlock"
    assert result.finding.message == (
        "deadlock: nobody can run; ab waits for B (held by ba); ba waits for A (held by ab)"
    )


async def test_abba_without_preemption_is_still_a_lock_order_finding(executor: Executor) -> None:
    # no deadlock in this schedule, but the two orders seen in one run are one (lockdep)
    result = await Runtime(executor=executor).run(two_locks_abba(), Fixed([]))
    assert result.finding is not None
    assert (result.finding.oracle, result.finding.step) == ("lock_order", 3)
    assert result.finding.message == (
        "ba takes A while holding B, but B was taken while holding A at step 1 (ab): possible ABBA deadlock"
    )


async def test_a_sleeping_lock_under_a_spinlock_is_a_finding(executor: Executor) -> None:
    from mmu import RwSem, SpinLock

    spin, sem = SpinLock("mmu_lock"), RwSem("mmap_lock")

    async def gup_under_lock(ctx: ActorContext) -> None:
        await ctx.spin_lock(spin)
        await ctx.down_read(sem, "get_user_pages")
        ctx.up_read(sem)
        ctx.spin_unlock(spin)

    result = await Runtime(executor=executor).run(world(ActorSpec("vcpu0", gup_under_lock)), Fixed([]))
    assert result.finding is not None
    assert (result.finding.oracle, result.finding.step) == ("sleep_in_atomic", 1)
    assert result.finding.message == "vcpu0 takes mmap_lock, which may sleep, while holding spinlock mmu_lock"


async def test_a_served_request_takes_locks_in_the_senders_thread(executor: Executor) -> None:
    """The server takes B for the client, who holds A: the edge is A -> B in the
    client's thread. The client then takes A under B itself: inconsistent order."""
    from mmu import SpinLock

    a, b, box = SpinLock("A"), SpinLock("B"), Mailbox("box")

    async def server(ctx: ActorContext) -> None:
        while True:
            req = await ctx.receive(box, "serve")
            await ctx.spin_lock(b)
            ctx.spin_unlock(b)
            ctx.answer(req)

    async def client(ctx: ActorContext) -> None:
        await ctx.spin_lock(a)
        await ctx.call(box, "x", label="call under A", resume="back")
        ctx.spin_unlock(a)
        await ctx.spin_lock(b)
        await ctx.spin_lock(a)
        ctx.spin_unlock(a)
        ctx.spin_unlock(b)

    result = await Runtime(executor=executor).run(
        world(ActorSpec("c", client), ActorSpec("s", server, daemon=True)), Fixed([])
    )
    assert result.finding is not None
    assert result.finding.oracle == "lock_order"
    assert result.finding.message.startswith("c takes A while holding B, but B was taken while holding A at step")


async def test_locks_of_one_class_share_one_order(executor: Executor) -> None:
    """Lockdep keys locks by class: taking two different HPTE lock bits in two orders
    against one rmap lock bit is one inversion (rmap[0] -> hpte[1], hpte[0] -> rmap[0])."""
    from mmu import SpinLock

    h0, h1 = SpinLock("hpte[0x0]", klass="HPTE"), SpinLock("hpte[0x1]", klass="HPTE")
    rmap = SpinLock("rmap[0x0]", klass="RMAP")

    async def fault(ctx: ActorContext) -> None:
        await ctx.spin_lock(h0)
        await ctx.spin_lock(rmap)
        ctx.spin_unlock(rmap)
        ctx.spin_unlock(h0)

    async def unmap(ctx: ActorContext) -> None:
        await ctx.spin_lock(rmap)
        await ctx.spin_lock(h1)
        ctx.spin_unlock(h1)
        ctx.spin_unlock(rmap)

    result = await Runtime(executor=executor).run(world(ActorSpec("f", fault), ActorSpec("u", unmap)), Fixed([]))
    assert result.finding is not None and result.finding.oracle == "lock_order"
    assert result.finding.message == (
        "u takes HPTE while holding RMAP, but RMAP was taken while holding HPTE at step 1 (f): possible ABBA deadlock"
    )


async def test_a_trylock_takes_a_free_lock_in_its_step_and_orders_nothing(executor: Executor) -> None:
    """try_lock_hpte under the rmap lock, against HPTE -> rmap elsewhere: no inversion, since a
    trylock never waits; a failed one leaves the lock to its owner."""
    from mmu import SpinLock

    hpte, rmap = SpinLock("hpte", klass="HPTE"), SpinLock("rmap", klass="RMAP")
    got: list[bool] = []

    async def fault(ctx: ActorContext) -> None:
        await ctx.spin_lock(hpte)
        await ctx.spin_lock(rmap)
        ctx.spin_unlock(rmap)
        await ctx.point("still holding the HPTE")
        ctx.spin_unlock(hpte)

    async def unmap(ctx: ActorContext) -> None:
        while True:
            await ctx.spin_lock(rmap, "lock_rmap")
            got.append(ctx.try_spin_lock(hpte))
            ctx.spin_unlock(rmap)
            if got[-1]:
                ctx.spin_unlock(hpte)
                return
            await ctx.point("spin while the HPTE is locked", guard=lambda: hpte.owner is None)

    # f takes both and keeps the HPTE; u tries then, fails, and spins until f is done
    result = await Runtime(executor=executor).run(
        world(ActorSpec("f", fault), ActorSpec("u", unmap)), Fixed([0, 0, 1])
    )
    assert result.finding is None, result.finding
    assert got == [False, True]
    assert hpte.owner is None and rmap.owner is None


async def test_actor_crash_is_a_finding_not_a_crash(executor: Executor) -> None:
    async def boom(ctx: ActorContext) -> None:
        await ctx.point("about to fail")
        raise KeyError("gone")

    result = await Runtime(executor=executor).run(world(ActorSpec("x", boom)), Fixed([]))
    assert result.finding is not None
    assert (result.finding.oracle, result.finding.step) == ("crash", 0)
    assert result.finding.message == "x raised KeyError: 'gone'"


async def test_model_lock_misuse_is_reported_as_crash(executor: Executor) -> None:
    async def careless(ctx: ActorContext) -> None:
        await ctx.point("install without mmu_lock")
        ctx.model.kvm.install_spte(0, 0x100, True, ctx.name)

    result = await Runtime(executor=executor).run(world(ActorSpec("vcpu0", careless)), Fixed([]))
    assert result.finding is not None
    assert result.finding.message == "vcpu0 raised LockError: vcpu0 must hold mmu_lock"


async def test_step_bound_ends_a_livelock(executor: Executor) -> None:
    async def spin(ctx: ActorContext) -> None:
        while True:
            await ctx.point("retry")

    result = await Runtime(max_steps=50, executor=executor).run(world(ActorSpec("s", spin)), Fixed([]))
    assert result.finding is not None
    assert result.finding.oracle == "step_bound"
    assert len(result.steps) == 50


async def test_blocked_daemon_is_not_a_deadlock_and_replies_unblock_callers(executor: Executor) -> None:
    box = Mailbox("box")
    record: list[str] = []

    async def server(ctx: ActorContext) -> None:
        while True:
            req = await ctx.receive(box, "serve")
            record.append(f"serve {req.message}")
            req.answer(req.message * 2)

    async def client(ctx: ActorContext) -> None:
        reply = await ctx.call(box, 21, label="send", resume="got reply")
        record.append(f"reply {reply}")

    result = await Runtime(executor=executor).run(world(ActorSpec("c", client), ActorSpec("s", server, daemon=True)), Fixed([]))
    assert result.finding is None
    assert record == ["serve 21", "reply 42"]
    assert [s.label for s in result.steps] == ["send", "serve", "got reply"]


async def test_oracle_runs_after_every_step_and_marks_the_fatal_one(executor: Executor) -> None:
    from mmu import Violation

    record: list[str] = []
    w = world(
        ActorSpec("a", recorder(record, "a", 5)),
        oracles={"three": lambda m: Violation("three", "third step") if len(record) == 3 else None},
    )
    result = await Runtime(executor=executor).run(w, Fixed([]))
    assert record == ["a0", "a1", "a2"]
    assert result.finding is not None
    assert (result.finding.oracle, result.finding.step) == ("three", 2)


async def test_replay_that_does_not_fit_raises_diverged(executor: Executor) -> None:
    record: list[str] = []
    w = world(ActorSpec("a", recorder(record, "a", 2)), ActorSpec("b", recorder(record, "b", 2)))
    with pytest.raises(ScheduleDiverged, match=r"^schedule diverged at decision 0: choice 5 but only 2"):
        await Runtime(executor=executor).run(w, Replay(Schedule((5,))))


async def test_many_runs_share_one_trio_loop(executor: Executor) -> None:
    token = trio.lowlevel.current_trio_token()
    runtime = Runtime(executor=executor)
    for seed in range(50):
        record: list[str] = []
        w = world(ActorSpec("a", recorder(record, "a", 3)), ActorSpec("b", recorder(record, "b", 3)))
        result = await runtime.run(w, RandomWalk(seed))
        assert sorted(record) == ["a0", "a1", "a2", "b0", "b1", "b2"]
        assert result.finding is None
    assert trio.lowlevel.current_trio_token() is token


async def test_a_strategy_out_of_range_is_an_internal_error_not_a_finding(executor: Executor) -> None:
    from actors import InternalError

    record: list[str] = []
    w = world(ActorSpec("a", recorder(record, "a", 2)), ActorSpec("b", recorder(record, "b", 2)))
    with pytest.raises(InternalError, match=r"^strategy chose 7 of 2 actors$"):
        await Runtime(executor=executor).run(w, Fixed([7]))


async def test_model_changes_before_the_first_point_are_refused(executor: Executor) -> None:
    async def eager(ctx: ActorContext) -> None:
        ctx.model.frames.alloc_page()  # runs in Trio's start order, not the strategy's
        await ctx.point("too late")

    record: list[str] = []
    result = await Runtime(executor=executor).run(world(ActorSpec("e", eager), ActorSpec("a", recorder(record, "a", 1))), Fixed([]))
    assert record == []
    assert result.finding is not None
    assert (result.finding.oracle, result.finding.step) == ("crash", -1)
    assert result.finding.message == (
        "an actor changed the model before its first scheduling point: alloc_page -> pfn 0x101 gen 1"
    )
