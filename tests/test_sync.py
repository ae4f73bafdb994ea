"""Event, Lock, StrictFIFOLock, Semaphore, Condition and CapacityLimiter: trio's
behaviour, FIFO hand-off (no barging), atomicity under cancellation, errors."""

from __future__ import annotations

import math
import weakref
from typing import Any

import pytest

import vivace as trio
from vivace.testing import (
    MockClock,
    assert_checkpoints,
    trio_test,
    wait_all_tasks_blocked,
)

LOCK_CLASSES = [trio.Lock, trio.StrictFIFOLock]


async def _fifo_order(acquire_release_cycle: Any, workers: int = 4, rounds: int = 5) -> None:
    """Workers queue up on a primitive; after the first round, they must get it in the
    same order every round."""
    first_come: list[int] = []
    served: list[int] = []

    async def worker(i: int) -> None:
        first_come.append(i)
        for _ in range(rounds):
            await acquire_release_cycle(lambda: served.append(i))

    async with trio.open_nursery() as nursery:
        for i in range(workers):
            nursery.start_soon(worker, i)
    assert len(served) == workers * rounds
    for r in range(rounds):
        assert served[r * workers : (r + 1) * workers] == first_come


# ---------------------------------------------------------------- Event


@trio_test
async def test_event_wait_on_a_set_event_is_a_checkpoint() -> None:
    event = trio.Event()
    event.set()
    with assert_checkpoints():
        await event.wait()


@trio_test
async def test_event_set_wakes_every_waiter() -> None:
    event = trio.Event()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        await event.wait()
        woken.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(waiter, i)
        await wait_all_tasks_blocked()
        assert event.statistics().tasks_waiting == 3
        assert not event.is_set()
        event.set()
    assert sorted(woken) == [0, 1, 2]
    assert event.statistics().tasks_waiting == 0


def test_event_refuses_to_be_used_as_a_bool() -> None:
    with pytest.raises(NotImplementedError, match="is_set"):
        bool(trio.Event())


@trio_test
async def test_event_cancelled_waiter_is_forgotten() -> None:
    event = trio.Event()
    with trio.move_on_after(0) as scope:
        await event.wait()
    assert scope.cancelled_caught
    assert event.statistics().tasks_waiting == 0


# ---------------------------------------------------------------- Lock / StrictFIFOLock


@pytest.mark.parametrize("lock_cls", LOCK_CLASSES, ids=lambda c: c.__name__)
@trio_test
async def test_lock_async_with_holds_it_for_the_block(lock_cls: Any) -> None:
    lock = lock_cls()
    assert not lock.locked()
    with assert_checkpoints():
        async with lock:
            assert lock.locked()
            assert lock.statistics().owner is trio.lowlevel.current_task()
    assert not lock.locked()


@pytest.mark.parametrize("lock_cls", LOCK_CLASSES, ids=lambda c: c.__name__)
@trio_test
async def test_lock_reacquire_by_owner_is_a_runtime_error(lock_cls: Any) -> None:
    lock = lock_cls()
    lock.acquire_nowait()
    with pytest.raises(RuntimeError, match="^attempt to re-acquire an already held Lock$"):
        lock.acquire_nowait()
    with pytest.raises(RuntimeError, match="^attempt to re-acquire an already held Lock$"):
        await lock.acquire()
    lock.release()


@pytest.mark.parametrize("lock_cls", LOCK_CLASSES, ids=lambda c: c.__name__)
@trio_test
async def test_lock_release_by_non_owner_is_a_runtime_error(lock_cls: Any) -> None:
    lock = lock_cls()
    with pytest.raises(RuntimeError, match="^can't release a Lock you don't own$"):
        lock.release()

    async def hold(task_status: Any) -> None:
        async with lock:
            task_status.started()
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(hold)
        with pytest.raises(RuntimeError, match="don't own"):
            lock.release()
        with pytest.raises(trio.WouldBlock):
            lock.acquire_nowait()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("lock_cls", LOCK_CLASSES, ids=lambda c: c.__name__)
def test_lock_with_instead_of_async_with_is_refused(lock_cls: Any) -> None:
    lock = lock_cls()
    with pytest.raises(TypeError, match="'async with', not 'with'"):
        with lock:
            pass  # pragma: no cover


@pytest.mark.parametrize("lock_cls", LOCK_CLASSES, ids=lambda c: c.__name__)
@trio_test
async def test_lock_is_fifo_fair(lock_cls: Any) -> None:
    lock = lock_cls()

    async def cycle(record: Any) -> None:
        async with lock:
            record()
            await trio.lowlevel.checkpoint()

    await _fifo_order(cycle)


@pytest.mark.parametrize("lock_cls", LOCK_CLASSES, ids=lambda c: c.__name__)
@trio_test
async def test_lock_release_hands_ownership_to_oldest_waiter(lock_cls: Any) -> None:
    lock = lock_cls()
    await lock.acquire()
    waiters: list[Any] = []

    async def waiter(task_status: Any) -> None:
        waiters.append(trio.lowlevel.current_task())
        task_status.started()
        async with lock:
            pass

    async with trio.open_nursery() as nursery:
        await nursery.start(waiter)
        await nursery.start(waiter)
        await wait_all_tasks_blocked()
        lock.release()
        # No barging: the first waiter owns the lock before it even runs.
        assert lock.statistics().owner is waiters[0]
        assert lock.statistics().tasks_waiting == 1
        with pytest.raises(trio.WouldBlock):
            lock.acquire_nowait()
    assert not lock.locked()


@trio_test
async def test_parking_directly_in_lock_lot_acquires_on_wakeup() -> None:
    # What anyio's trio backend does for its fast-acquire path.
    lock = trio.Lock()
    lock.acquire_nowait()
    got_it: list[bool] = []

    async def direct_parker() -> None:
        with pytest.raises(trio.WouldBlock):
            lock.acquire_nowait()
        await lock._lot.park()
        got_it.append(lock.statistics().owner is trio.lowlevel.current_task())
        lock.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(direct_parker)
        await wait_all_tasks_blocked()
        lock.release()
    assert got_it == [True]
    assert not lock.locked()


@trio_test
async def test_lock_cancelled_waiter_never_gets_the_lock() -> None:
    lock = trio.Lock()
    await lock.acquire()
    outcome: list[str] = []

    async def waiter() -> None:
        with trio.CancelScope() as scope:
            outcome.append("waiting")
            cancel_scopes.append(scope)
            await lock.acquire()
            outcome.append("acquired")  # pragma: no cover
        outcome.append("cancelled")

    cancel_scopes: list[trio.CancelScope] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        cancel_scopes[0].cancel()
        await wait_all_tasks_blocked()
        lock.release()
    assert outcome == ["waiting", "cancelled"]
    assert not lock.locked()
    assert lock.statistics().tasks_waiting == 0


@trio_test
async def test_lock_acquire_in_cancelled_scope_does_not_acquire() -> None:
    lock = trio.Lock()
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await lock.acquire()
    assert not lock.locked()


@trio_test
async def test_lock_owner_exiting_while_holding_breaks_waiters() -> None:
    lock = trio.Lock()

    async def take_and_leave(task_status: Any) -> None:
        await lock.acquire()
        task_status.started()
        await trio.lowlevel.checkpoint()

    async def waiter() -> None:
        with pytest.raises(
            trio.BrokenResourceError, match="^Owner of this lock exited without releasing: "
        ):
            await lock.acquire()

    async with trio.open_nursery() as nursery:
        await nursery.start(take_and_leave)
        nursery.start_soon(waiter)
    # ...and later acquirers too, instead of hanging forever.
    with pytest.raises(trio.BrokenResourceError, match="exited without releasing"):
        await lock.acquire()


@trio_test
async def test_lock_statistics_and_repr() -> None:
    lock = trio.StrictFIFOLock()
    assert "unlocked StrictFIFOLock" in repr(lock)
    stats = lock.statistics()
    assert (stats.locked, stats.owner, stats.tasks_waiting) == (False, None, 0)
    async with lock:
        assert "locked StrictFIFOLock" in repr(lock)
        assert lock.statistics() == trio.LockStatistics(
            locked=True, owner=trio.lowlevel.current_task(), tasks_waiting=0
        )
        with pytest.raises(AttributeError):
            lock.statistics().locked = False  # type: ignore[misc]


def test_lock_can_be_weakly_referenced() -> None:
    lock = trio.Lock()
    assert weakref.ref(lock)() is lock


def test_lock_classes_are_final() -> None:
    with pytest.raises(TypeError):

        class MyLock(trio.Lock):  # type: ignore[misc]
            pass


# ---------------------------------------------------------------- Semaphore


def test_semaphore_validates_its_arguments() -> None:
    with pytest.raises(TypeError):
        trio.Semaphore(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^initial value must be >= 0$"):
        trio.Semaphore(-1)
    with pytest.raises(TypeError):
        trio.Semaphore(1, max_value=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^max_values must be >= initial_value$"):
        trio.Semaphore(2, max_value=1)


@trio_test
async def test_semaphore_counts_down_and_blocks_at_zero() -> None:
    sem = trio.Semaphore(2)
    assert sem.value == 2 and sem.max_value is None
    sem.acquire_nowait()
    with assert_checkpoints():
        await sem.acquire()
    assert sem.value == 0
    with pytest.raises(trio.WouldBlock):
        sem.acquire_nowait()
    sem.release()
    sem.release()
    sem.release()  # no max_value: may exceed the initial value
    assert sem.value == 3


def test_semaphore_release_past_max_value_is_refused() -> None:
    sem = trio.Semaphore(1, max_value=1)
    with pytest.raises(ValueError, match="^semaphore released too many times$"):
        sem.release()
    assert sem.value == 1


@trio_test
async def test_semaphore_release_hands_the_unit_to_a_waiter() -> None:
    sem = trio.Semaphore(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sem.acquire)
        await wait_all_tasks_blocked()
        assert sem.statistics().tasks_waiting == 1
        sem.release()
        assert sem.value == 0
        with pytest.raises(trio.WouldBlock):
            sem.acquire_nowait()
    assert sem.value == 0


@trio_test
async def test_semaphore_is_fifo_fair() -> None:
    sem = trio.Semaphore(1)

    async def cycle(record: Any) -> None:
        async with sem:
            record()
            await trio.lowlevel.checkpoint()

    await _fifo_order(cycle)


@trio_test
async def test_semaphore_cancelled_waiter_takes_nothing() -> None:
    sem = trio.Semaphore(0)
    with trio.move_on_after(0):
        await sem.acquire()
    sem.release()
    assert sem.value == 1
    assert sem.statistics().tasks_waiting == 0


@trio_test
async def test_parking_directly_in_semaphore_lot_takes_a_unit() -> None:
    sem = trio.Semaphore(0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sem._lot.park)
        await wait_all_tasks_blocked()
        sem.release()
    assert sem.value == 0


def test_semaphore_repr_shows_value_and_bound() -> None:
    assert "Semaphore(1, max_value=3)" in repr(trio.Semaphore(1, max_value=3))


# ---------------------------------------------------------------- Condition


def test_condition_requires_a_plain_lock() -> None:
    with pytest.raises(TypeError):
        trio.Condition(trio.Semaphore(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        trio.Condition(trio.StrictFIFOLock())  # type: ignore[arg-type]


@trio_test
async def test_condition_wait_and_notify_require_the_lock() -> None:
    cond = trio.Condition()
    with pytest.raises(RuntimeError, match="must hold the lock to wait"):
        await cond.wait()
    with pytest.raises(RuntimeError, match="must hold the lock to notify"):
        cond.notify()
    with pytest.raises(RuntimeError, match="must hold the lock to notify"):
        cond.notify_all()


@trio_test
async def test_condition_notify_wakes_waiters_in_fifo_order() -> None:
    cond = trio.Condition()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        async with cond:
            await cond.wait()
            woken.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(waiter, i)
            await wait_all_tasks_blocked()
        async with cond:
            cond.notify(2)
            stats = cond.statistics()
            assert stats.tasks_waiting == 2
            assert stats.lock_statistics.tasks_waiting == 2
        await wait_all_tasks_blocked()
        assert woken == [0, 1]
        async with cond:
            cond.notify_all()
    assert woken == [0, 1, 2, 3]


@trio_test
async def test_condition_cancelled_wait_still_reacquires_the_lock() -> None:
    cond = trio.Condition()
    with trio.CancelScope() as scope:
        async with cond:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await cond.wait()
            assert cond.locked()
    assert not cond.locked()


@trio_test
async def test_condition_shares_the_given_lock() -> None:
    lock = trio.Lock()
    cond = trio.Condition(lock)
    await cond.acquire()
    assert lock.locked()
    cond.release()
    assert not lock.locked()


# ---------------------------------------------------------------- CapacityLimiter


def test_capacity_limiter_validates_total_tokens() -> None:
    with pytest.raises(TypeError, match="int or math.inf"):
        trio.CapacityLimiter(1.0)
    with pytest.raises(ValueError, match="^total_tokens must be >= 0$"):
        trio.CapacityLimiter(-1)
    limiter = trio.CapacityLimiter(1)
    with pytest.raises(TypeError):
        limiter.total_tokens = 2.5
    with pytest.raises(ValueError, match="^total_tokens must be >= 0$"):
        limiter.total_tokens = -3
    assert limiter.total_tokens == 1


@trio_test
async def test_capacity_limiter_tracks_borrowers() -> None:
    limiter = trio.CapacityLimiter(2)
    me = trio.lowlevel.current_task()
    with assert_checkpoints():
        await limiter.acquire()
    await limiter.acquire_on_behalf_of("thread")
    stats = limiter.statistics()
    assert stats == trio.CapacityLimiterStatistics(
        borrowed_tokens=2, total_tokens=2, borrowers=[me, "thread"], tasks_waiting=0
    )
    assert limiter.available_tokens == 0
    with pytest.raises(trio.WouldBlock):
        limiter.acquire_on_behalf_of_nowait("other")
    limiter.release_on_behalf_of("thread")
    limiter.release()
    assert limiter.borrowed_tokens == 0


@trio_test
async def test_capacity_limiter_one_token_per_borrower() -> None:
    limiter = trio.CapacityLimiter(5)
    limiter.acquire_nowait()
    with pytest.raises(RuntimeError, match="already holding"):
        limiter.acquire_nowait()
    with pytest.raises(RuntimeError, match="already holding"):
        await limiter.acquire()
    assert limiter.borrowed_tokens == 1
    with pytest.raises(RuntimeError, match="isn't holding"):
        limiter.release_on_behalf_of("nobody")


@trio_test
async def test_capacity_limiter_is_fifo_fair() -> None:
    limiter = trio.CapacityLimiter(1)

    async def cycle(record: Any) -> None:
        async with limiter:
            record()
            await trio.lowlevel.checkpoint()

    await _fifo_order(cycle)


@trio_test
async def test_capacity_limiter_release_hands_token_to_oldest_waiter() -> None:
    limiter = trio.CapacityLimiter(1)
    await limiter.acquire_on_behalf_of("a")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.acquire_on_behalf_of, "b")
        await wait_all_tasks_blocked()
        nursery.start_soon(limiter.acquire_on_behalf_of, "c")
        await wait_all_tasks_blocked()
        limiter.release_on_behalf_of("a")
        assert limiter.statistics().borrowers == ["b"]
        with pytest.raises(trio.WouldBlock):
            limiter.acquire_nowait()
        limiter.release_on_behalf_of("b")
        assert limiter.statistics().borrowers == ["c"]
    limiter.release_on_behalf_of("c")


@trio_test
async def test_capacity_limiter_raising_total_tokens_wakes_waiters_in_order() -> None:
    limiter = trio.CapacityLimiter(1)
    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(limiter.acquire_on_behalf_of, i)
            await wait_all_tasks_blocked()
        assert limiter.statistics().borrowers == [0]
        limiter.total_tokens = 3
        assert limiter.statistics().borrowers == [0, 1, 2]
        assert limiter.statistics().tasks_waiting == 2
        limiter.total_tokens = math.inf
        assert limiter.statistics().borrowers == [0, 1, 2, 3, 4]
        assert limiter.available_tokens == math.inf


@trio_test
async def test_capacity_limiter_lowering_total_tokens_lets_holders_finish() -> None:
    limiter = trio.CapacityLimiter(3)
    for who in "abc":
        limiter.acquire_on_behalf_of_nowait(who)
    limiter.total_tokens = 1
    assert limiter.borrowed_tokens == 3
    assert limiter.available_tokens == -2
    limiter.release_on_behalf_of("a")
    limiter.release_on_behalf_of("b")
    with pytest.raises(trio.WouldBlock):
        limiter.acquire_on_behalf_of_nowait("d")
    limiter.release_on_behalf_of("c")
    limiter.acquire_on_behalf_of_nowait("d")


@trio_test
async def test_capacity_limiter_cancelled_waiter_leaves_no_trace() -> None:
    limiter = trio.CapacityLimiter(0)
    with trio.move_on_after(0):
        await limiter.acquire()
    stats = limiter.statistics()
    assert stats.tasks_waiting == 0
    assert stats.borrowers == []
    limiter.total_tokens = 1
    assert limiter.statistics().borrowers == []


@trio_test
async def test_capacity_limiter_timeouts_with_mock_clock(autojump_clock: MockClock) -> None:
    limiter = trio.CapacityLimiter(1)
    done: list[float] = []

    async def borrow_for(seconds: float) -> None:
        async with limiter:
            await trio.sleep(seconds)
            done.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(borrow_for, 10)
    assert [round(t - start) for t in done] == [10, 20, 30]


def test_capacity_limiter_repr_mentions_usage() -> None:
    assert "0/inf" in repr(trio.CapacityLimiter(math.inf))


# ---------------------------------------------------------------- generic


@pytest.mark.parametrize(
    "factory",
    [trio.Lock, trio.StrictFIFOLock, lambda: trio.Semaphore(1), lambda: trio.CapacityLimiter(1)],
    ids=["Lock", "StrictFIFOLock", "Semaphore", "CapacityLimiter"],
)
@trio_test
async def test_lock_like_primitives_exclude_each_other(factory: Any) -> None:
    primitive = factory()
    inside = 0
    entries = 0

    async def worker() -> None:
        nonlocal inside, entries
        for _ in range(10):
            async with primitive:
                inside += 1
                entries += 1
                assert inside == 1
                await trio.lowlevel.checkpoint()
                inside -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(worker)
    assert entries == 50


@pytest.mark.parametrize(
    "factory",
    [trio.Lock, trio.Condition, lambda: trio.Semaphore(1), lambda: trio.CapacityLimiter(1)],
    ids=["Lock", "Condition", "Semaphore", "CapacityLimiter"],
)
@trio_test
async def test_acquire_nowait_blocks_later_acquire(factory: Any) -> None:
    primitive = factory()
    record: list[str] = []

    async def taker() -> None:
        async with primitive:
            record.append("got it")

    async with trio.open_nursery() as nursery:
        primitive.acquire_nowait()
        nursery.start_soon(taker)
        await wait_all_tasks_blocked()
        assert record == []
        primitive.release()
    assert record == ["got it"]
