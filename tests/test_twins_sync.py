"""Twin tests for the parking lots, events and the operation objects they return:
``vivace._core._sync_py`` (reference) against ``vivace._core._ext._sync`` (compiled) --
``LotBase`` (park, unpark, repark, break_lot), ``EventBase``, hand-driven and misused
awaitables, wake-ups from another thread, and the public surface of every sync base
(``test_twins_lock.py`` has ``LockBase``, ``test_twins_channels.py`` the channels). Each
test runs the same scenario on both twins, each on a kernel of its own engine
(``_sync_twins_support.Harness``), and compares the logs (results, error types and
messages, checkpoint counters, FIFO order) with one literal expectation.
"""

from __future__ import annotations

import threading
import weakref
from fractions import Fraction
from typing import Any

import pytest

from _sync_twins_support import TWINS, Harness, Status, Twin, names
from vivace._core._run_context import FOREIGN_THREAD_WAKE
from vivace._core._traps import Abort


@pytest.fixture(params=TWINS)
def tw(request: pytest.FixtureRequest) -> Twin:
    return request.param  # type: ignore[no-any-return]


async def parker(h: Harness, lot: Any, label: str) -> None:
    await h.attempt(label, lot.park)


# ------------------------------------------------------------------ ParkingLot


def test_unpark_wakes_the_oldest_parked_tasks_first(tw: Twin) -> None:
    h = Harness(tw)
    lot = tw.S.LotBase()
    tasks = [h.start(n, parker, h, lot, n) for n in "abcd"]
    assert (len(lot), bool(lot)) == (4, True)
    assert all(t.custom_sleep_data is lot for t in tasks)
    assert [h.points(t) for t in tasks] == [(1, 1)] * 4
    assert names(lot.unpark(count=2)) == ["a", "b"]
    assert [t.custom_sleep_data for t in tasks[:2]] == [None, None]
    assert len(lot) == 2
    h.run()
    assert names(lot.unpark_all()) == ["c", "d"]
    h.run()
    assert (len(lot), bool(lot), lot.unpark()) == (0, False, [])
    # One batch each; run_batch steps a batch from its end.
    assert h.log == [
        ("b", "ok", None),
        ("exit", "b", None),
        ("a", "ok", None),
        ("exit", "a", None),
        ("d", "ok", None),
        ("exit", "d", None),
        ("c", "ok", None),
        ("exit", "c", None),
    ]


@pytest.mark.parametrize(
    ("count", "woken"),
    [
        (0, []),
        (-3, []),
        (-(10**30), []),  # as trio's range(count): no task, no OverflowError
        (True, ["a"]),
        (2, ["a", "b"]),
        (10**30, ["a", "b", "c"]),
        (float("inf"), ["a", "b", "c"]),
        (float("-inf"), ["a", "b", "c"]),
    ],
)
def test_unpark_count_is_clamped_to_the_parked_tasks(tw: Twin, count: Any, woken: list[str]) -> None:
    h = Harness(tw)
    lot = tw.S.LotBase()
    for n in "abc":
        h.start(n, parker, h, lot, n)
    assert names(lot.unpark(count=count)) == woken
    assert len(lot) == 3 - len(woken)
    lot.unpark_all()
    h.run()


@pytest.mark.parametrize(
    ("count", "error"),
    [
        (1.0, ("ValueError", "Cannot pop a non-integer number of tasks.")),
        (float("nan"), ("ValueError", "Cannot pop a non-integer number of tasks.")),
        ("1", ("TypeError", "'<' not supported between instances of 'int' and 'str'")),
        # not an integer, whatever its sign: refused as trio's range() refuses it
        (Fraction(1, 2), ("TypeError", "'Fraction' object cannot be interpreted as an integer")),
        (Fraction(-3, 2), ("TypeError", "'Fraction' object cannot be interpreted as an integer")),
    ],
)
def test_bad_counts_are_refused_before_anything_moves(tw: Twin, count: Any, error: Any) -> None:
    h = Harness(tw)
    lot, other = tw.S.LotBase(), tw.S.LotBase()
    h.start("a", parker, h, lot, "a")
    assert h.outside(lambda: lot.unpark(count=count)) == error
    assert h.outside(lambda: lot.repark(other, count=count)) == error
    assert (len(lot), len(other)) == (1, 0)
    lot.unpark_all()
    h.run()


def test_repark_moves_the_oldest_to_the_back_without_waking_them(tw: Twin) -> None:
    h = Harness(tw)
    lot, other = tw.S.LotBase(), tw.S.LotBase()
    a, b, c = (h.start(n, parker, h, lot, n) for n in "abc")
    x = h.start("x", parker, h, other, "x")
    lot.repark(other, count=2)
    assert (len(lot), len(other)) == (1, 3)
    assert [t.custom_sleep_data for t in (a, b, c, x)] == [other, other, lot, other]
    assert h.k.runq == []
    lot.repark_all(other)
    assert (len(lot), len(other)) == (0, 4)
    assert names(other.unpark(count=float("inf"))) == ["x", "a", "b", "c"]
    h.run()
    assert len(h.log) == 8


def test_reparking_into_the_same_lot_moves_the_oldest_to_the_back(tw: Twin) -> None:
    h = Harness(tw)
    lot = tw.S.LotBase()
    for n in "abc":
        h.start(n, parker, h, lot, n)
    lot.repark(lot, count=2)
    assert names(lot.unpark_all()) == ["c", "a", "b"]
    h.run()


def test_repark_refuses_anything_but_a_lot(tw: Twin) -> None:
    h = Harness(tw)
    lot = tw.S.LotBase()
    h.start("a", parker, h, lot, "a")
    for bad in (None, [], tw.S.EventBase()):
        assert h.outside(lambda bad=bad: lot.repark(bad)) == (
            "TypeError",
            "new_lot must be a ParkingLot",
        )
    assert h.outside(lambda: lot.repark_all("lot")) == ("TypeError", "new_lot must be a ParkingLot")
    assert len(lot) == 1
    lot.unpark()
    h.run()


def test_cancelling_a_reparked_task_takes_it_out_of_its_new_lot(tw: Twin) -> None:
    h = Harness(tw)
    lot, other = tw.S.LotBase(), tw.S.LotBase()
    a, b = (h.start(n, parker, h, lot, n) for n in "ab")
    lot.repark_all(other)
    h.cancel(a)
    assert (len(lot), len(other), a.custom_sleep_data) == (0, 1, None)
    h.run()
    assert names(other.unpark_all()) == ["b"]
    h.run()
    assert h.log == [
        ("a", "FakeCancelled", "cancelled"),
        ("exit", "a", None),
        ("b", "ok", None),
        ("exit", "b", None),
    ]


def test_a_pending_cancel_aborts_a_park_at_once(tw: Twin) -> None:
    h = Harness(tw)
    lot = tw.S.LotBase()
    a = h.spawn("a", parker, h, lot, "a")
    a._cancel_status.effectively_cancelled = True
    h.run()
    assert len(lot) == 0
    assert h.points(a) == (1, 1)
    assert h.log == [("a", "FakeCancelled", "cancelled"), ("exit", "a", None)]


def test_an_abort_after_the_wake_up_fails(tw: Twin) -> None:
    h = Harness(tw)
    lot = tw.S.LotBase()
    a = h.start("a", parker, h, lot, "a")
    abort = a._abort_func
    lot.unpark()
    assert abort(None) is Abort.FAILED
    h.run()
    assert h.log == [("a", "ok", None), ("exit", "a", None)]


async def breaker(h: Harness, lot: Any) -> None:
    h.call("break", lot.break_lot)
    h.call("again", lot.break_lot)
    await h.attempt("park", lot.park)


def test_breaking_a_lot_wakes_its_parkers_and_refuses_new_ones(tw: Twin) -> None:
    h = Harness(tw)
    lot = tw.S.LotBase()
    h.start("a", parker, h, lot, "a")
    h.start("b", parker, h, lot, "b")
    z = h.start("z", breaker, h, lot)
    assert lot.broken_by == [z, z]
    assert h.outside(lot.break_lot) == ("RuntimeError", "must be called from async context")
    lot.break_lot("someone")
    assert lot.broken_by == [z, z, "someone"]
    h.run()
    assert h.log == [
        ("break", "ok", None),
        ("again", "ok", None),
        ("park", "BrokenResourceError", "Attempted to park in parking lot broken by [<task z>, <task z>]"),
        ("exit", "z", None),
        ("b", "BrokenResourceError", "Parking lot broken by <task z>"),
        ("exit", "b", None),
        ("a", "BrokenResourceError", "Parking lot broken by <task z>"),
        ("exit", "a", None),
    ]


# ------------------------------------------------------------------ hand-driven operations


def test_operations_need_a_running_task(tw: Twin) -> None:
    h = Harness(tw)
    lot, event, lock = tw.S.LotBase(), tw.S.EventBase(), tw.S.LockBase()
    for make in (lot.park, event.wait, lock.acquire, lock.__aenter__):
        op = make()
        assert h.outside(lambda op=op: op.send(None)) == (
            "RuntimeError",
            "must be called from async context",
        )
        op.close()
    for call in (lock.acquire_nowait, lock.release):
        assert h.outside(call) == ("RuntimeError", "must be called from async context")
    assert (len(lot), event._tasks_waiting, lock.locked()) == (0, 0, False)


def test_a_fresh_operation_takes_none_only(tw: Twin) -> None:
    h = Harness(tw)
    op = tw.S.LotBase().park()
    assert h.outside(lambda: op.send(1)) == (
        "TypeError",
        "can't send non-None value to a just-started coroutine",
    )
    op.close()


def _as_task(h: Harness, name: str) -> Any:
    # A task the kernel never stepped, made current by hand.
    task = h._Task(None, None, h.k, 99, False)
    task.name = name
    task._cancel_status = Status()
    h.k.current_task = task
    return task


def test_closing_or_throwing_into_a_hand_driven_park_leaves_the_lot(tw: Twin) -> None:
    h = Harness(tw)
    lot = tw.S.LotBase()
    task = _as_task(h, "hand")
    first, second = lot.park(), lot.park()
    msg = h.outside(lambda: first.send(None))[1]
    assert type(msg).__name__ == "WaitTaskRescheduled"
    h.outside(lambda: second.send(None))
    assert (len(lot), task.custom_sleep_data) == (2, lot)
    first.close()
    assert len(lot) == 1
    assert h.outside(lambda: second.throw(ValueError("boom"))) == ("ValueError", "boom")
    assert len(lot) == 0
    assert h.outside(lambda: second.send(None)) == (
        "RuntimeError",
        "cannot reuse already awaited coroutine",
    )
    third = lot.park()
    abort = h.outside(lambda: third.send(None))[1].abort_func
    assert abort(None) is Abort.SUCCEEDED
    assert abort(None) is Abort.FAILED
    assert len(lot) == 0
    third.close()


def test_an_operation_refuses_a_second_awaiter(tw: Twin) -> None:
    h = Harness(tw)
    lot = tw.S.LotBase()
    op = lot.park()

    async def await_it(label: str) -> None:
        await h.attempt(label, lambda: op)

    h.start("a", await_it, "a")
    h.start("b", await_it, "b")
    assert len(lot) == 1
    lot.unpark()
    h.run()
    assert h.log == [
        ("b", "RuntimeError", "coroutine is being awaited already"),
        ("exit", "b", None),
        ("a", "ok", None),
        ("exit", "a", None),
    ]


def test_throwing_into_a_kernel_parked_task_keeps_it_queued(tw: Twin) -> None:
    # Misuse from outside the kernel: the wait stays queued (the task is still parked
    # as far as the kernel knows); the wake-up then resumes a finished coroutine.
    h = Harness(tw)
    lot = tw.S.LotBase()
    a = h.start("a", parker, h, lot, "a")
    with pytest.raises(StopIteration):
        a.coro.throw(ValueError("from outside"))
    assert len(lot) == 1
    assert names(lot.unpark()) == ["a"]
    h.run()
    assert h.log == [
        ("a", "ValueError", "from outside"),
        ("exit", "a", "RuntimeError", "cannot reuse already awaited coroutine"),
    ]


def test_waking_from_another_thread_is_refused(tw: Twin) -> None:
    h = Harness(tw)
    lot, event = tw.S.LotBase(), tw.S.EventBase()
    h.start("a", parker, h, lot, "a")
    h.start("b", lambda: h.attempt("b", event.wait))
    empty, spare = tw.S.EventBase(), tw.S.LotBase()
    results: list[Any] = []

    def foreign() -> None:
        for call in (
            lot.unpark,
            lot.unpark_all,
            lambda: lot.break_lot("t"),
            event.set,
            empty.set,  # wakes nobody: allowed
            lambda: spare.break_lot("t"),
        ):
            try:
                results.append(("ok", call()))
            except RuntimeError as exc:
                results.append(str(exc))

    thread = threading.Thread(target=foreign)
    thread.start()
    thread.join(timeout=30)
    assert results == [FOREIGN_THREAD_WAKE] * 4 + [("ok", None)] * 2
    assert spare.broken_by == ["t"]
    # nothing changed: a refused break_lot did not mark the lot broken either
    assert (len(lot), lot.broken_by) == (1, [])
    assert (event.is_set(), event._tasks_waiting, empty.is_set()) == (False, 1, True)
    lot.unpark()
    event.set()
    h.run()


# ------------------------------------------------------------------ Event


async def waiter(h: Harness, event: Any, label: str) -> None:
    await h.attempt(label, event.wait)


def test_event_set_wakes_every_waiter(tw: Twin) -> None:
    h = Harness(tw)
    event = tw.S.EventBase()
    a, b, c = (h.start(n, waiter, h, event, n) for n in "abc")
    assert (event.is_set(), event._tasks_waiting, event._flag) == (False, 3, False)
    assert [t.custom_sleep_data for t in (a, b, c)] == [None, None, None]
    h.cancel(b)
    assert event._tasks_waiting == 2
    h.run()
    h.outside(event.set)
    h.outside(event.set)
    assert (event.is_set(), event._tasks_waiting) == (True, 0)
    h.run()
    # an abort that succeeds resumes the parked task: no extra schedule point
    assert [h.points(t) for t in (a, b, c)] == [(1, 1)] * 3
    assert h.log == [
        ("b", "FakeCancelled", "cancelled"),
        ("exit", "b", None),
        ("c", "ok", None),
        ("exit", "c", None),
        ("a", "ok", None),
        ("exit", "a", None),
    ]


def test_a_pending_cancel_or_keyboard_interrupt_stops_an_event_wait(tw: Twin) -> None:
    h = Harness(tw)
    event = tw.S.EventBase()
    a = h.spawn("a", waiter, h, event, "a")
    a._cancel_status.effectively_cancelled = True
    h.run()
    b = h.spawn("b", waiter, h, event, "b")
    h.k.main_task = b
    h.k.ki_pending = True
    h.run()
    assert (event._tasks_waiting, h.k.ki_pending) == (0, False)
    assert [h.points(t) for t in (a, b)] == [(1, 1), (1, 1)]
    assert h.log == [
        ("a", "FakeCancelled", "cancelled"),
        ("exit", "a", None),
        ("b", "KeyboardInterrupt", ""),
        ("exit", "b", None),
    ]


def test_waiting_on_a_set_event_is_a_full_checkpoint(tw: Twin) -> None:
    h = Harness(tw)
    event = tw.S.EventBase()
    event.set()
    a = h.start("a", waiter, h, event, "a")
    b = h.spawn("b", waiter, h, event, "b")
    b._cancel_status.effectively_cancelled = True
    h.run()
    # b's Cancelled was delivered at its resume: one more schedule point
    assert [h.points(t) for t in (a, b)] == [(1, 1), (1, 2)]
    assert h.log == [
        ("a", "ok", None),
        ("exit", "a", None),
        ("b", "FakeCancelled", "cancelled"),
        ("exit", "b", None),
    ]


# ------------------------------------------------------------------ surface

SURFACE = {
    "LotBase": ({"break_lot", "broken_by", "park", "repark", "repark_all", "unpark", "unpark_all"}, ()),
    "EventBase": ({"is_set", "set", "wait"}, ("_flag", "_tasks_waiting")),
    "LockBase": ({"acquire", "acquire_nowait", "locked", "release"}, ("_lot", "_owner")),
    "ChannelState": (
        {
            "current_buffer_used",
            "max_buffer_size",
            "open_receive_channels",
            "open_send_channels",
            "peak_buffer_used",
            "tasks_waiting_receive",
            "tasks_waiting_send",
        },
        (),
    ),
    "SendChannelBase": ({"close", "send", "send_nowait"}, ("_closed", "_state")),
    "ReceiveChannelBase": ({"close", "receive", "receive_nowait"}, ("_closed", "_state", "__anext__")),
}


@pytest.mark.parametrize("name", sorted(SURFACE))
def test_each_base_has_the_same_public_surface(tw: Twin, name: str) -> None:
    cls = getattr(tw.S, name)
    public, private = SURFACE[name]
    assert {n for n in dir(cls) if not n.startswith("_")} == public

    class Sub(cls):  # type: ignore[misc,valid-type]
        __slots__ = ()  # as the API layer's classes: no per-instance dict

    for kind in (cls, Sub):
        if name == "ChannelState":
            instance = kind(0)
        elif name.endswith("ChannelBase"):
            instance = kind(tw.S.ChannelState(0))
        else:
            instance = kind()
        assert all(hasattr(instance, attr) for attr in private)
        assert not hasattr(instance, "__dict__")
        if name != "ChannelState":  # shared state, never referenced weakly
            assert weakref.ref(instance)() is instance
