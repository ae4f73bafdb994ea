"""vivace.testing's in-memory streams (buffered and lockstep), memory_stream_pump, and
the generic stream checkers, including the checkers run against those streams and
against deliberately broken ones."""

from __future__ import annotations

import pytest

import vivace as trio
from vivace.abc import HalfCloseableStream, ReceiveStream, SendStream, Stream
from vivace.testing import (
    MemoryReceiveStream,
    MemorySendStream,
    MockClock,
    assert_checkpoints,
    check_half_closeable_stream,
    check_one_way_stream,
    check_two_way_stream,
    lockstep_stream_one_way_pair,
    lockstep_stream_pair,
    memory_stream_one_way_pair,
    memory_stream_pair,
    memory_stream_pump,
    trio_test,
    wait_all_tasks_blocked,
)


async def _cancel_when_idle(scope: trio.CancelScope) -> None:
    await wait_all_tasks_blocked()
    scope.cancel()


# ---------------------------------------------------------------- MemorySendStream


@trio_test
async def test_send_stream_buffers_data_for_get_data_nowait() -> None:
    stream = MemorySendStream()
    await stream.send_all(b"123")
    assert stream.get_data_nowait(1) == b"1"
    assert stream.get_data_nowait() == b"23"


@trio_test
async def test_send_stream_send_all_is_a_checkpoint() -> None:
    stream = MemorySendStream()
    with assert_checkpoints():
        await stream.send_all(b"x")


@trio_test
async def test_send_stream_wait_send_all_might_not_block_is_a_checkpoint() -> None:
    stream = MemorySendStream()
    with assert_checkpoints():
        await stream.wait_send_all_might_not_block()


@trio_test
async def test_send_stream_get_data_nowait_on_empty_buffer_raises_would_block() -> None:
    stream = MemorySendStream()
    with pytest.raises(trio.WouldBlock):
        stream.get_data_nowait()
    with pytest.raises(trio.WouldBlock):
        stream.get_data_nowait(10)


@trio_test
async def test_send_stream_get_data_is_a_checkpoint_when_data_is_ready() -> None:
    stream = MemorySendStream()
    await stream.send_all(b"456")
    with assert_checkpoints():
        assert await stream.get_data() == b"456"


@trio_test
async def test_send_stream_get_data_waits_for_data() -> None:
    stream = MemorySendStream()
    got = []

    async def reader() -> None:
        got.append(await stream.get_data())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await wait_all_tasks_blocked()
        assert got == []
        await stream.send_all(b"late")
    assert got == [b"late"]


@trio_test
async def test_send_stream_get_data_returns_a_bytearray() -> None:
    stream = MemorySendStream()
    await stream.send_all(b"abc")
    assert type(await stream.get_data()) is bytearray


@trio_test
async def test_send_stream_concurrent_send_all_makes_exactly_one_busy() -> None:
    stream = MemorySendStream()
    busy = 0

    async def send() -> None:
        nonlocal busy
        try:
            await stream.send_all(b"xxx")
        except trio.BusyResourceError:
            busy += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        nursery.start_soon(send)
    assert busy == 1
    assert stream.get_data_nowait() == b"xxx"


@trio_test
async def test_send_stream_send_all_and_wait_conflict() -> None:
    stream = MemorySendStream()
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send_all, b"x")
            nursery.start_soon(stream.wait_send_all_might_not_block)


@trio_test
async def test_send_stream_concurrent_get_data_raises_busy() -> None:
    stream = MemorySendStream()
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.get_data)
            nursery.start_soon(stream.get_data)


@trio_test
async def test_send_stream_cancelled_send_all_sends_nothing() -> None:
    stream = MemorySendStream()
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.send_all(b"never")
    with pytest.raises(trio.WouldBlock):
        stream.get_data_nowait()


@trio_test
async def test_send_stream_close_drains_then_reports_eof() -> None:
    stream = MemorySendStream()
    await stream.send_all(b"xxx")
    with assert_checkpoints():
        await stream.aclose()
    assert await stream.get_data() == b"xxx"
    assert await stream.get_data() == b""
    assert stream.get_data_nowait() == b""


@trio_test
async def test_send_stream_close_wakes_a_waiting_get_data_with_eof() -> None:
    stream = MemorySendStream()
    got = []

    async def reader() -> None:
        got.append(await stream.get_data())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await wait_all_tasks_blocked()
        stream.close()
    assert got == [b""]


@trio_test
async def test_send_stream_send_all_after_close_raises_closed() -> None:
    stream = MemorySendStream()
    stream.close()
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"---")
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"")


@trio_test
async def test_send_stream_wait_after_close_raises_closed() -> None:
    stream = MemorySendStream()
    await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await stream.wait_send_all_might_not_block()


@trio_test
async def test_send_stream_cancelled_aclose_still_closes() -> None:
    stream = MemorySendStream()
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.aclose()
    assert scope.cancelled_caught
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"x")


@trio_test
async def test_send_stream_get_data_rejects_bad_max_bytes() -> None:
    stream = MemorySendStream()
    await stream.send_all(b"abc")
    with pytest.raises(ValueError):
        stream.get_data_nowait(0)
    with pytest.raises(TypeError):
        stream.get_data_nowait(1.5)  # type: ignore[arg-type]
    assert stream.get_data_nowait() == b"abc"


def test_send_stream_hooks_default_to_none() -> None:
    stream = MemorySendStream()
    assert stream.send_all_hook is None
    assert stream.wait_send_all_might_not_block_hook is None
    assert stream.close_hook is None


@trio_test
async def test_send_stream_hooks_run_from_their_methods() -> None:
    record: list[str] = []

    async def send_all_hook() -> None:
        # Runs after the data is buffered, so it can take it out.
        assert stream.get_data_nowait() == b"abc"
        record.append("send_all")

    async def wait_hook() -> None:
        record.append("wait")

    def close_hook() -> None:
        record.append("close")

    stream = MemorySendStream(send_all_hook, wait_hook, close_hook)
    assert stream.send_all_hook is send_all_hook
    assert stream.wait_send_all_might_not_block_hook is wait_hook
    assert stream.close_hook is close_hook
    await stream.send_all(b"abc")
    await stream.wait_send_all_might_not_block()
    await trio.aclose_forcefully(stream)
    stream.close()
    assert record == ["send_all", "wait", "close", "close"]


def test_memory_streams_are_final() -> None:
    for cls in (MemorySendStream, MemoryReceiveStream):
        with pytest.raises(TypeError):
            type("Sub", (cls,), {})


def test_memory_streams_have_public_module() -> None:
    assert MemorySendStream.__module__ == "vivace.testing"
    assert MemoryReceiveStream.__module__ == "vivace.testing"


# ---------------------------------------------------------------- MemoryReceiveStream


@trio_test
async def test_receive_stream_returns_at_most_max_bytes() -> None:
    stream = MemoryReceiveStream()
    stream.put_data(b"abc")
    with assert_checkpoints():
        assert await stream.receive_some(1) == b"a"
    assert await stream.receive_some(10) == b"bc"


@trio_test
async def test_receive_stream_none_max_bytes_returns_everything() -> None:
    stream = MemoryReceiveStream()
    stream.put_data(b"abc")
    stream.put_data(b"def")
    assert await stream.receive_some(None) == b"abcdef"


@trio_test
async def test_receive_stream_rejects_bad_max_bytes() -> None:
    stream = MemoryReceiveStream()
    stream.put_data(b"abc")
    with pytest.raises(ValueError):
        await stream.receive_some(0)
    with pytest.raises(TypeError):
        await stream.receive_some(1.5)  # type: ignore[arg-type]


@trio_test
async def test_receive_stream_concurrent_receive_raises_busy() -> None:
    stream = MemoryReceiveStream()
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.receive_some, 10)
            nursery.start_soon(stream.receive_some, 10)


@trio_test
async def test_receive_stream_eof_after_data_and_put_eof_is_idempotent() -> None:
    stream = MemoryReceiveStream()
    stream.put_data(b"def")
    stream.put_eof()
    stream.put_eof()
    assert await stream.receive_some(10) == b"def"
    with assert_checkpoints():
        assert await stream.receive_some(10) == b""
    assert await stream.receive_some(10) == b""


@trio_test
async def test_receive_stream_put_data_after_eof_raises_closed() -> None:
    stream = MemoryReceiveStream()
    stream.put_eof()
    with pytest.raises(trio.ClosedResourceError):
        stream.put_data(b"---")


@trio_test
async def test_receive_stream_async_iteration_stops_at_eof() -> None:
    stream = MemoryReceiveStream()
    stream.put_data(b"one")
    stream.put_eof()
    assert [chunk async for chunk in stream] == [b"one"]


@trio_test
async def test_receive_stream_hook_runs_before_reading() -> None:
    async def receive_some_hook() -> None:
        stream.put_data(b"xxx")

    stream = MemoryReceiveStream(receive_some_hook)
    assert stream.receive_some_hook is receive_some_hook
    stream.put_data(b"yyy")
    assert await stream.receive_some(10) == b"yyyxxx"
    assert await stream.receive_some(10) == b"xxx"
    stream.receive_some_hook = None
    stream.put_data(b"zzz")
    assert await stream.receive_some(10) == b"zzz"


@trio_test
async def test_receive_stream_close_discards_data_and_calls_hook() -> None:
    record: list[str] = []
    stream = MemoryReceiveStream(close_hook=lambda: record.append("closed"))
    stream.put_data(b"lost on close")
    with assert_checkpoints():
        await stream.aclose()
    assert record == ["closed"]
    with pytest.raises(trio.ClosedResourceError):
        await stream.receive_some(10)


@trio_test
async def test_receive_stream_close_is_idempotent_and_blocks_put_data() -> None:
    stream = MemoryReceiveStream()
    stream.close()
    stream.close()
    with pytest.raises(trio.ClosedResourceError):
        stream.put_data(b"123")
    with pytest.raises(trio.ClosedResourceError):
        await stream.receive_some(10)


@trio_test
async def test_receive_stream_close_wakes_a_blocked_receiver_with_closed() -> None:
    stream = MemoryReceiveStream()

    async def receive() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await stream.receive_some(10)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await wait_all_tasks_blocked()
        stream.close()


@trio_test
async def test_receive_stream_cancelled_receive_takes_nothing() -> None:
    stream = MemoryReceiveStream()
    stream.put_data(b"kept")
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.receive_some()
    assert await stream.receive_some() == b"kept"


# ---------------------------------------------------------------- memory_stream_pump


@trio_test
async def test_pump_with_nothing_buffered_returns_false() -> None:
    assert memory_stream_pump(MemorySendStream(), MemoryReceiveStream()) is False


@trio_test
async def test_pump_moves_all_buffered_data() -> None:
    send, receive = MemorySendStream(), MemoryReceiveStream()
    await send.send_all(b"123")
    assert memory_stream_pump(send, receive) is True
    assert await receive.receive_some(10) == b"123"


@trio_test
async def test_pump_honours_max_bytes() -> None:
    send, receive = MemorySendStream(), MemoryReceiveStream()
    await send.send_all(b"456")
    assert memory_stream_pump(send, receive, max_bytes=1)
    assert await receive.receive_some(10) == b"4"
    assert memory_stream_pump(send, receive, max_bytes=1)
    assert memory_stream_pump(send, receive, max_bytes=1)
    assert not memory_stream_pump(send, receive, max_bytes=1)
    assert await receive.receive_some(10) == b"56"


@trio_test
async def test_pump_passes_close_on_as_eof() -> None:
    send, receive = MemorySendStream(), MemoryReceiveStream()
    send.close()
    assert memory_stream_pump(send, receive)
    assert await receive.receive_some(10) == b""


@trio_test
async def test_pump_into_closed_receiver_raises_broken() -> None:
    send, receive = MemorySendStream(), MemoryReceiveStream()
    await send.send_all(b"x")
    receive.close()
    with pytest.raises(trio.BrokenResourceError):
        memory_stream_pump(send, receive)


# ---------------------------------------------------------------- memory pairs


def test_one_way_pair_wires_the_pump_hooks() -> None:
    send, receive = memory_stream_one_way_pair()
    assert send.send_all_hook is not None
    assert send.wait_send_all_might_not_block_hook is None
    assert send.close_hook is not None
    assert receive.receive_some_hook is None


@trio_test
async def test_one_way_pair_send_wakes_a_blocked_receiver() -> None:
    send, receive = memory_stream_one_way_pair()

    async def receiver() -> None:
        assert await receive.receive_some(10) == b"abc"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        await send.send_all(b"abc")


@pytest.mark.parametrize("use_aclose", [True, False])
@trio_test
async def test_one_way_pair_close_delivers_eof_to_a_blocked_receiver(use_aclose: bool) -> None:
    send, receive = memory_stream_one_way_pair()

    async def receiver() -> None:
        assert await receive.receive_some(10) == b""

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        if use_aclose:
            await send.aclose()
        else:
            send.close()


@trio_test
async def test_one_way_pair_without_send_hook_stalls_until_pumped() -> None:
    send, receive = memory_stream_one_way_pair()
    pump_hook = send.send_all_hook
    send.send_all_hook = None
    await send.send_all(b"456")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_when_idle, nursery.cancel_scope)
        with pytest.raises(trio.Cancelled):
            await receive.receive_some(10)

    send.send_all_hook = pump_hook
    await send.send_all(b"789")
    assert await receive.receive_some(10) == b"456789"


@trio_test
async def test_memory_stream_pair_is_bidirectional() -> None:
    left, right = memory_stream_pair()
    await left.send_all(b"123")
    await right.send_all(b"abc")
    assert await right.receive_some(10) == b"123"
    assert await left.receive_some(10) == b"abc"


@trio_test
async def test_memory_stream_pair_send_eof_gives_peer_eof() -> None:
    left, right = memory_stream_pair()
    await left.send_eof()
    assert await right.receive_some(10) == b""
    await right.send_all(b"still open this way")
    assert await left.receive_some() == b"still open this way"


def test_memory_stream_pair_trickles_under_a_mock_clock() -> None:
    clock = MockClock(autojump_threshold=0)

    async def main() -> None:
        left, right = memory_stream_pair()

        async def trickle() -> None:
            while memory_stream_pump(left.send_stream, right.receive_stream, max_bytes=1):
                await trio.sleep(1)

        left.send_stream.send_all_hook = trickle
        got = []

        async def sender() -> None:
            await left.send_all(b"123")
            await left.send_eof()

        async def receiver() -> None:
            async for chunk in right:
                got.append((bytes(chunk), trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            nursery.start_soon(receiver)
        assert got == [(b"1", 0.0), (b"2", 1.0), (b"3", 2.0)]

    trio.run(main, clock=clock)


# ---------------------------------------------------------------- lockstep streams


@trio_test
async def test_lockstep_send_all_blocks_until_every_byte_is_received() -> None:
    send, receive = lockstep_stream_one_way_pair()
    done = trio.Event()

    async def sender() -> None:
        await send.send_all(b"abc")
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await wait_all_tasks_blocked()
        assert not done.is_set()
        assert await receive.receive_some(2) == b"ab"
        await wait_all_tasks_blocked()
        assert not done.is_set()
        assert await receive.receive_some(2) == b"c"
        await done.wait()


@trio_test
async def test_lockstep_empty_send_all_does_not_block() -> None:
    send, _receive = lockstep_stream_one_way_pair()
    with assert_checkpoints():
        await send.send_all(b"")


@trio_test
async def test_lockstep_wait_send_all_might_not_block_waits_for_a_receiver() -> None:
    send, receive = lockstep_stream_one_way_pair()
    ready = trio.Event()

    async def waiter() -> None:
        await send.wait_send_all_might_not_block()
        ready.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        assert not ready.is_set()
        nursery.start_soon(receive.receive_some, 10)
        await ready.wait()
        nursery.cancel_scope.cancel()


@trio_test
async def test_lockstep_sender_close_gives_receiver_eof() -> None:
    send, receive = lockstep_stream_one_way_pair()
    await send.aclose()
    assert await receive.receive_some(10) == b""


@trio_test
async def test_lockstep_receiver_close_breaks_a_blocked_sender() -> None:
    send, receive = lockstep_stream_one_way_pair()

    async def sender() -> None:
        with pytest.raises(trio.BrokenResourceError):
            await send.send_all(b"nobody reads this")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await wait_all_tasks_blocked()
        await receive.aclose()


@trio_test
async def test_lockstep_has_a_sync_close() -> None:
    send, receive = lockstep_stream_one_way_pair()
    receive.close()  # type: ignore[attr-defined]
    send.close()  # type: ignore[attr-defined]
    with pytest.raises(trio.ClosedResourceError):
        await send.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await receive.receive_some()


@trio_test
async def test_lockstep_concurrent_send_all_raises_busy() -> None:
    send, _receive = lockstep_stream_one_way_pair()
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send.send_all, b"1")
            nursery.start_soon(send.send_all, b"2")


@trio_test
async def test_lockstep_send_after_cancelled_send_delivers_both() -> None:
    send, receive = lockstep_stream_one_way_pair()
    with trio.move_on_after(0):
        await send.send_all(b"first ")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send.send_all, b"second")
        await wait_all_tasks_blocked()
        assert await receive.receive_some() == b"first second"


@trio_test
async def test_lockstep_stream_pair_is_bidirectional() -> None:
    left, right = lockstep_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(left.send_all, b"ping")
        assert await right.receive_some() == b"ping"
        nursery.start_soon(right.send_all, b"pong")
        assert await left.receive_some() == b"pong"


# ---------------------------------------------------------------- checkers on our streams


async def _memory_one_way() -> tuple[SendStream, ReceiveStream]:
    return memory_stream_one_way_pair()


async def _memory_two_way() -> tuple[HalfCloseableStream, HalfCloseableStream]:
    return memory_stream_pair()


async def _lockstep_one_way() -> tuple[SendStream, ReceiveStream]:
    return lockstep_stream_one_way_pair()


async def _lockstep_two_way() -> tuple[Stream, Stream]:
    return lockstep_stream_pair()


@trio_test
async def test_check_one_way_stream_accepts_memory_streams() -> None:
    await check_one_way_stream(_memory_one_way, None)


@trio_test
async def test_check_half_closeable_stream_accepts_memory_stream_pair() -> None:
    await check_half_closeable_stream(_memory_two_way, None)


@trio_test
async def test_check_one_way_stream_accepts_lockstep_streams_as_clogged() -> None:
    await check_one_way_stream(_lockstep_one_way, _lockstep_one_way)


@trio_test
async def test_check_two_way_stream_accepts_lockstep_stream_pair() -> None:
    await check_two_way_stream(_lockstep_two_way, _lockstep_two_way)


# ---------------------------------------------------------------- checkers catch bugs


class _EofAfterCloseReceiveStream(ReceiveStream):
    """Wraps a MemoryReceiveStream but reports EOF, not an error, once closed."""

    def __init__(self, inner: MemoryReceiveStream) -> None:
        self.inner = inner
        self.closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.closed:
            await trio.lowlevel.checkpoint()
            return b""
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


class _ForgetfulSendStream(SendStream):
    """Wraps a MemorySendStream but silently drops data once closed."""

    def __init__(self, inner: MemorySendStream) -> None:
        self.inner = inner
        self.closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            await trio.lowlevel.checkpoint()
            return
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


@trio_test
async def test_check_one_way_stream_rejects_receive_after_close() -> None:
    async def maker() -> tuple[SendStream, ReceiveStream]:
        send, receive = memory_stream_one_way_pair()
        return send, _EofAfterCloseReceiveStream(receive)

    with pytest.raises(AssertionError, match="ClosedResourceError"):
        await check_one_way_stream(maker, None)


@trio_test
async def test_check_one_way_stream_rejects_send_after_close() -> None:
    async def maker() -> tuple[SendStream, ReceiveStream]:
        send, receive = memory_stream_one_way_pair()
        return _ForgetfulSendStream(send), receive

    with pytest.raises(AssertionError, match="ClosedResourceError"):
        await check_one_way_stream(maker, None)


@trio_test
async def test_clogged_check_rejects_a_stream_that_never_clogs() -> None:
    with pytest.raises(AssertionError, match="clogged"):
        await check_one_way_stream(_memory_one_way, _memory_one_way)


@trio_test
async def test_check_two_way_stream_rejects_one_way_streams() -> None:
    with pytest.raises(AssertionError, match="is not a SendStream"):
        await check_two_way_stream(_memory_one_way, None)  # type: ignore[arg-type]


@trio_test
async def test_check_half_closeable_stream_rejects_eof_that_is_not_a_checkpoint() -> None:
    class NoCheckpointEof(HalfCloseableStream):
        def __init__(self, inner: HalfCloseableStream) -> None:
            self.inner = inner

        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            await self.inner.send_all(data)

        async def wait_send_all_might_not_block(self) -> None:
            await self.inner.wait_send_all_might_not_block()

        async def send_eof(self) -> None:
            stapled = self.inner
            assert isinstance(stapled, trio.StapledStream)
            stapled.send_stream.close()

        async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
            return await self.inner.receive_some(max_bytes)

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def maker() -> tuple[HalfCloseableStream, HalfCloseableStream]:
        left, right = memory_stream_pair()
        return NoCheckpointEof(left), NoCheckpointEof(right)

    # The failing send_eof runs in a child task, so the nursery reports it in a group.
    with pytest.RaisesGroup(
        pytest.RaisesExc(AssertionError, match="did not yield"), flatten_subgroups=True
    ):
        await check_half_closeable_stream(maker, None)
