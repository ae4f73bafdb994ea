"""The engine halves of ParkingLot, Event, Lock and memory channels (``_core/_sync_py`` and
``_core/_ext/_sync.pyx``): behaviour that the public-API tests in test_sync.py and
test_channel.py do not pin down -- restart after a called-off cancel, closing or throwing
into a parked operation, reusing an operation, count arguments, re-parking, buffer
compaction, reference hygiene. Every test runs on whichever engine the session uses."""

from __future__ import annotations

import gc
import math
import random
import weakref
from collections import deque
from typing import Any

import pytest

import vivace as trio
from vivace._core import _impl
from vivace.lowlevel import ParkingLot, current_task
from vivace.testing import trio_test, wait_all_tasks_blocked


class _ShieldWhenRescheduled(trio.abc.Instrument):
    """Shields *scope* the first time *task* is rescheduled: a cancel that the task's
    operation is about to deliver is called off while the delivery is in flight."""

    def __init__(self, task: Any, scope: trio.CancelScope) -> None:
        self.task = task
        self.scope = scope
        self.fired = False

    def task_scheduled(self, task: Any) -> None:
        if task is self.task and not self.fired:
            self.fired = True
            self.scope.shield = True


async def _run_with_cancel_called_off(operation: Any) -> Any:
    with trio.CancelScope() as outer:
        with trio.CancelScope() as inner:
            outer.cancel()
            instrument = _ShieldWhenRescheduled(current_task(), inner)
            trio.lowlevel.add_instrument(instrument)
            try:
                result = await operation()
            finally:
                trio.lowlevel.remove_instrument(instrument)
    assert instrument.fired
    assert not outer.cancelled_caught
    return result


# ---------------------------------------------------------------- which engine


def test_hot_paths_come_from_the_selected_engine(engine: str) -> None:
    expected = "vivace._core._ext._sync" if engine == "compiled" else "vivace._core._sync_py"
    assert _impl.LotBase.__module__ == expected
    assert _impl.EventBase.__module__ == expected
    assert _impl.LockBase.__module__ == expected
    assert issubclass(ParkingLot, _impl.LotBase)
    assert issubclass(trio.Event, _impl.EventBase)
    assert issubclass(trio.Lock, _impl.LockBase)
    assert issubclass(trio.StrictFIFOLock, _impl.LockBase)
    assert issubclass(trio.MemorySendChannel, _impl.SendChannelBase)
    assert issubclass(trio.MemoryReceiveChannel, _impl.ReceiveChannelBase)


def test_lock_lot_is_a_public_parking_lot() -> None:
    assert type(trio.Lock()._lot) is ParkingLot
    assert type(trio.StrictFIFOLock()._lot) is ParkingLot


# ---------------------------------------------------------------- cancel called off


@trio_test
async def test_send_goes_ahead_when_its_cancel_is_called_off() -> None:
    send, receive = trio.open_memory_channel[int](1)
    await _run_with_cancel_called_off(lambda: send.send(7))
    assert receive.receive_nowait() == 7


@trio_test
async def test_receive_goes_ahead_when_its_cancel_is_called_off() -> None:
    send, receive = trio.open_memory_channel[int](1)
    send.send_nowait(8)
    assert await _run_with_cancel_called_off(receive.receive) == 8
    assert receive.statistics().current_buffer_used == 0


@trio_test
async def test_lock_acquire_goes_ahead_when_its_cancel_is_called_off() -> None:
    lock = trio.Lock()
    await _run_with_cancel_called_off(lock.acquire)
    assert lock.statistics().owner is current_task()
    lock.release()


# ---------------------------------------------------------------- driving by hand


@trio_test
async def test_closing_a_parked_park_leaves_the_lot() -> None:
    lot = ParkingLot()
    operation = lot.park()
    operation.send(None)
    assert len(lot) == 1
    operation.close()
    assert len(lot) == 0


@trio_test
async def test_throwing_into_a_parked_receive_leaves_the_queue() -> None:
    send, receive = trio.open_memory_channel[int](0)
    operation = receive.receive()
    operation.send(None)
    assert receive.statistics().tasks_waiting_receive == 1
    with pytest.raises(KeyError, match="thrown"):
        operation.throw(KeyError("thrown"))
    assert receive.statistics().tasks_waiting_receive == 0
    with pytest.raises(trio.WouldBlock):  # nobody is waiting any more
        send.send_nowait(1)


@trio_test
async def test_closing_a_parked_send_takes_its_item_back() -> None:
    send, receive = trio.open_memory_channel[str](0)
    operation = send.send("never")
    operation.send(None)
    assert send.statistics().tasks_waiting_send == 1
    operation.close()
    assert send.statistics().tasks_waiting_send == 0
    with pytest.raises(trio.WouldBlock):
        receive.receive_nowait()


@trio_test
async def test_an_operation_can_be_awaited_only_once() -> None:
    lock = trio.Lock()
    operation = lock.acquire()
    await operation
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        await operation
    lock.release()


@trio_test
async def test_lock_aexit_releases_when_awaited_not_when_called() -> None:
    lock = trio.Lock()
    await lock.acquire()
    exiting = lock.__aexit__(None, None, None)
    assert lock.locked()
    schedule_points = current_task()._schedule_points
    await exiting
    assert not lock.locked()
    assert current_task()._schedule_points == schedule_points  # releasing never blocks


@trio_test
async def test_operations_run_as_tasks_of_their_own() -> None:
    lot = ParkingLot()
    lock = trio.Lock()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lot.park)
        nursery.start_soon(lock.acquire)  # exits holding the lock: breaks its lot
        await wait_all_tasks_blocked()
        assert len(lot) == 1
        lot.unpark_all()
    with pytest.raises(
        trio.BrokenResourceError, match="^Owner of this lock exited without releasing: "
    ):
        await lock.acquire()


# ---------------------------------------------------------------- ParkingLot details


async def _parkers(nursery: trio.Nursery, lot: ParkingLot, n: int) -> None:
    for _ in range(n):
        nursery.start_soon(lot.park)
    await wait_all_tasks_blocked()


@trio_test
async def test_unpark_count_may_be_infinite_but_not_fractional() -> None:
    lot = ParkingLot()
    async with trio.open_nursery() as nursery:
        await _parkers(nursery, lot, 4)
        with pytest.raises(ValueError, match="non-integer"):
            lot.unpark(count=2.5)
        assert lot.unpark(count=-1) == []
        assert len(lot.unpark(count=1)) == 1
        assert len(lot.unpark(count=math.inf)) == 3
        assert lot.unpark(count=5) == []


@trio_test
async def test_unpark_returns_tasks_oldest_first() -> None:
    lot = ParkingLot()
    order: list[Any] = []

    async def parker() -> None:
        order.append(current_task())
        await lot.park()

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(parker)
            await wait_all_tasks_blocked()
        assert lot.unpark(count=10) == order


@trio_test
async def test_repark_refuses_anything_but_a_parking_lot() -> None:
    with pytest.raises(TypeError, match="new_lot must be a ParkingLot"):
        ParkingLot().repark(trio.Event())  # type: ignore[arg-type]


@trio_test
async def test_cancelling_a_reparked_task_removes_it_from_its_new_lot() -> None:
    first, second = ParkingLot(), ParkingLot()
    scopes: list[trio.CancelScope] = []
    outcome: list[str] = []

    async def parker() -> None:
        with trio.CancelScope() as scope:
            scopes.append(scope)
            await first.park()
        outcome.append("cancelled" if scope.cancelled_caught else "woken")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(parker)
        await wait_all_tasks_blocked()
        first.repark_all(second)
        assert (len(first), len(second)) == (0, 1)
        scopes[0].cancel()
        await wait_all_tasks_blocked()
        assert (len(first), len(second)) == (0, 0)
    assert outcome == ["cancelled"]


@trio_test
async def test_breaking_a_lot_wakes_its_parkers_with_the_breaker_named() -> None:
    lot = ParkingLot()
    errors: list[str] = []

    async def parker() -> None:
        try:
            await lot.park()
        except trio.BrokenResourceError as exc:
            errors.append(str(exc))

    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(parker)
        await wait_all_tasks_blocked()
        lot.break_lot()
    me = current_task()
    assert errors == [f"Parking lot broken by {me}"] * 2
    assert lot.broken_by == [me]


# ---------------------------------------------------------------- Event and channels


@trio_test
async def test_waiting_on_a_set_event_in_a_cancelled_scope_raises() -> None:
    event = trio.Event()
    event.set()
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await event.wait()


@trio_test
async def test_async_for_ends_when_a_parked_receiver_sees_the_end() -> None:
    send, receive = trio.open_memory_channel[int](0)
    got: list[object] = []

    async def consumer() -> None:
        async for item in receive:
            got.append(item)
        got.append("end")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await wait_all_tasks_blocked()
        await send.send(1)
        await wait_all_tasks_blocked()
        send.close()
    assert got == [1, "end"]


@trio_test
async def test_buffer_stays_fifo_through_compaction() -> None:
    send, receive = trio.open_memory_channel[int](100)
    rng = random.Random(20240611)
    expected: deque[int] = deque()
    counter = 0
    for _ in range(300):
        for _ in range(rng.randrange(0, 101 - len(expected))):
            send.send_nowait(counter)
            expected.append(counter)
            counter += 1
        for _ in range(rng.randrange(0, len(expected) + 1)):
            assert receive.receive_nowait() == expected.popleft()
        assert receive.statistics().current_buffer_used == len(expected)
    while expected:
        assert receive.receive_nowait() == expected.popleft()
    assert receive.statistics().peak_buffer_used == 100


@trio_test
async def test_received_tuples_and_exceptions_arrive_intact() -> None:
    send, receive = trio.open_memory_channel[object](0)
    items: list[object] = [(1, 2), (), ValueError("an item, not an error"), None]
    got: list[object] = []

    async def consumer() -> None:
        for _ in items:
            got.append(await receive.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        for item in items:
            await send.send(item)
    assert got == items


@trio_test
async def test_finished_operations_keep_nothing_alive() -> None:
    ping_send, ping_receive = trio.open_memory_channel[int](0)
    pong_send, pong_receive = trio.open_memory_channel[int](0)
    lock, event = trio.Lock(), trio.Event()

    async def partner() -> None:
        for _ in range(5):
            # (ruff's F821 below: these names are deleted later, after partner ran.)
            await pong_send.send(await ping_receive.receive())  # noqa: F821
            async with lock:  # noqa: F821
                await trio.lowlevel.checkpoint()
        event.set()  # noqa: F821

    async with trio.open_nursery() as nursery:
        nursery.start_soon(partner)
        for i in range(5):
            await ping_send.send(i)
            assert await pong_receive.receive() == i
            async with lock:
                await trio.lowlevel.checkpoint()
        await event.wait()
    kept = (ping_send, ping_receive, pong_send, pong_receive, lock, lock._lot, event)
    refs = [weakref.ref(obj) for obj in kept]
    del kept, ping_send, ping_receive, pong_send, pong_receive, lock, event, partner
    gc.disable()
    try:
        assert [ref() for ref in refs] == [None] * len(refs)
    finally:
        gc.enable()
