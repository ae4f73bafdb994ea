"""Twin tests for the locks: ``LockBase`` and ``set_lot_class`` of
``vivace._core._sync_py`` (reference) against ``vivace._core._ext._sync`` with
``_sync_lock.pxi`` (compiled) -- hand-off to the oldest waiter, the owner's registration
as its lot's breaker, misuse errors, cancellation and KeyboardInterrupt. Each test runs
the same scenario on both twins, each on a kernel of its own engine
(``_sync_twins_support.Harness``), and compares the logs (results, error types and
messages, checkpoint counters) with one literal expectation.
"""

from __future__ import annotations

from typing import Any

import pytest

from _sync_twins_support import TWINS, Harness, Twin, lot_class


@pytest.fixture(params=TWINS)
def tw(request: pytest.FixtureRequest) -> Twin:
    return request.param  # type: ignore[no-any-return]


async def parker(h: Harness, lot: Any, label: str) -> None:
    await h.attempt(label, lot.park)


async def holder(h: Harness, lock: Any, hold: Any, label: str) -> None:
    await h.attempt(f"{label} acquire", lock.acquire)
    await hold.park()
    h.call(f"{label} release", lock.release)


def test_release_hands_the_lock_to_the_oldest_waiter(tw: Twin) -> None:
    h = Harness(tw)
    lock, hold = tw.S.LockBase(), tw.S.LotBase()
    a = h.start("a", holder, h, lock, hold, "a")
    assert (lock.locked(), lock._owner, h.points(a)) == (True, a, (2, 2))  # acquire + park
    assert h.k._lot_breakers == {a: [lock._lot]}
    b = h.start("b", holder, h, lock, hold, "b")
    c = h.start("c", holder, h, lock, hold, "c")
    assert (len(lock._lot), b.custom_sleep_data, c.custom_sleep_data) == (2, lock._lot, lock._lot)
    hold.unpark()  # a releases: b owns the lock before it even runs
    h.run_one()
    assert (lock._owner, len(lock._lot)) == (b, 1)
    assert h.k._lot_breakers == {b: [lock._lot]}
    h.run()
    hold.unpark()
    h.run()
    hold.unpark()
    h.run()
    assert (lock.locked(), lock._owner, h.k._lot_breakers) == (False, None, {})
    assert h.log == [
        ("a acquire", "ok", None),
        ("a release", "ok", None),
        ("exit", "a", None),
        ("b acquire", "ok", None),
        ("b release", "ok", None),
        ("exit", "b", None),
        ("c acquire", "ok", None),
        ("c release", "ok", None),
        ("exit", "c", None),
    ]


async def misuser(h: Harness, lock: Any) -> None:
    h.call("release", lock.release)
    h.call("nowait", lock.acquire_nowait)
    h.call("nowait again", lock.acquire_nowait)
    await h.attempt("acquire again", lock.acquire)
    await h.attempt("aenter again", lock.__aenter__)
    await h.attempt("aexit", lambda: lock.__aexit__(None, None, None))
    h.call("release again", lock.release)


def test_lock_misuse_errors(tw: Twin) -> None:
    h = Harness(tw)
    lock = tw.S.LockBase()
    a = h.start("a", misuser, h, lock)
    # the refused acquires passed their cancel point first (as trio's
    # checkpoint_if_cancelled), but no schedule point; nothing else is a checkpoint
    assert h.points(a) == (2, 0)
    assert h.log == [
        ("release", "RuntimeError", "can't release a Lock you don't own"),
        ("nowait", "ok", None),
        ("nowait again", "RuntimeError", "attempt to re-acquire an already held Lock"),
        ("acquire again", "RuntimeError", "attempt to re-acquire an already held Lock"),
        ("aenter again", "RuntimeError", "attempt to re-acquire an already held Lock"),
        ("aexit", "ok", None),
        ("release again", "RuntimeError", "can't release a Lock you don't own"),
        ("exit", "a", None),
    ]


def test_acquire_nowait_would_block_while_held_or_waited_for(tw: Twin) -> None:
    h = Harness(tw)
    lock, hold = tw.S.LockBase(), tw.S.LotBase()
    h.start("a", holder, h, lock, hold, "a")
    h.start("b", lambda: h.attempt("b nowait", lambda: _sync_call(lock.acquire_nowait)))
    hold.unpark()
    h.run()
    # Free, but a task parks in its lot directly (as Condition and anyio do).
    h.start("p", parker, h, lock._lot, "p")
    h.start("c", lambda: h.attempt("c nowait", lambda: _sync_call(lock.acquire_nowait)))
    assert (lock.locked(), len(lock._lot)) == (False, 1)
    d = h.start("d", holder, h, lock, hold, "d")
    assert (lock.locked(), len(lock._lot)) == (False, 2)  # no barging past the parker
    lock._lot.unpark()  # the parker is woken, but nobody owns the lock
    h.run()
    h.cancel(d)
    h.run()
    assert h.log == [
        ("a acquire", "ok", None),
        ("b nowait", "WouldBlock", ""),
        ("exit", "b", None),
        ("a release", "ok", None),
        ("exit", "a", None),
        ("c nowait", "WouldBlock", ""),
        ("exit", "c", None),
        ("p", "ok", None),
        ("exit", "p", None),
        ("d acquire", "FakeCancelled", "cancelled"),
        ("exit", "d", "FakeCancelled", "cancelled"),
    ]


async def _sync_call(fn: Any) -> Any:
    return fn()


async def async_with(h: Harness, lock: Any, hold: Any, label: str) -> None:
    async with lock:
        h.log.append((label, "inside", lock._owner.name))
        await hold.park()
    h.log.append((label, "after", lock.locked()))


def test_async_with_acquires_and_releases(tw: Twin) -> None:
    h = Harness(tw)
    lock, hold = tw.S.LockBase(), tw.S.LotBase()
    a = h.start("a", async_with, h, lock, hold, "a")
    b = h.start("b", async_with, h, lock, hold, "b")
    hold.unpark()
    h.run()
    hold.unpark()
    h.run()
    # aexit is not a checkpoint; b's acquire passed its own cancel point, then parked
    assert [h.points(t) for t in (a, b)] == [(2, 2), (3, 2)]
    assert h.log == [
        ("a", "inside", "a"),
        ("a", "after", True),
        ("exit", "a", None),
        ("b", "inside", "b"),
        ("b", "after", False),
        ("exit", "b", None),
    ]


def test_a_cancelled_waiter_leaves_and_never_owns_the_lock(tw: Twin) -> None:
    h = Harness(tw)
    lock, hold = tw.S.LockBase(), tw.S.LotBase()
    h.start("a", holder, h, lock, hold, "a")
    b = h.start("b", holder, h, lock, hold, "b")
    c = h.start("c", holder, h, lock, hold, "c")
    h.cancel(b)
    h.run()
    assert (len(lock._lot), b.custom_sleep_data) == (1, None)
    hold.unpark()
    h.run()
    assert lock._owner is c
    hold.unpark()
    h.run()
    assert h.log == [
        ("a acquire", "ok", None),
        ("b acquire", "FakeCancelled", "cancelled"),
        ("exit", "b", "FakeCancelled", "cancelled"),
        ("a release", "ok", None),
        ("exit", "a", None),
        ("c acquire", "ok", None),
        ("c release", "ok", None),
        ("exit", "c", None),
    ]


def test_a_pending_cancel_stops_acquire_before_it_takes_the_lock(tw: Twin) -> None:
    h = Harness(tw)
    lock = tw.S.LockBase()
    a = h.spawn("a", lambda: h.attempt("acquire", lock.acquire))
    a._cancel_status.effectively_cancelled = True
    h.run()
    assert (lock.locked(), h.points(a)) == (False, (1, 2))
    assert h.log == [("acquire", "FakeCancelled", "cancelled"), ("exit", "a", None)]


def test_acquire_starts_over_when_its_pending_cancel_is_called_off(tw: Twin) -> None:
    h = Harness(tw)
    lock = tw.S.LockBase()
    a = h.spawn("a", lambda: h.attempt("acquire", lock.acquire))
    a._cancel_status.effectively_cancelled = True
    h.run_one()  # yields its cancel-delivering checkpoint
    h.uncancel(a)
    h.run()
    assert (lock._owner, h.points(a)) == (a, (2, 2))
    assert h.log == [("acquire", "ok", None), ("exit", "a", None)]


def test_a_pending_keyboard_interrupt_reaches_the_main_task(tw: Twin) -> None:
    h = Harness(tw)
    lock, lot = tw.S.LockBase(), tw.S.LotBase()

    async def main() -> None:
        await h.attempt("acquire", lock.acquire)
        h.k.ki_pending = True
        await h.attempt("park", lot.park)

    a = h.spawn("a", main)
    h.k.main_task = a
    h.k.ki_pending = True
    h.run()
    assert (lock.locked(), h.k.ki_pending, len(lot)) == (False, False, 0)
    assert h.log == [
        ("acquire", "KeyboardInterrupt", ""),
        ("park", "KeyboardInterrupt", ""),
        ("exit", "a", None),
    ]


def test_an_owner_that_exits_breaks_the_lock(tw: Twin) -> None:
    h = Harness(tw)
    lock = tw.S.LockBase()
    a = h.start("a", lambda: h.attempt("a acquire", lock.acquire))
    assert lock._owner is a
    h.start("b", lambda: h.attempt("b acquire", lock.acquire))  # a exited: lot broken
    assert (lock.locked(), lock._lot.broken_by, len(lock._lot)) == (True, [a], 0)
    assert h.log == [
        ("a acquire", "ok", None),
        ("exit", "a", None),
        ("b acquire", "BrokenResourceError", "Owner of this lock exited without releasing: <task a>"),
        ("exit", "b", None),
    ]


def test_waiters_of_a_lock_whose_owner_exits_get_broken_resource(tw: Twin) -> None:
    h = Harness(tw)
    lock, hold = tw.S.LockBase(), tw.S.LotBase()

    async def owner() -> None:
        await lock.acquire()
        await hold.park()

    h.start("a", owner)
    h.start("b", lambda: h.attempt("b acquire", lock.acquire))
    h.start("c", lambda: h.attempt("c acquire", lock.acquire))
    hold.unpark()
    h.run()
    assert h.log == [
        ("exit", "a", None),
        ("c acquire", "BrokenResourceError", "Owner of this lock exited without releasing: <task a>"),
        ("exit", "c", None),
        ("b acquire", "BrokenResourceError", "Owner of this lock exited without releasing: <task a>"),
        ("exit", "b", None),
    ]


@pytest.mark.parametrize("registry", ["missing", "other lot", "empty list"])
def test_release_refuses_an_owner_missing_from_the_breaker_registry(
    tw: Twin, registry: str
) -> None:
    h = Harness(tw)
    lock, other = tw.S.LockBase(), tw.S.LotBase()

    async def body() -> None:
        await lock.acquire()
        task = h.k.current_task
        if registry == "missing":
            del h.k._lot_breakers[task]
        else:
            h.k._lot_breakers[task] = [other] if registry == "other lot" else []
        h.call("release", lock.release)
        h.k._lot_breakers.pop(task, None)

    a = h.start("a", body)
    assert lock._owner is a
    assert h.log == [
        (
            "release",
            "RuntimeError",
            "Attempted to remove task as breaker for a lot it is not registered for",
        ),
        ("exit", "a", None),
    ]


def test_releasing_one_of_two_locks_keeps_the_other_registered(tw: Twin) -> None:
    h = Harness(tw)
    first, second = tw.S.LockBase(), tw.S.LockBase()

    async def body() -> None:
        await first.acquire()
        await second.acquire()
        h.log.append(len(h.k._lot_breakers[h.k.current_task]))
        first.release()
        h.log.append(h.k._lot_breakers[h.k.current_task] == [second._lot])
        second.release()
        h.log.append(h.k._lot_breakers)

    h.start("a", body)
    assert h.log == [2, True, {}, ("exit", "a", None)]


def test_set_lot_class_takes_only_lot_subclasses(tw: Twin) -> None:
    h = Harness(tw)
    for bad in (1, dict, tw.S.EventBase, tw.S.LotBase()):
        assert h.outside(lambda bad=bad: tw.S.set_lot_class(bad)) == (
            "TypeError",
            "the lot class must be a subclass of LotBase",
        )

    class MyLot(tw.S.LotBase):  # type: ignore[misc,name-defined]
        __slots__ = ()

    with lot_class(tw, MyLot):
        assert type(tw.S.LockBase()._lot) is MyLot
    assert type(tw.S.LockBase()._lot) is not MyLot


