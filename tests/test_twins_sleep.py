"""Twin tests for the sleep fast path: ``park_until`` of ``vivace._core._sync_py``
(reference) against ``park_until`` of ``vivace._core._ext._sync`` with
``_sync_sleep.pxi`` (compiled). Each test runs the same scenario on both twins, each on
a kernel and deadline heap of its own engine (``_sync_twins_support.Harness``, which
fires expired deadlines as the run loop does: ``task._deadline_expired()`` in deadline
order), and compares the logs, checkpoint counters, heap contents and guest-mode wake
requests with one literal expectation.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import outcome
import pytest

from _sync_twins_support import TWINS, Harness, Twin

INF = float("inf")


@pytest.fixture(params=TWINS)
def tw(request: pytest.FixtureRequest) -> Twin:
    return request.param  # type: ignore[no-any-return]


async def sleeper(h: Harness, deadline: Any, label: str) -> None:
    await h.attempt(label, lambda: h.S.park_until(deadline))


def test_a_sleeper_wakes_when_its_deadline_fires(tw: Twin) -> None:
    h = Harness(tw)
    heap = h.k.deadlines
    a = h.start("a", sleeper, h, 105.0, "a")
    assert (len(heap), heap.peek_deadline(), heap.peek() is a) == (1, 105.0, True)
    assert (a.custom_sleep_data, h.points(a)) == (None, (1, 1))
    h.advance(4.5)
    assert (h.k.runq, len(heap)) == ([], 1)
    h.advance(0.5)
    assert (len(heap), h.k.runq) == (0, [a])
    h.run()
    assert h.points(a) == (1, 1)
    assert h.log == [("a", "ok", None), ("exit", "a", None)]


def test_sleepers_wake_in_deadline_order(tw: Twin) -> None:
    h = Harness(tw)
    tasks = [
        h.start(name, sleeper, h, deadline, name)
        for name, deadline in (("a", 110), ("b", 105.0), ("c", 110.0), ("d", Fraction(211, 2)))
    ]
    h.advance(10)
    assert [t.name for t in h.k.runq] == ["b", "d", "a", "c"]
    h.run()
    assert [h.points(t) for t in tasks] == [(1, 1)] * 4
    assert [entry[0] for entry in h.log if entry[0] != "exit"] == ["c", "a", "d", "b"]


@pytest.mark.parametrize("deadline", [100.0, 99.0, -INF])
def test_a_due_deadline_is_one_schedule_point_and_no_heap_entry(tw: Twin, deadline: float) -> None:
    h = Harness(tw)
    a = h.spawn("a", sleeper, h, deadline, "a")
    h.run_one()
    assert (len(h.k.deadlines), h.k.runq, h.points(a)) == (0, [a], (1, 1))
    h.run()
    assert h.points(a) == (1, 1)
    assert h.log == [("a", "ok", None), ("exit", "a", None)]


@pytest.mark.parametrize("deadline", [100.0, 150.0])
def test_a_pending_cancel_is_delivered_by_the_park_itself(tw: Twin, deadline: float) -> None:
    h = Harness(tw)
    a = h.spawn("a", sleeper, h, deadline, "a")
    a._cancel_status.effectively_cancelled = True
    h.run()
    assert (len(h.k.deadlines), h.points(a)) == (0, (1, 1))
    assert h.log == [("a", "FakeCancelled", "cancelled"), ("exit", "a", None)]


@pytest.mark.parametrize("deadline", [100.0, 150.0])
def test_a_pending_keyboard_interrupt_reaches_a_sleeping_main_task(
    tw: Twin, deadline: float
) -> None:
    h = Harness(tw)
    a = h.spawn("a", sleeper, h, deadline, "a")
    h.k.main_task = a
    h.k.ki_pending = True
    h.run()
    assert (len(h.k.deadlines), h.k.ki_pending, h.points(a)) == (0, False, (1, 1))
    assert h.log == [("a", "KeyboardInterrupt", ""), ("exit", "a", None)]


@pytest.mark.parametrize("deadline", [150.0, INF])
def test_cancelling_a_sleeper_removes_its_deadline(tw: Twin, deadline: float) -> None:
    h = Harness(tw)
    a = h.start("a", sleeper, h, deadline, "a")
    b = h.start("b", sleeper, h, 120.0, "b")
    assert h.k.deadlines.peek() is b
    h.cancel(b)
    assert (len(h.k.deadlines), h.k.deadlines.peek_deadline()) == (1, deadline)
    h.cancel(a)
    assert len(h.k.deadlines) == 0
    h.run()
    h.advance(1000)
    assert h.k.runq == []
    assert h.log == [  # one batch, stepped from its end
        ("a", "FakeCancelled", "cancelled"),
        ("exit", "a", None),
        ("b", "FakeCancelled", "cancelled"),
        ("exit", "b", None),
    ]


def test_an_enclosing_cancel_seen_at_resume_raises(tw: Twin) -> None:
    # The deadline fired (trio: the sleep's own scope was cancelled) but an enclosing
    # scope got cancelled before the task resumed: the enclosing Cancelled wins.
    h = Harness(tw)
    a = h.start("a", sleeper, h, 101.0, "a")
    b = h.start("b", sleeper, h, 101.0, "b")
    h.advance(1)
    h.cancel(a)  # already rescheduled: the abort is not even tried
    assert (a._abort_func, len(h.k.runq)) == (None, 2)
    h.run()
    assert [h.points(t) for t in (a, b)] == [(1, 1), (1, 1)]
    assert h.log == [
        ("b", "ok", None),
        ("exit", "b", None),
        ("a", "FakeCancelled", "cancelled"),
        ("exit", "a", None),
    ]


@pytest.mark.parametrize("cancelled", [False, True])
@pytest.mark.parametrize("resume", ["RESUME_NONE", "Value(None)", "Value('early')"])
def test_a_sleeper_rescheduled_by_hand_checks_for_an_enclosing_cancel(
    tw: Twin, resume: str, cancelled: bool
) -> None:
    # lowlevel.reschedule(task) and reschedule(task, Value(None)) must not differ:
    # RESUME_NONE is only the engine's shared stand-in for Value(None).
    h = Harness(tw)
    a = h.start("a", sleeper, h, 150.0, "a")
    a._cancel_status.effectively_cancelled = cancelled
    a._abort_func = None  # as a hand-made reschedule leaves it
    next_send = {
        "RESUME_NONE": tw.K.RESUME_NONE,
        "Value(None)": outcome.Value(None),
        "Value('early')": outcome.Value("early"),
    }[resume]
    h.k.reschedule(a, next_send)
    h.run()
    h.advance(100)  # the stale entry fires into nothing
    assert h.k.runq == []
    expected = ("FakeCancelled", "cancelled") if cancelled else ("ok", None)
    assert h.log == [("a", *expected), ("exit", "a", None)]


def test_an_error_resume_of_a_sleeper_comes_out_as_it_is(tw: Twin) -> None:
    h = Harness(tw)
    a = h.start("a", sleeper, h, 150.0, "a")
    a._cancel_status.effectively_cancelled = True
    a._abort_func = None
    h.k.reschedule(a, outcome.Error(ValueError("woken with an error")))
    h.run()
    assert h.log == [("a", "ValueError", "woken with an error"), ("exit", "a", None)]


def test_a_due_sleep_raises_if_cancelled_before_it_resumes(tw: Twin) -> None:
    h = Harness(tw)
    a = h.spawn("a", sleeper, h, 100.0, "a")
    h.run_one()
    a._cancel_status.effectively_cancelled = True
    h.run()
    assert h.log == [("a", "FakeCancelled", "cancelled"), ("exit", "a", None)]


def test_an_abort_after_the_entry_was_popped_wakes_once(tw: Twin) -> None:
    # A scope that expired in the same pass of the run loop aborts the sleeper after
    # that pass already popped the sleeper's entry: the abort must tolerate it, and
    # the later _deadline_expired() must not reschedule the task a second time.
    h = Harness(tw)
    a = h.start("a", sleeper, h, 101.0, "a")
    h.start("b", sleeper, h, 102.0, "b")
    h.k.clock.now = 101.0
    expired = h.k.deadlines.pop_expired(101.0)
    assert expired == [a]
    h.cancel(a)
    with h.running():
        a._deadline_expired()
    assert (h.k.runq, len(h.k.deadlines)) == ([a], 1)
    h.run()
    h.advance(1)
    h.run()
    assert h.log == [
        ("a", "FakeCancelled", "cancelled"),
        ("exit", "a", None),
        ("b", "ok", None),
        ("exit", "b", None),
    ]


def test_guest_mode_asks_for_a_tick_when_the_next_deadline_moves_earlier(tw: Twin) -> None:
    h = Harness(tw)
    h.k.is_guest = True
    ticks = []
    for name, deadline in (("a", 110.0), ("b", 120.0), ("c", 105.0), ("d", 105.0)):
        h.start(name, sleeper, h, deadline, name)
        ticks.append(h.k.guest_ticks)
    # one tick per spawn (the kernel's: first task in an empty run queue), plus one
    # whenever a sleep moved the earliest deadline (a, c)
    assert ticks == [2, 3, 5, 6]
    h.advance(20)
    h.run()
    assert len(h.log) == 8


@pytest.mark.parametrize(
    ("deadline", "error"),
    [
        ("soon", ("TypeError", "'<=' not supported between instances of 'str' and 'float'")),
        (None, ("TypeError", "'<=' not supported between instances of 'NoneType' and 'float'")),
    ],
)
def test_a_deadline_that_is_not_a_number_is_refused(tw: Twin, deadline: Any, error: Any) -> None:
    h = Harness(tw)
    h.start("a", sleeper, h, deadline, "a")
    assert len(h.k.deadlines) == 0
    assert h.log == [("a", *error), ("exit", "a", None)]


def test_a_nan_deadline_is_refused_by_the_heap(tw: Twin) -> None:
    # sleep_until checks for NaN before it gets here; the heap refuses it anyway.
    h = Harness(tw)
    a = h.start("a", sleeper, h, float("nan"), "a")
    assert (len(h.k.deadlines), h.points(a)) == (0, (0, 0))
    assert h.log == [("a", "ValueError", "deadline must not be NaN"), ("exit", "a", None)]


def test_park_until_needs_a_running_task(tw: Twin) -> None:
    h = Harness(tw)
    op = tw.S.park_until(105.0)
    assert h.outside(lambda: op.send(None)) == ("RuntimeError", "must be called from async context")
    op.close()
    assert len(h.k.deadlines) == 0
