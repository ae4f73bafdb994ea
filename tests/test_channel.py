"""Memory channels, as_safe_channel, lowlevel.UnboundedQueue, the channel/stream ABCs
and the generic stream helpers (StapledStream, aclose_forcefully)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import vivace as trio
from vivace.testing import (
    MockClock,
    assert_checkpoints,
    trio_test,
    wait_all_tasks_blocked,
)

# ---------------------------------------------------------------- construction


def test_open_memory_channel_validates_the_buffer_size() -> None:
    with pytest.raises(TypeError, match="integer or math.inf"):
        trio.open_memory_channel(1.0)
    with pytest.raises(TypeError):
        trio.open_memory_channel("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^max_buffer_size must be >= 0$"):
        trio.open_memory_channel(-1)


def test_open_memory_channel_is_subscriptable_and_returns_a_pair() -> None:
    send, receive = trio.open_memory_channel[int](0)
    assert isinstance(send, trio.MemorySendChannel)
    assert isinstance(receive, trio.MemoryReceiveChannel)
    assert isinstance(send, trio.abc.SendChannel)
    assert isinstance(receive, trio.abc.ReceiveChannel)


def test_memory_channel_endpoints_have_no_public_constructor() -> None:
    send, _ = trio.open_memory_channel[int](0)
    with pytest.raises(TypeError, match="no public constructor"):
        trio.MemorySendChannel(send._state)  # type: ignore[call-arg]
    with pytest.raises(TypeError):

        class Sub(trio.MemoryReceiveChannel):  # type: ignore[misc, type-arg]
            pass


# ---------------------------------------------------------------- basic operation


@trio_test
async def test_buffered_channel_is_fifo() -> None:
    send, receive = trio.open_memory_channel[int](3)
    for i in range(3):
        send.send_nowait(i)
    with pytest.raises(trio.WouldBlock):
        send.send_nowait(99)
    assert [receive.receive_nowait() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(trio.WouldBlock):
        receive.receive_nowait()


@trio_test
async def test_unbuffered_channel_needs_a_waiting_peer() -> None:
    send, receive = trio.open_memory_channel[int](0)
    with pytest.raises(trio.WouldBlock):
        send.send_nowait(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send.send, 1)
        await wait_all_tasks_blocked()
        assert receive.receive_nowait() == 1
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive.receive)
        await wait_all_tasks_blocked()
        send.send_nowait(2)
        assert send.statistics().tasks_waiting_receive == 0


@trio_test
async def test_every_send_and_receive_is_a_checkpoint() -> None:
    send, receive = trio.open_memory_channel[int](1)
    with assert_checkpoints():
        await send.send(1)
    with assert_checkpoints():
        assert await receive.receive() == 1

    async def peer() -> None:
        with assert_checkpoints():
            await send.send(2)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer)
        with assert_checkpoints():
            assert await receive.receive() == 2


@trio_test
async def test_infinite_buffer_never_blocks_senders() -> None:
    send, receive = trio.open_memory_channel[int](math.inf)
    with send:
        for i in range(1000):
            send.send_nowait(i)
    assert [x async for x in receive] == list(range(1000))


@trio_test
async def test_async_for_stops_at_end_of_channel() -> None:
    send, receive = trio.open_memory_channel[int](0)

    async def producer() -> None:
        async with send:
            for i in range(5):
                await send.send(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        assert [x async for x in receive] == [0, 1, 2, 3, 4]


@trio_test
async def test_statistics_cover_buffer_handles_and_waiters() -> None:
    send, receive = trio.open_memory_channel[None](2)
    assert send.statistics() == receive.statistics()
    send.send_nowait(None)
    send.send_nowait(None)
    extra_send = send.clone()
    extra_receive = receive.clone()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send.send, None)
        await wait_all_tasks_blocked()
        stats = send.statistics()
        assert stats == trio.MemoryChannelStatistics(
            current_buffer_used=2,
            max_buffer_size=2,
            open_send_channels=2,
            open_receive_channels=2,
            tasks_waiting_send=1,
            tasks_waiting_receive=0,
            peak_buffer_used=2,
        )
        nursery.cancel_scope.cancel()
    extra_send.close()
    extra_receive.close()
    receive.receive_nowait()
    stats = receive.statistics()
    assert (stats.current_buffer_used, stats.peak_buffer_used) == (1, 2)
    assert (stats.open_send_channels, stats.open_receive_channels) == (1, 1)
    assert stats.tasks_waiting_send == 0


def test_statistics_are_frozen() -> None:
    send, _ = trio.open_memory_channel[int](0)
    with pytest.raises(AttributeError):
        send.statistics().max_buffer_size = 3  # type: ignore[misc]


# ---------------------------------------------------------------- fairness


@trio_test
async def test_waiting_receivers_are_served_in_fifo_order() -> None:
    send, receive = trio.open_memory_channel[int](0)
    got: list[tuple[int, int]] = []

    async def receiver(i: int) -> None:
        got.append((i, await receive.receive()))

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(receiver, i)
            await wait_all_tasks_blocked()
        for value in range(5):
            send.send_nowait(value * 10)
    assert sorted(got) == [(i, i * 10) for i in range(5)]


@trio_test
async def test_waiting_senders_are_served_in_fifo_order() -> None:
    send, receive = trio.open_memory_channel[int](1)
    send.send_nowait(-1)
    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(send.send, i)
            await wait_all_tasks_blocked()
        assert [await receive.receive() for _ in range(6)] == [-1, 0, 1, 2, 3, 4]


@trio_test
async def test_a_waiting_receiver_owns_the_next_item() -> None:
    send, receive = trio.open_memory_channel[int](1)
    result: list[int] = []

    async def receiver() -> None:
        result.append(await receive.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        send.send_nowait(7)
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()
    assert result == [7]


@trio_test
async def test_a_waiting_sender_owns_the_freed_slot() -> None:
    send, receive = trio.open_memory_channel[int](1)
    send.send_nowait(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send.send, 2)
        await wait_all_tasks_blocked()
        assert receive.receive_nowait() == 1
        with pytest.raises(trio.WouldBlock):
            send.send_nowait(3)
        assert await receive.receive() == 2


@trio_test
async def test_consumers_share_the_work_round_robin() -> None:
    send, receive = trio.open_memory_channel[int](0)
    by_consumer: dict[int, list[int]] = {0: [], 1: [], 2: []}

    async def consumer(i: int) -> None:
        async for value in receive:
            by_consumer[i].append(value)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(consumer, i)
            await wait_all_tasks_blocked()
        async with send:
            for value in range(9):
                await send.send(value)
                await wait_all_tasks_blocked()
    assert by_consumer == {0: [0, 3, 6], 1: [1, 4, 7], 2: [2, 5, 8]}


# ---------------------------------------------------------------- closing


@trio_test
async def test_closing_the_send_side_ends_the_channel_after_the_buffer() -> None:
    send, receive = trio.open_memory_channel[str](2)
    send.send_nowait("a")
    await send.aclose()
    with pytest.raises(trio.ClosedResourceError):
        send.send_nowait("b")
    with pytest.raises(trio.ClosedResourceError):
        await send.send("b")
    with pytest.raises(trio.ClosedResourceError):
        send.clone()
    await send.aclose()  # idempotent
    assert receive.receive_nowait() == "a"
    with pytest.raises(trio.EndOfChannel):
        receive.receive_nowait()
    with pytest.raises(trio.EndOfChannel):
        await receive.receive()


@trio_test
async def test_closing_the_send_side_wakes_its_senders_and_all_receivers() -> None:
    send, receive = trio.open_memory_channel[None](0)

    async def expect(exc: type[BaseException], fn: Any) -> None:
        with pytest.raises(exc):
            await fn(*([None] if fn == send.send else []))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(expect, trio.ClosedResourceError, send.send)
        await wait_all_tasks_blocked()
        send.close()
    send2, receive2 = trio.open_memory_channel[None](0)
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(expect, trio.EndOfChannel, receive2.receive)
        await wait_all_tasks_blocked()
        send2.close()


@trio_test
async def test_closing_the_receive_side_breaks_senders_and_drops_the_buffer() -> None:
    send, receive = trio.open_memory_channel[int](1)
    send.send_nowait(1)

    async def blocked_sender() -> None:
        with pytest.raises(trio.BrokenResourceError):
            await send.send(2)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_sender)
        await wait_all_tasks_blocked()
        await receive.aclose()
    assert send.statistics().current_buffer_used == 0
    with pytest.raises(trio.BrokenResourceError):
        send.send_nowait(3)
    with pytest.raises(trio.ClosedResourceError):
        receive.receive_nowait()
    with pytest.raises(trio.ClosedResourceError):
        await receive.receive()


@trio_test
async def test_closing_one_clone_wakes_only_its_own_waiters() -> None:
    send1, receive1 = trio.open_memory_channel[str](0)
    send2 = send1.clone()
    receive2 = receive1.clone()
    results: list[str] = []

    async def send_on(channel: Any, value: str) -> None:
        try:
            await channel.send(value)
            results.append(f"sent {value}")
        except trio.ClosedResourceError:
            results.append(f"closed {value}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_on, send1, "one")
        await wait_all_tasks_blocked()
        nursery.start_soon(send_on, send2, "two")
        await wait_all_tasks_blocked()
        send1.close()
        await wait_all_tasks_blocked()
        assert results == ["closed one"]
        receive1.close()  # receive2 still open: not broken
        assert await receive2.receive() == "two"
    assert results == ["closed one", "sent two"]


@trio_test
async def test_channel_ends_only_when_every_clone_is_closed() -> None:
    send, receive = trio.open_memory_channel[int](10)
    clone = send.clone()
    send.close()
    clone.send_nowait(1)
    assert receive.receive_nowait() == 1
    with pytest.raises(trio.WouldBlock):
        receive.receive_nowait()
    clone.close()
    with pytest.raises(trio.EndOfChannel):
        receive.receive_nowait()


@trio_test
async def test_sync_and_async_with_close_the_endpoint() -> None:
    send, receive = trio.open_memory_channel[int](0)
    with send:
        pass
    async with receive:
        pass
    stats = send.statistics()
    assert (stats.open_send_channels, stats.open_receive_channels) == (0, 0)


# ---------------------------------------------------------------- cancellation


@trio_test
async def test_cancelled_send_sends_nothing() -> None:
    send, receive = trio.open_memory_channel[int](0)
    with trio.move_on_after(0) as scope:
        await send.send(1)
    assert scope.cancelled_caught
    assert send.statistics().tasks_waiting_send == 0
    with pytest.raises(trio.WouldBlock):
        receive.receive_nowait()


@trio_test
async def test_cancelled_receive_takes_nothing() -> None:
    send, receive = trio.open_memory_channel[int](1)
    send.send_nowait(1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await receive.receive()
    assert receive.receive_nowait() == 1


@trio_test
async def test_item_handed_to_a_receiver_survives_a_simultaneous_cancel() -> None:
    send, receive = trio.open_memory_channel[str](0)
    got: list[str] = []
    scopes: list[trio.CancelScope] = []

    async def receiver() -> None:
        with trio.CancelScope() as scope:
            scopes.append(scope)
            got.append(await receive.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        send.send_nowait("precious")  # hands off: the receiver is already rescheduled
        scopes[0].cancel()  # too late to abort the receive
    assert got == ["precious"]


@trio_test
async def test_timeouts_with_mock_clock(autojump_clock: MockClock) -> None:
    send, receive = trio.open_memory_channel[str](1)
    with trio.move_on_after(10) as scope:
        await receive.receive()
    assert scope.cancelled_caught
    await send.send("after the timeout")
    assert receive.receive_nowait() == "after the timeout"


_schedule = st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=12)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    buffer_size=st.sampled_from([0, 1, 3, math.inf]),
    producers=st.lists(_schedule, min_size=1, max_size=4),
    consumers=st.lists(st.tuples(_schedule, st.booleans()), min_size=1, max_size=4),
    canceller_delays=st.lists(st.integers(min_value=0, max_value=6), max_size=10),
)
def test_random_cancellations_lose_and_duplicate_nothing(
    buffer_size: int | float,
    producers: list[list[int]],
    consumers: list[tuple[list[int], bool]],
    canceller_delays: list[int],
) -> None:
    """Producers send numbered items, each send under a random timeout; consumers
    receive under random timeouts (some give up early); a canceller cancels random
    in-flight operations at random times. Afterwards every item whose send returned
    was received exactly once or is still in the channel, and no item whose send was
    cancelled shows up anywhere. Each producer's items also stay in order."""

    async def main() -> None:
        send, receive = trio.open_memory_channel[tuple[int, int]](buffer_size)
        sent: list[tuple[int, int]] = []
        received_by: list[list[tuple[int, int]]] = []
        in_flight: list[trio.CancelScope] = []

        async def producer(p: int, timeouts: list[int], channel: Any) -> None:
            async with channel:
                for n, timeout in enumerate(timeouts):
                    item = (p, n)
                    with trio.move_on_after(timeout) as scope:
                        in_flight.append(scope)
                        try:
                            await channel.send(item)
                            sent.append(item)
                        finally:
                            in_flight.remove(scope)

        async def consumer(timeouts: list[int], gives_up: bool, channel: Any) -> None:
            received: list[tuple[int, int]] = []
            received_by.append(received)
            async with channel:
                attempt = 0
                while not (gives_up and attempt == len(timeouts)):
                    timeout = timeouts[attempt % len(timeouts)]
                    if attempt >= len(timeouts):
                        # On later rounds, give time a chance to move (with a zero
                        # timeout every receive is cancelled before it starts).
                        timeout = max(timeout, 1)
                    attempt += 1
                    with trio.move_on_after(timeout) as scope:
                        in_flight.append(scope)
                        try:
                            received.append(await channel.receive())
                        except trio.EndOfChannel:
                            return
                        finally:
                            in_flight.remove(scope)
                    await trio.sleep(timeout % 2)

        async def canceller() -> None:
            for delay in canceller_delays:
                await trio.sleep(delay)
                if in_flight:
                    in_flight[delay % len(in_flight)].cancel()

        # `receive` itself stays open throughout, so nothing is ever dropped by the
        # last receiver closing: what is not received must still be in the buffer.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(canceller)
            async with send:
                for p, timeouts in enumerate(producers):
                    nursery.start_soon(producer, p, timeouts, send.clone())
            for timeouts, gives_up in consumers:
                nursery.start_soon(consumer, timeouts, gives_up, receive.clone())

        leftovers: list[tuple[int, int]] = []
        while True:
            try:
                leftovers.append(receive.receive_nowait())
            except trio.EndOfChannel:
                break
        stats = receive.statistics()
        assert stats.tasks_waiting_send == stats.tasks_waiting_receive == 0
        everything = [item for received in received_by for item in received] + leftovers
        assert Counter(everything) == Counter(sent), "lost or duplicated items"
        assert len(set(sent)) == len(sent)
        assert len(leftovers) <= buffer_size
        # FIFO: whoever receives several items of one producer gets them in send order.
        for got in [*received_by, leftovers]:
            for p in range(len(producers)):
                mine = [n for (q, n) in got if q == p]
                assert mine == sorted(mine), "a producer's items were reordered"

    trio.run(main, clock=MockClock(autojump_threshold=0))


@trio_test
async def test_random_cancellations_leave_unreceived_items_in_the_channel() -> None:
    # Deterministic companion of the property test: a cancelled receiver leaves the
    # item for the next one.
    send, receive = trio.open_memory_channel[int](0)
    got: list[int] = []

    async def impatient() -> None:
        with trio.move_on_after(0):
            got.append(await receive.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(impatient)
        await wait_all_tasks_blocked()
        nursery.start_soon(send.send, 5)
        await wait_all_tasks_blocked()
        assert got == []
        assert send.statistics().tasks_waiting_send == 1
        assert await receive.receive() == 5


# ---------------------------------------------------------------- as_safe_channel


@trio_test
async def test_as_safe_channel_yields_the_generator_items() -> None:
    @trio.as_safe_channel
    async def numbers(n: int) -> AsyncGenerator[int]:
        for i in range(n):
            yield i

    async with numbers(4) as channel:
        assert [i async for i in channel] == [0, 1, 2, 3]
    assert numbers.__name__ == "numbers"


@trio_test
async def test_as_safe_channel_produces_only_on_demand() -> None:
    produced: list[int] = []

    @trio.as_safe_channel
    async def gen() -> AsyncGenerator[int]:
        for i in range(10):
            produced.append(i)
            yield i

    async with gen() as channel:
        await wait_all_tasks_blocked()
        assert produced == []
        assert await channel.receive() == 0
        await wait_all_tasks_blocked()
        assert produced == [0]


@trio_test
async def test_as_safe_channel_closes_the_generator_on_exit() -> None:
    events: list[str] = []

    @trio.as_safe_channel
    async def gen() -> AsyncGenerator[int]:
        try:
            while True:
                yield 1
        finally:
            events.append("closed")

    async with gen() as channel:
        await channel.receive()
    assert events == ["closed"]


@trio_test
async def test_as_safe_channel_raises_a_single_error_unwrapped() -> None:
    @trio.as_safe_channel
    async def gen() -> AsyncGenerator[int]:
        yield 1
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        async with gen() as channel:
            async for _ in channel:
                pass


@trio_test
async def test_as_safe_channel_reports_two_errors_as_a_group() -> None:
    @trio.as_safe_channel
    async def gen() -> AsyncGenerator[int]:
        try:
            yield 1
        finally:
            raise KeyError("from the generator")

    with pytest.RaisesGroup(KeyError, ValueError) as info:
        async with gen() as channel:
            async for _ in channel:
                raise ValueError("from the body")
    assert info.value.__notes__


@trio_test
async def test_as_safe_channel_receive_after_close_is_closed_resource_error() -> None:
    @trio.as_safe_channel
    async def gen() -> AsyncGenerator[int]:
        while True:
            yield 1

    async with gen() as channel:
        await channel.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await channel.receive()


# ---------------------------------------------------------------- UnboundedQueue


def test_unbounded_queue_is_deprecated() -> None:
    with pytest.warns(trio.TrioDeprecationWarning, match="UnboundedQueue.*0.9.0.*497"):
        trio.lowlevel.UnboundedQueue()


@pytest.mark.filterwarnings("ignore::vivace.TrioDeprecationWarning")
@trio_test
async def test_unbounded_queue_returns_everything_as_one_batch() -> None:
    queue = trio.lowlevel.UnboundedQueue[int]()
    with pytest.raises(trio.WouldBlock):
        queue.get_batch_nowait()
    for i in range(3):
        queue.put_nowait(i)
    assert queue.qsize() == 3 and not queue.empty()
    assert queue.statistics() == trio.lowlevel.UnboundedQueueStatistics(qsize=3, tasks_waiting=0)
    with assert_checkpoints():
        assert await queue.get_batch() == [0, 1, 2]
    assert queue.empty()


@pytest.mark.filterwarnings("ignore::vivace.TrioDeprecationWarning")
@trio_test
async def test_unbounded_queue_wakes_one_waiter_per_batch_in_fifo_order() -> None:
    queue = trio.lowlevel.UnboundedQueue[int]()
    record: list[tuple[str, list[int]]] = []

    async def reader(name: str) -> None:
        async for batch in queue:
            record.append((name, batch))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader, "a")
        await wait_all_tasks_blocked()
        nursery.start_soon(reader, "b")
        await wait_all_tasks_blocked()
        queue.put_nowait(1)
        queue.put_nowait(2)
        # The batch is promised to the woken reader.
        with pytest.raises(trio.WouldBlock):
            queue.get_batch_nowait()
        await wait_all_tasks_blocked()
        queue.put_nowait(3)
        await wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert record == [("a", [1, 2]), ("b", [3])]


# ---------------------------------------------------------------- ABCs and generic helpers


@trio_test
async def test_async_resource_async_with_calls_aclose() -> None:
    closed: list[bool] = []

    class Resource(trio.abc.AsyncResource):
        async def aclose(self) -> None:
            closed.append(True)

    async with Resource() as resource:
        assert isinstance(resource, Resource)
    assert closed == [True]


def test_channel_abcs_are_generic_and_slotted() -> None:
    class Slotted(trio.abc.SendChannel[int]):
        __slots__ = ("x",)

        async def send(self, value: int) -> None:  # pragma: no cover
            pass

        async def aclose(self) -> None:  # pragma: no cover
            pass

    assert not hasattr(Slotted(), "__dict__")
    assert issubclass(trio.abc.Channel, trio.abc.SendChannel)
    assert issubclass(trio.abc.Channel, trio.abc.ReceiveChannel)
    assert issubclass(trio.abc.HalfCloseableStream, trio.abc.Stream)
    with pytest.raises(TypeError):
        trio.abc.Listener()  # type: ignore[abstract]
    assert trio.abc.ReceiveChannel.__module__ == "vivace.abc"


@trio_test
async def test_receive_stream_async_for_stops_at_eof() -> None:
    class Chunks(trio.abc.ReceiveStream):
        def __init__(self) -> None:
            self.chunks = [b"a", b"b", b""]

        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            return self.chunks.pop(0)

        async def aclose(self) -> None:  # pragma: no cover
            pass

    assert [chunk async for chunk in Chunks()] == [b"a", b"b"]


class _RecordingSend(trio.abc.SendStream):
    def __init__(self, record: list[Any]) -> None:
        self.record = record

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.record.append(("send_all", data))

    async def wait_send_all_might_not_block(self) -> None:
        self.record.append("wait")

    async def aclose(self) -> None:
        self.record.append("send aclose")


class _RecordingReceive(trio.abc.ReceiveStream):
    def __init__(self, record: list[Any], fail: bool = False) -> None:
        self.record = record
        self.fail = fail

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self.record.append(("receive_some", max_bytes))
        return b""

    async def aclose(self) -> None:
        self.record.append("receive aclose")


@trio_test
async def test_stapled_stream_delegates_each_direction() -> None:
    record: list[Any] = []
    stapled = trio.StapledStream(_RecordingSend(record), _RecordingReceive(record))
    await stapled.send_all(b"x")
    await stapled.wait_send_all_might_not_block()
    await stapled.receive_some(10)
    await stapled.send_eof()  # no send_eof on the send stream: closes it
    assert record == [("send_all", b"x"), "wait", ("receive_some", 10), "send aclose"]


@trio_test
async def test_stapled_stream_aclose_closes_both_even_if_one_fails() -> None:
    record: list[Any] = []

    class FailingSend(_RecordingSend):
        async def aclose(self) -> None:
            await super().aclose()
            raise OSError("send side")

    stapled = trio.StapledStream(FailingSend(record), _RecordingReceive(record))
    with pytest.raises(OSError, match="send side"):
        await stapled.aclose()
    assert record == ["send aclose", "receive aclose"]


@trio_test
async def test_aclose_forcefully_closes_in_a_cancelled_scope() -> None:
    seen: list[str] = []

    class Slow(trio.abc.AsyncResource):
        async def aclose(self) -> None:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                seen.append("cancelled, closed anyway")
                raise

    with assert_checkpoints():
        await trio.aclose_forcefully(Slow())
    assert seen == ["cancelled, closed anyway"]
