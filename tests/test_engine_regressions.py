"""Regressions found by trying vivace as a hostile user would (issue 9): deadlines that
pass together in one loop pass, coroutines thrown into while parked, tasks rescheduled
from another run, trap awaitables delegated to with ``yield from``, and the twins'
argument checks. Each ran differently from trio 0.35 (a crash, a wrong result or a
hang); the expected behaviour here is trio's."""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import pytest

import vivace as trio
from vivace.testing import MockClock, wait_all_tasks_blocked

# ---------------------------------------------------------------- deadlines in one pass


async def _jump_when_blocked(seconds: float) -> None:
    # A loop stall made deterministic: once everything is parked, move the clock past
    # several deadlines at once, so they all expire in the same pass of the run loop.
    await wait_all_tasks_blocked()
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, MockClock)
    clock.jump(seconds)


def _heap_size() -> int:
    return len(trio.lowlevel.current_task()._runner.deadlines)  # type: ignore[attr-defined]


def test_scope_deadline_before_sleep_deadline_in_one_pass() -> None:
    # The scope fires first and aborts the sleep, whose entry the same pass had
    # already popped: this used to be a KeyError and TrioInternalError.
    async def main() -> bool:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_jump_when_blocked, 2)
            with trio.move_on_after(1) as scope:
                await trio.sleep(1.5)
        assert _heap_size() == 0
        return scope.cancelled_caught

    assert trio.run(main, clock=MockClock()) is True


@pytest.mark.parametrize("sleep_for", [1.0, 1.5])
def test_sleep_deadline_no_later_than_scope_deadline_in_one_pass_raises(
    sleep_for: float,
) -> None:
    # trio's sleep is a cancel scope too, and every scope that expires in a pass is
    # cancelled before any task runs: the sleep raises Cancelled instead of returning.
    ran_on: list[str] = []

    async def main() -> bool:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_jump_when_blocked, 2)
            with trio.move_on_after(1.5) as scope:
                await trio.sleep(sleep_for)
                ran_on.append("after the sleep")
        assert _heap_size() == 0
        return scope.cancelled_caught

    assert trio.run(main, clock=MockClock()) is True
    assert ran_on == []


def test_sleep_alone_expiring_returns_normally() -> None:
    # The scope's deadline is still ahead after the jump: only the sleep fires.
    async def main() -> tuple[bool, float]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_jump_when_blocked, 2)
            with trio.move_on_after(3) as scope:
                await trio.sleep(1)
                reached = trio.current_time()
        return scope.cancelled_caught, reached

    assert trio.run(main, clock=MockClock()) == (False, 2.0)


def test_shielded_sleep_returns_when_outer_scope_expires_in_the_same_pass() -> None:
    async def main() -> tuple[bool, bool]:
        woke = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_jump_when_blocked, 2)
            with trio.move_on_after(1) as outer:
                with trio.CancelScope(shield=True):
                    await trio.sleep(1.5)
                    woke = True
                await trio.lowlevel.checkpoint()
        return woke, outer.cancelled_caught

    assert trio.run(main, clock=MockClock()) == (True, True)


def test_many_sleepers_and_nested_scopes_expiring_together() -> None:
    # Several tasks, each in two nested scopes; one jump passes every deadline.
    caught: list[tuple[int, bool, bool]] = []

    async def sleeper(i: int) -> None:
        with trio.move_on_after(1 + i / 10) as outer:
            with trio.move_on_after(2 + i / 10) as inner:
                await trio.sleep(1.5 + i / 20)
                caught.append((i, False, False))
        caught.append((i, outer.cancelled_caught, inner.cancelled_caught))

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(sleeper, i)
            nursery.start_soon(_jump_when_blocked, 10)
        return _heap_size()

    assert trio.run(main, clock=MockClock()) == 0
    # the outer scope's deadline is always the earliest of the three and all passed:
    # the sleep raised, the outer scope caught it, the inner one let it through
    assert sorted(caught) == [(i, True, False) for i in range(8)]


def test_a_real_loop_stall_past_both_deadlines_is_not_an_internal_error() -> None:
    # The same race on the real clock: a task blocks the loop well past both deadlines.
    # Whatever the timing, the scope's deadline is the earlier one, so it catches.
    async def staller() -> None:
        await wait_all_tasks_blocked()
        time.sleep(0.01)

    async def main() -> bool:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(staller)
            with trio.move_on_after(0.001) as scope:
                await trio.sleep(0.002)
        return scope.cancelled_caught

    for _ in range(20):
        assert trio.run(main) is True


# ---------------------------------------------------------------- throwing into parked tasks

_Waiter = Callable[[dict[str, Any]], Awaitable[object]]


async def _wait_event(things: dict[str, Any]) -> object:
    return await things["event"].wait()


async def _wait_lock(things: dict[str, Any]) -> object:
    return await things["lock"].acquire()


async def _wait_receive(things: dict[str, Any]) -> object:
    return await things["receive"].receive()


async def _wait_sleep(things: dict[str, Any]) -> object:
    return await trio.sleep(2)


async def _wait_park(things: dict[str, Any]) -> object:
    return await things["lot"].park()


async def _wait_recv(things: dict[str, Any]) -> object:
    return await things["a"].recv(10)


async def _wait_readable(things: dict[str, Any]) -> object:
    return await trio.lowlevel.wait_readable(things["a"])


async def _release(things: dict[str, Any]) -> None:
    # Whatever would normally end each wait.
    things["event"].set()
    things["lock"].release()
    things["lot"].unpark_all()
    try:
        # a dead receiver is still queued, as in trio, and takes the item
        things["send"].send_nowait("dropped")
    except trio.WouldBlock:
        pass
    await things["b"].send(b"x")


@pytest.mark.parametrize("how", ["throw", "close"])
@pytest.mark.parametrize(
    "wait",
    [_wait_event, _wait_lock, _wait_receive, _wait_sleep, _wait_park, _wait_recv, _wait_readable],
    ids=lambda f: f.__name__,
)
def test_throwing_into_a_parked_task_ends_it_with_runtime_error(
    how: str, wait: _Waiter
) -> None:
    # The kernel still has the task parked, so its wait must stay in place: the later
    # wake-up resumes the dead coroutine and the task fails, as in trio. Unlinking the
    # wait used to strand the task, and the run hung.
    async def main() -> None:
        a, b = trio.socket.socketpair()
        send, receive = trio.open_memory_channel[str](0)
        things = {
            "event": trio.Event(),
            "lock": trio.Lock(),
            "lot": trio.lowlevel.ParkingLot(),
            "send": send,
            "receive": receive,
            "a": a,
            "b": b,
        }
        await things["lock"].acquire()
        task: list[Any] = []

        async def victim(task_status: trio.TaskStatus[None]) -> None:
            task.append(trio.lowlevel.current_task())
            task_status.started()
            await wait(things)

        with a, b:
            async with trio.open_nursery() as nursery:
                await nursery.start(victim)
                await wait_all_tasks_blocked()
                coro = task[0].coro
                if how == "throw":
                    with pytest.raises(KeyError, match="from outside"):
                        coro.throw(KeyError("from outside"))
                else:
                    coro.close()
                await trio.sleep(3)  # past the sleep's deadline
                await _release(things)

    with pytest.raises(ExceptionGroup) as info:
        trio.run(main, clock=MockClock(autojump_threshold=0))
    assert info.group_contains(RuntimeError, match="cannot reuse already awaited coroutine")


def test_parked_task_thrown_into_still_sees_cancellation() -> None:
    # No wake-up ever comes: the enclosing deadline aborts the wait, which must still
    # work (the run used to hang here).
    async def main() -> None:
        task: list[Any] = []

        async def victim(task_status: trio.TaskStatus[None]) -> None:
            task.append(trio.lowlevel.current_task())
            task_status.started()
            await trio.Event().wait()

        with trio.move_on_after(5):
            async with trio.open_nursery() as nursery:
                await nursery.start(victim)
                await wait_all_tasks_blocked()
                task[0].coro.close()
                await trio.sleep_forever()

    with pytest.raises(ExceptionGroup) as info:
        trio.run(main, clock=MockClock(autojump_threshold=0))
    assert info.group_contains(RuntimeError, match="cannot reuse already awaited coroutine")


# ---------------------------------------------------------------- reschedule misuse


def test_rescheduling_a_task_of_another_run_raises_and_leaves_it_alone() -> None:
    parked = threading.Event()
    holder: list[Any] = []
    first: list[object] = []

    async def first_run() -> bool:
        holder.append(trio.lowlevel.current_task())
        with trio.move_on_after(0.5) as scope:
            parked.set()
            await trio.sleep_forever()
        return scope.cancelled_caught

    def in_thread() -> None:
        first.append(trio.run(first_run))

    thread = threading.Thread(target=in_thread, daemon=True)
    thread.start()
    assert parked.wait(30)

    async def second_run() -> None:
        with pytest.raises(RuntimeError, match="task of another run"):
            trio.lowlevel.reschedule(holder[0])

    trio.run(second_run)
    thread.join(30)
    assert not thread.is_alive()
    assert first == [True]  # ended through its own deadline, untouched


def test_rescheduling_an_exited_task_raises() -> None:
    async def main() -> None:
        task: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def quick() -> None:
                task.append(trio.lowlevel.current_task())

            nursery.start_soon(quick)
        with pytest.raises(RuntimeError, match="already exited"):
            trio.lowlevel.reschedule(task[0])

    trio.run(main)


# ---------------------------------------------------------------- trap awaitables


@types.coroutine
def _delegate(awaitable: Awaitable[Any]) -> Generator[Any, Any, Any]:
    return (yield from awaitable.__await__())


def test_trap_awaitables_can_be_delegated_to_with_yield_from() -> None:
    async def main() -> tuple[object, bytes]:
        event = trio.Event()
        event.set()
        lock = trio.Lock()
        send, receive = trio.open_memory_channel[int](1)
        await _delegate(trio.lowlevel.checkpoint())
        await _delegate(trio.lowlevel.cancel_shielded_checkpoint())
        await _delegate(event.wait())
        await _delegate(lock.acquire())
        assert lock.locked()
        lock.release()
        await _delegate(send.send(7))
        item = await _delegate(receive.receive())
        a, b = trio.socket.socketpair()
        with a, b:
            await _delegate(b.send(b"hi"))
            data = await _delegate(a.recv(2))
        return item, data

    assert trio.run(main) == (7, b"hi")


def test_one_checkpoint_object_awaited_twice_fails_only_the_late_awaiter() -> None:
    shared = trio.lowlevel.checkpoint()
    results: list[str] = []

    async def awaiter() -> None:
        try:
            await shared
        except RuntimeError as exc:
            results.append(str(exc))
        else:
            results.append("ok")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(awaiter)
            nursery.start_soon(awaiter)

    trio.run(main)
    assert sorted(results) == ["coroutine is being awaited already", "ok"]


def test_one_event_wait_awaited_twice_fails_only_the_late_awaiter() -> None:
    results: list[str] = []

    async def main() -> None:
        event = trio.Event()
        shared = event.wait()

        async def awaiter() -> None:
            try:
                await shared
            except RuntimeError as exc:
                results.append(str(exc))
            else:
                results.append("ok")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(awaiter)
            nursery.start_soon(awaiter)
            await wait_all_tasks_blocked()
            event.set()

    trio.run(main)
    assert sorted(results) == ["coroutine is being awaited already", "ok"]


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize("name", ["notify_closing", "wait_readable", "wait_writable"])
def test_fd_beyond_a_c_int_is_an_overflow_error(name: str) -> None:
    async def main() -> None:
        with pytest.raises(OverflowError, match="too large to convert to C int"):
            result = getattr(trio.lowlevel, name)(2**40)
            if result is not None:
                await result

    trio.run(main)


# ---------------------------------------------------------------- object lifetime


@pytest.mark.parametrize(
    "make",
    [
        trio.Event,
        trio.Lock,
        trio.StrictFIFOLock,
        trio.Condition,
        trio.lowlevel.ParkingLot,
        lambda: trio.Semaphore(1),
        lambda: trio.CapacityLimiter(1),
        lambda: trio.open_memory_channel[int](0)[0],
        lambda: trio.open_memory_channel[int](0)[1],
    ],
    ids=["Event", "Lock", "StrictFIFOLock", "Condition", "ParkingLot", "Semaphore",
         "CapacityLimiter", "MemorySendChannel", "MemoryReceiveChannel"],
)
def test_weak_references_die_with_the_object(make: Callable[[], object]) -> None:
    # The compiled Event once kept a dead object's weakref pointing at freed memory,
    # so it came back as whatever object was allocated there next (found by valgrind).
    import weakref

    obj = make()
    ref = weakref.ref(obj)
    del obj
    other = make()
    assert ref() is None
    assert ref() is not other


def test_sleep_until_a_past_deadline_is_an_immediate_checkpoint() -> None:
    # trio's sleep scope is cancelled on entry: the task is rescheduled within the same
    # step (task_scheduled before after_task_step), and no deadline is left waiting.
    hooks: list[str] = []

    class Hooks(trio.abc.Instrument):
        def task_scheduled(self, task: trio.lowlevel.Task) -> None:
            if task.name.endswith("main"):
                hooks.append("scheduled")

        def after_task_step(self, task: trio.lowlevel.Task) -> None:
            if task.name.endswith("main"):
                hooks.append("stepped")

    async def main() -> tuple[int, float]:
        trio.lowlevel.add_instrument(Hooks())
        hooks.clear()
        await trio.sleep_until(trio.current_time() - 1)
        stats = trio.lowlevel.current_statistics()
        return stats.tasks_runnable, stats.seconds_to_next_deadline

    assert trio.run(main, clock=MockClock()) == (0, float("inf"))
    assert hooks[:2] == ["scheduled", "stepped"]


def test_sleep_woken_by_its_deadline_raises_if_an_outer_scope_was_cancelled_meanwhile() -> None:
    # The deadline fired and the sleeper is runnable; before it resumes, an enclosing
    # scope is cancelled (here by an instrument, just before the sleeper's step, which
    # makes the order deterministic). trio's sleep scope then lets Cancelled through.
    seen: list[str] = []

    async def main() -> bool:
        sleeper = trio.lowlevel.current_task()
        with trio.CancelScope() as outer:

            class CancelBeforeWake(trio.abc.Instrument):
                def before_task_step(self, task: trio.lowlevel.Task) -> None:
                    if task is sleeper and trio.current_time() >= 1:
                        outer.cancel()

            trio.lowlevel.add_instrument(CancelBeforeWake())
            try:
                await trio.sleep(1)
                seen.append("returned")
            except trio.Cancelled:
                seen.append("cancelled")
                raise
        return outer.cancelled_caught

    assert trio.run(main, clock=MockClock(autojump_threshold=0)) is True
    assert seen == ["cancelled"]
