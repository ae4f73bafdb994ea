"""Twin tests for the memory channels' engine halves: ``vivace._core._sync_channel_py``
(reference, re-exported by ``_sync_py``) against ``vivace._core._ext._sync`` with
``_sync_channel.pxi`` (compiled) -- ``ChannelState``, ``SendChannelBase`` and
``ReceiveChannelBase``. Each test runs the same scenario on both twins, each on a kernel
of its own engine (``_sync_twins_support.Harness``), and compares the logs (items and
their order, error types and messages, checkpoint counters, the state's counters) with
one literal expectation. Clones are further handles on the same state, as
``MemorySendChannel.clone`` makes them.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from _sync_twins_support import TWINS, Harness, Twin
from vivace._core._run_context import FOREIGN_THREAD_WAKE

CLOSED_SEND = ("ClosedResourceError", "this send channel is closed")
CLOSED_RECEIVE = ("ClosedResourceError", "this receive channel is closed")
BROKEN = ("BrokenResourceError", "every receive channel of this memory channel is closed")


@pytest.fixture(params=TWINS)
def tw(request: pytest.FixtureRequest) -> Twin:
    return request.param  # type: ignore[no-any-return]


def channel(tw: Twin, size: float) -> tuple[Any, Any, Any]:
    state = tw.S.ChannelState(size)
    return state, tw.S.SendChannelBase(state), tw.S.ReceiveChannelBase(state)


def stats(state: Any) -> tuple[Any, ...]:
    """What MemoryChannelStatistics reports, in its field order (plus the peak)."""
    return (
        state.current_buffer_used,
        state.max_buffer_size,
        state.open_send_channels,
        state.open_receive_channels,
        state.tasks_waiting_send,
        state.tasks_waiting_receive,
        state.peak_buffer_used,
    )


async def sender(h: Harness, tx: Any, item: Any, label: str) -> None:
    await h.attempt(label, lambda: tx.send(item))


async def receiver(h: Harness, rx: Any, label: str) -> None:
    await h.attempt(label, rx.receive)


# ------------------------------------------------------------------ capacity 0, 1, inf


def test_unbuffered_channel_hands_items_over_directly(tw: Twin) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, 0)
    r1 = h.start("r1", receiver, h, rx, "r1")
    assert (stats(state), r1.custom_sleep_data) == ((0, 0, 1, 1, 0, 1, 0), rx)
    s1 = h.start("s1", sender, h, tx, "x", "s1")  # the receiver was waiting: no park
    s2 = h.start("s2", sender, h, tx, "y", "s2")  # nobody waits now: park
    assert (stats(state), s2.custom_sleep_data) == ((0, 0, 1, 1, 1, 0, 0), tx)
    assert h.outside(rx.receive_nowait) == ("ok", "y")
    assert h.outside(lambda: tx.send_nowait("z")) == ("WouldBlock", "")
    assert h.outside(rx.receive_nowait) == ("WouldBlock", "")
    h.run()
    # a parked operation passed its own cancel point before parking (another one)
    assert [h.points(t) for t in (r1, s1, s2)] == [(2, 1), (1, 1), (2, 1)]
    assert stats(state) == (0, 0, 1, 1, 0, 0, 0)
    assert h.log == [
        ("s1", "ok", None),
        ("exit", "s1", None),
        ("r1", "ok", "x"),
        ("exit", "r1", None),
        ("s2", "ok", None),
        ("exit", "s2", None),
    ]


def test_a_full_buffer_takes_parked_senders_items_in_order(tw: Twin) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, 1)
    for item in "abc":
        h.start(item, sender, h, tx, item, item)
    assert stats(state) == (1, 1, 1, 1, 2, 0, 1)
    assert h.outside(lambda: tx.send_nowait("d")) == ("WouldBlock", "")

    async def drain() -> None:
        for i in range(3):
            await h.attempt(f"got{i}", rx.receive)
            h.log.append(stats(state))

    d = h.start("drain", drain)
    assert h.points(d) == (3, 3)
    assert stats(state) == (0, 1, 1, 1, 0, 0, 1)
    assert h.log == [
        ("a", "ok", None),
        ("exit", "a", None),
        # each receive takes the oldest item and pulls the oldest parked sender's into
        # the buffer, waking that sender
        ("got0", "ok", "a"),
        (1, 1, 1, 1, 1, 0, 1),
        ("b", "ok", None),
        ("exit", "b", None),
        ("got1", "ok", "b"),
        (1, 1, 1, 1, 0, 0, 1),
        ("c", "ok", None),
        ("exit", "c", None),
        ("got2", "ok", "c"),
        (0, 1, 1, 1, 0, 0, 1),
        ("exit", "drain", None),
    ]


def test_an_unbounded_buffer_never_blocks(tw: Twin) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, float("inf"))

    async def flood() -> None:
        for i in range(100):
            await tx.send(i)
        for i in range(50):
            tx.send_nowait(100 + i)

    f = h.start("f", flood)
    assert h.points(f) == (100, 100)
    assert stats(state) == (150, float("inf"), 1, 1, 0, 0, 150)
    got = [rx.receive_nowait() for _ in range(150)]
    assert got == list(range(150))
    assert h.outside(rx.receive_nowait) == ("WouldBlock", "")
    assert stats(state)[0] == 0 and stats(state)[-1] == 150


def test_huge_buffer_sizes_are_kept_as_given(tw: Twin) -> None:
    state = tw.S.ChannelState(10**30)
    tx = tw.S.SendChannelBase(state)
    tw.S.ReceiveChannelBase(state)
    tx.send_nowait(1)
    assert stats(state) == (1, 10**30, 1, 1, 0, 0, 1)


@pytest.mark.parametrize("size", [0, 1, float("inf")])
def test_none_and_odd_items_arrive_intact(tw: Twin, size: float) -> None:
    h = Harness(tw)
    _, tx, rx = channel(tw, size)
    items = [None, (1, 2), ValueError("an item, not an error"), rx]

    async def recv_all() -> None:
        for _ in items:
            await h.attempt("got", rx.receive)

    async def send_all() -> None:
        for item in items:
            await tx.send(item)

    h.start("r", recv_all)
    h.start("s", send_all)
    h.run()
    assert [entry[2] for entry in h.log if entry[0] == "got"] == items


# ------------------------------------------------------------------ closing and clones


def test_closed_handles_refuse_to_work(tw: Twin) -> None:
    h = Harness(tw)
    _, tx, rx = channel(tw, 1)
    tx.close()
    rx.close()
    tx.close()  # idempotent
    rx.close()
    h.start("s", sender, h, tx, 1, "send")
    h.start("r", receiver, h, rx, "receive")
    assert h.outside(lambda: tx.send_nowait(1)) == CLOSED_SEND
    assert h.outside(rx.receive_nowait) == CLOSED_RECEIVE
    assert (tx._closed, rx._closed) == (True, True)
    assert h.log == [
        ("send", *CLOSED_SEND),
        ("exit", "s", None),
        ("receive", *CLOSED_RECEIVE),
        ("exit", "r", None),
    ]


def test_closing_a_send_clone_wakes_only_its_own_senders(tw: Twin) -> None:
    h = Harness(tw)
    state, tx1, rx = channel(tw, 0)
    tx2 = tw.S.SendChannelBase(state)
    h.start("a1", sender, h, tx1, "a1", "a1")
    h.start("b2", sender, h, tx2, "b2", "b2")
    h.start("c1", sender, h, tx1, "c1", "c1")
    assert stats(state) == (0, 0, 2, 1, 3, 0, 0)
    tx1.close()
    assert stats(state) == (0, 0, 1, 1, 1, 0, 0)
    h.run()
    assert h.outside(rx.receive_nowait) == ("ok", "b2")
    h.run()
    assert h.log == [
        ("c1", *CLOSED_SEND),
        ("exit", "c1", None),
        ("a1", *CLOSED_SEND),
        ("exit", "a1", None),
        ("b2", "ok", None),
        ("exit", "b2", None),
    ]


def test_closing_the_last_send_handle_ends_the_channel(tw: Twin) -> None:
    h = Harness(tw)
    state, tx1, rx = channel(tw, 2)
    tx2 = tw.S.SendChannelBase(state)
    tx1.send_nowait("kept")
    tx1.close()
    h.start("r0", receiver, h, rx, "r0")  # the buffered item still arrives
    h.start("r1", receiver, h, rx, "r1")
    h.start("r2", receiver, h, rx, "r2")
    assert stats(state) == (0, 2, 1, 1, 0, 2, 1)
    tx2.close()
    assert stats(state) == (0, 2, 0, 1, 0, 0, 1)
    h.run()
    h.start("r3", receiver, h, rx, "r3")
    assert h.outside(rx.receive_nowait) == ("EndOfChannel", "")
    assert h.log == [
        ("r0", "ok", "kept"),
        ("exit", "r0", None),
        ("r2", "EndOfChannel", ""),
        ("exit", "r2", None),
        ("r1", "EndOfChannel", ""),
        ("exit", "r1", None),
        ("r3", "EndOfChannel", ""),
        ("exit", "r3", None),
    ]


def test_closing_a_receive_clone_wakes_only_its_own_receivers(tw: Twin) -> None:
    h = Harness(tw)
    state, tx, rx1 = channel(tw, 0)
    rx2 = tw.S.ReceiveChannelBase(state)
    h.start("a1", receiver, h, rx1, "a1")
    h.start("b2", receiver, h, rx2, "b2")
    rx1.close()
    assert stats(state) == (0, 0, 1, 1, 0, 1, 0)
    h.run()
    tx.send_nowait("for b2")
    h.run()
    assert h.log == [
        ("a1", *CLOSED_RECEIVE),
        ("exit", "a1", None),
        ("b2", "ok", "for b2"),
        ("exit", "b2", None),
    ]


def test_closing_the_last_receive_handle_breaks_the_channel(tw: Twin) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, 1)
    h.start("s0", sender, h, tx, "buffered", "s0")
    h.start("s1", sender, h, tx, "parked", "s1")
    h.start("s2", sender, h, tx, "parked too", "s2")
    rx.close()
    assert stats(state) == (0, 1, 1, 0, 0, 0, 1)  # the buffered item is dropped
    h.run()
    h.start("s3", sender, h, tx, "late", "s3")
    assert h.outside(lambda: tx.send_nowait("late")) == BROKEN
    assert h.log == [
        ("s0", "ok", None),
        ("exit", "s0", None),
        ("s2", *BROKEN),
        ("exit", "s2", None),
        ("s1", *BROKEN),
        ("exit", "s1", None),
        ("s3", *BROKEN),
        ("exit", "s3", None),
    ]


def test_a_closed_handle_wins_over_a_broken_or_ended_channel(tw: Twin) -> None:
    h = Harness(tw)
    _, tx, rx = channel(tw, 0)
    rx.close()
    tx.close()
    assert h.outside(lambda: tx.send_nowait(1)) == CLOSED_SEND
    assert h.outside(rx.receive_nowait) == CLOSED_RECEIVE


@pytest.mark.parametrize("closing", ["send", "receive", "last send", "last receive"])
def test_closing_from_another_thread_is_refused_before_anything_changes(
    tw: Twin, closing: str
) -> None:
    # Closing would wake a task of the run (blocked on this handle, or on the other
    # side when this is the last handle of its kind): refused, as every wake-up from
    # another thread is, with the channel left as it was -- a half-done close would
    # strand the blocked task (trio raises too, but only after closing the handle).
    h = Harness(tw)
    state, tx, rx = channel(tw, 0)
    tx2, rx2 = tw.S.SendChannelBase(state), tw.S.ReceiveChannelBase(state)
    if closing.endswith("send"):
        h.start("a", sender, h, tx, "x", "a")
    else:
        h.start("a", receiver, h, rx, "a")
    if closing.startswith("last"):
        tx2.close()
        rx2.close()
    target = {"send": tx, "receive": rx, "last send": rx, "last receive": tx}[closing]
    before = stats(state)
    results: list[Any] = []

    def close(handle: Any) -> None:
        try:
            results.append(("ok", handle.close()))
        except RuntimeError as exc:
            results.append(str(exc))

    thread = threading.Thread(target=close, args=(target,))
    thread.start()
    thread.join(timeout=30)
    assert results == [FOREIGN_THREAD_WAKE]
    assert (stats(state), target._closed, h.k.runq) == (before, False, [])
    if not closing.startswith("last"):
        # a clone nobody is blocked on closes from anywhere
        other = rx2 if closing.endswith("send") else tx2
        thread = threading.Thread(target=close, args=(other,))
        thread.start()
        thread.join(timeout=30)
        assert results[1:] == [("ok", None)]
    target.close()
    h.run()
    assert h.log[1] == ("exit", "a", None)


def test_nowait_operations_from_another_thread_wake_nobody(tw: Twin) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, 0)
    h.start("r", receiver, h, rx, "r")
    _, tx2, rx2 = channel(tw, 0)
    h.start("s", sender, h, tx2, "x", "s")
    results: list[Any] = []

    def foreign() -> None:
        for call in (lambda: tx.send_nowait("y"), rx2.receive_nowait):
            try:
                results.append(("ok", call()))
            except RuntimeError as exc:
                results.append(str(exc))

    thread = threading.Thread(target=foreign)
    thread.start()
    thread.join(timeout=30)
    assert results == [FOREIGN_THREAD_WAKE] * 2
    assert (stats(state)[5], stats(rx2._state)[4], h.k.runq) == (1, 1, [])
    tx.send_nowait("y")
    assert rx2.receive_nowait() == "x"
    h.run()
    assert sorted(h.log) == [("exit", "r", None), ("exit", "s", None), ("r", "ok", "y"), ("s", "ok", None)]


# ------------------------------------------------------------------ cancellation


def test_a_cancelled_parked_sender_sends_nothing(tw: Twin) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, 0)
    a = h.start("a", sender, h, tx, "lost?", "a")
    h.start("b", sender, h, tx, "b", "b")
    h.cancel(a)
    assert (stats(state), a.custom_sleep_data) == ((0, 0, 1, 1, 1, 0, 0), None)
    h.run()
    assert h.outside(rx.receive_nowait) == ("ok", "b")
    assert h.outside(rx.receive_nowait) == ("WouldBlock", "")
    h.run()
    assert h.log == [
        ("a", "FakeCancelled", "cancelled"),
        ("exit", "a", None),
        ("b", "ok", None),
        ("exit", "b", None),
    ]


def test_a_cancelled_parked_receiver_takes_nothing(tw: Twin) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, 0)
    a = h.start("a", receiver, h, rx, "a")
    h.start("b", receiver, h, rx, "b")
    h.cancel(a)
    assert stats(state) == (0, 0, 1, 1, 0, 1, 0)
    h.run()
    tx.send_nowait("for b")
    h.run()
    assert h.log == [
        ("a", "FakeCancelled", "cancelled"),
        ("exit", "a", None),
        ("b", "ok", "for b"),
        ("exit", "b", None),
    ]


def test_a_cancel_after_the_hand_off_loses_nothing(tw: Twin) -> None:
    # The operation already happened when the cancel arrives: the abort fails, the
    # receiver gets its item and the sender's send counts as done.
    h = Harness(tw)
    _, tx, rx = channel(tw, 0)
    r = h.start("r", receiver, h, rx, "r")
    tx.send_nowait("x")
    h.cancel(r)
    s = h.start("s", sender, h, tx, "y", "s")
    assert h.outside(rx.receive_nowait) == ("ok", "y")
    h.cancel(s)
    h.run()
    assert h.log == [
        ("r", "ok", "x"),
        ("exit", "r", None),
        ("s", "ok", None),
        ("exit", "s", None),
    ]


@pytest.mark.parametrize("op", ["send", "receive"])
def test_a_pending_cancel_stops_the_operation_before_it_happens(tw: Twin, op: str) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, 1)
    if op == "send":
        task = h.spawn("t", sender, h, tx, "never", "op")
    else:
        tx.send_nowait("stays")
        task = h.spawn("t", receiver, h, rx, "op")
    task._cancel_status.effectively_cancelled = True
    h.run()
    assert state.current_buffer_used == (0 if op == "send" else 1)
    assert h.points(task) == (1, 2)
    assert h.log == [("op", "FakeCancelled", "cancelled"), ("exit", "t", None)]


@pytest.mark.parametrize("op", ["send", "receive", "anext"])
def test_an_operation_starts_over_when_its_pending_cancel_is_called_off(
    tw: Twin, op: str
) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, 1)
    if op == "send":
        task = h.spawn("t", sender, h, tx, "sent", "op")
    else:
        tx.send_nowait("taken")
        task = h.spawn("t", lambda: h.attempt("op", getattr(rx, f"__{op}__" if op == "anext" else op)))
    task._cancel_status.effectively_cancelled = True
    h.run_one()
    h.uncancel(task)
    h.run()
    assert (state.current_buffer_used, h.points(task)) == (1 if op == "send" else 0, (2, 2))
    result = None if op == "send" else "taken"
    assert h.log == [("op", "ok", result), ("exit", "t", result)]


def test_a_pending_keyboard_interrupt_stops_send_and_receive(tw: Twin) -> None:
    h = Harness(tw)
    state, tx, rx = channel(tw, 1)

    async def main() -> None:
        await h.attempt("send", lambda: tx.send(1))
        h.k.ki_pending = True
        await h.attempt("receive", rx.receive)

    h.k.main_task = h.spawn("main", main)
    h.k.ki_pending = True
    h.run()
    assert stats(state) == (0, 1, 1, 1, 0, 0, 0)
    assert h.log == [
        ("send", "KeyboardInterrupt", ""),
        ("receive", "KeyboardInterrupt", ""),
        ("exit", "main", None),
    ]


# ------------------------------------------------------------------ async for


def test_anext_ends_the_iteration_at_the_end_of_the_channel(tw: Twin) -> None:
    h = Harness(tw)
    _, tx, rx = channel(tw, 1)
    tx.send_nowait("first")

    async def loop(label: str) -> None:
        # ``async for`` over the bases alone (__aiter__ is the API layer's)
        while True:
            try:
                item = await rx.__anext__()
            except StopAsyncIteration:
                break
            h.log.append((label, "item", item))
        h.log.append((label, "done"))

    async def one_anext(label: str) -> None:
        try:
            await rx.__anext__()
        except StopAsyncIteration as exc:
            hidden = exc.__cause__ is None and (
                exc.__suppress_context__ or exc.__context__ is None
            )
            h.log.append((label, "StopAsyncIteration", str(exc), hidden))

    h.start("a", loop, "a")  # takes "first", then parks
    h.start("b", one_anext, "b")  # parks
    tx.close()
    h.run()
    h.start("c", one_anext, "c")  # the channel has already ended
    assert h.log == [
        ("a", "item", "first"),
        ("b", "StopAsyncIteration", "", True),
        ("exit", "b", None),
        ("a", "done"),
        ("exit", "a", None),
        ("c", "StopAsyncIteration", "", True),
        ("exit", "c", None),
    ]


def test_anext_reports_a_closed_handle_as_it_is(tw: Twin) -> None:
    h = Harness(tw)
    _, _, rx = channel(tw, 0)
    h.start("a", lambda: h.attempt("parked", rx.__anext__))
    rx.close()
    h.run()
    h.start("b", lambda: h.attempt("closed", rx.__anext__))
    assert h.log == [
        ("parked", *CLOSED_RECEIVE),
        ("exit", "a", None),
        ("closed", *CLOSED_RECEIVE),
        ("exit", "b", None),
    ]


def test_handles_need_a_running_task_to_block(tw: Twin) -> None:
    h = Harness(tw)
    _, tx, rx = channel(tw, 0)
    for op in (tx.send(1), rx.receive(), rx.__anext__()):
        assert h.outside(lambda op=op: op.send(None)) == (
            "RuntimeError",
            "must be called from async context",
        )
        op.close()
