"""The engine's socket operations (sock_recv/sock_send/sock_send_all, stream_recv/
stream_send_all, BusyGuard) and the SocketStream fast path built on them. Every test
runs on both engines; the behaviour must be the same."""

from __future__ import annotations

import socket as stdlib_socket
import struct
from collections.abc import Iterator

import pytest

import vivace as trio
from _io_epoll_support import io_stats
from vivace import _core, socket as tsocket
from vivace.testing import assert_checkpoints, trio_test, wait_all_tasks_blocked


@pytest.fixture
def pair() -> Iterator[tuple[stdlib_socket.socket, stdlib_socket.socket]]:
    a, b = stdlib_socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def _waiting_readers() -> int:
    return io_stats().tasks_waiting_read


async def _idle_readers() -> int:
    # System tasks (run_sync_soon's) wait on fds of their own once they have started.
    await wait_all_tasks_blocked()
    return _waiting_readers()


def _reset(sock: stdlib_socket.socket) -> None:
    # Close with SO_LINGER 0: the peer gets RST, i.e. ECONNRESET.
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def _tcp_stream_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        client = await trio.testing.open_stream_to_socket_listener(listener)
        server = await listener.accept()
    return client, server


# --- sock_recv ------------------------------------------------------------------------


@trio_test
async def test_sock_recv_of_ready_data_is_a_checkpoint(pair) -> None:
    a, b = pair
    b.send(b"hello")
    with assert_checkpoints():
        assert await _core.sock_recv(a, 100) == b"hello"


@trio_test
async def test_sock_recv_cancelled_before_the_call_receives_nothing(pair) -> None:
    a, b = pair
    b.send(b"hello")
    with trio.CancelScope() as scope:
        scope.cancel()
        await _core.sock_recv(a, 100)
    assert scope.cancelled_caught
    assert a.recv(100) == b"hello"


@trio_test
async def test_sock_recv_waits_for_data(pair) -> None:
    a, b = pair
    got = []
    idle = await _idle_readers()

    async def reader() -> None:
        got.append(await _core.sock_recv(a, 100))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await wait_all_tasks_blocked()
        assert _waiting_readers() == idle + 1
        b.send(b"late")
    assert got == [b"late"]
    assert _waiting_readers() == idle


@trio_test
async def test_sock_recv_cancelled_while_waiting_leaves_no_waiter(pair) -> None:
    a, b = pair
    idle = await _idle_readers()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_core.sock_recv, a, 100)
        await wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert _waiting_readers() == idle
    b.send(b"still here")
    assert await _core.sock_recv(a, 100) == b"still here"


@trio_test
async def test_sock_recv_second_waiter_is_busy(pair) -> None:
    a, _ = pair
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_core.sock_recv, a, 10)
        await wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await _core.sock_recv(a, 10)
        nursery.cancel_scope.cancel()


@trio_test
async def test_sock_recv_notify_closing_wakes_waiter_with_closed_error(pair) -> None:
    a, _ = pair

    async def reader() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await _core.sock_recv(a, 10)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await wait_all_tasks_blocked()
        trio.lowlevel.notify_closing(a)


@trio_test
async def test_sock_recv_larger_than_scratch_buffer(pair) -> None:
    a, b = pair
    b.setblocking(True)
    b.sendall(b"z" * 100_000)
    got = bytearray()
    while len(got) < 100_000:
        got += await _core.sock_recv(a, 200_000)
    assert got == b"z" * 100_000


@trio_test
async def test_sock_recv_of_closed_socket_raises_EBADF_after_a_checkpoint() -> None:
    a, b = stdlib_socket.socketpair()
    b.close()
    a.close()
    with assert_checkpoints(), pytest.raises(OSError) as info:
        await _core.sock_recv(a, 10)
    assert info.value.errno == 9  # EBADF
    assert type(info.value) is OSError


@trio_test
async def test_sock_recv_reset_connection_raises_ConnectionResetError() -> None:
    client, server = await _tcp_stream_pair()
    async with server:
        _reset(client.socket._sock)  # type: ignore[attr-defined]
        with pytest.raises(ConnectionResetError):
            while True:
                await _core.sock_recv(server.socket._sock, 10)  # type: ignore[attr-defined]


def test_sock_recv_rejects_negative_size(pair) -> None:
    with pytest.raises(ValueError, match="negative buffersize"):
        _core.sock_recv(pair[0], -1)


# --- sock_send / sock_send_all --------------------------------------------------------


@trio_test
async def test_sock_send_returns_count_and_is_a_checkpoint(pair) -> None:
    a, b = pair
    with assert_checkpoints():
        assert await _core.sock_send(a, b"abc") == 3
    assert b.recv(10) == b"abc"


@trio_test
async def test_sock_send_cancelled_before_the_call_sends_nothing(pair) -> None:
    a, b = pair
    with trio.CancelScope() as scope:
        scope.cancel()
        await _core.sock_send(a, b"abc")
    assert scope.cancelled_caught
    with pytest.raises(BlockingIOError):
        b.recv(10)


@trio_test
async def test_sock_send_all_sends_everything_through_a_full_buffer(pair) -> None:
    a, b = pair
    data = bytes(range(256)) * 8192  # 2 MiB: many partial sends and waits
    got = bytearray()

    async def reader() -> None:
        while len(got) < len(data):
            got.extend(await _core.sock_recv(b, 65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await _core.sock_send_all(a, data)
    assert got == data


@trio_test
async def test_sock_send_all_of_nothing_is_still_a_checkpoint(pair) -> None:
    with assert_checkpoints():
        await _core.sock_send_all(pair[0], b"")


@trio_test
async def test_sock_send_all_takes_any_contiguous_buffer(pair) -> None:
    a, b = pair
    await _core.sock_send_all(a, memoryview(struct.pack("4i", 1, 2, 3, 4)).cast("i"))
    assert b.recv(100) == struct.pack("4i", 1, 2, 3, 4)


@trio_test
async def test_sock_send_all_refuses_non_contiguous_buffer(pair) -> None:
    with pytest.raises(BufferError):
        await _core.sock_send_all(pair[0], memoryview(b"abcdef")[::2])


@trio_test
async def test_sock_send_all_refuses_str_when_awaited(pair) -> None:
    op = _core.sock_send_all(pair[0], "text")
    with pytest.raises(TypeError, match="bytes-like object is required"):
        await op


@trio_test
async def test_sock_send_all_holds_the_buffer_until_done(pair) -> None:
    a, _ = pair
    data = bytearray(4 * 1024 * 1024)  # more than the socket buffers hold
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_core.sock_send_all, a, data)
        await wait_all_tasks_blocked()
        with pytest.raises(BufferError):
            data.append(0)  # exported while the send is in progress
        nursery.cancel_scope.cancel()
    data.append(0)  # released once the send was cancelled


# --- sock_call ------------------------------------------------------------------------


@trio_test
async def test_sock_call_returns_the_result_after_a_checkpoint(pair) -> None:
    a, b = pair
    b.send(b"peek")
    with assert_checkpoints():
        assert await _core.sock_call(a, True, "recv", (10, stdlib_socket.MSG_PEEK)) == b"peek"
    assert a.recv(10) == b"peek"


@trio_test
async def test_sock_call_raises_the_methods_error_after_a_checkpoint(pair) -> None:
    with assert_checkpoints(), pytest.raises(TypeError):
        await _core.sock_call(pair[0], True, "recv", ("not a size",))


@trio_test
async def test_sock_call_accept_waits_for_a_connection() -> None:
    with stdlib_socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        accepted = []

        async def accept() -> None:
            accepted.append(await _core.sock_call(listener, True, "accept", ()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept)
            await wait_all_tasks_blocked()
            assert not accepted
            client = stdlib_socket.create_connection(listener.getsockname())
        conn, addr = accepted[0]
        assert addr == client.getsockname()
        conn.close()
        client.close()


@trio_test
async def test_sock_call_cancelled_while_waiting_leaves_no_waiter() -> None:
    with stdlib_socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        idle = await _idle_readers()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_core.sock_call, listener, True, "accept", ())
            await wait_all_tasks_blocked()
            assert _waiting_readers() == idle + 1
            nursery.cancel_scope.cancel()
        assert _waiting_readers() == idle


# --- stream_recv / stream_send_all / BusyGuard ----------------------------------------


def test_BusyGuard_is_a_non_blocking_mutex() -> None:
    guard = _core.BusyGuard("in use")
    with guard:
        with pytest.raises(trio.BusyResourceError, match="in use"):
            with guard:
                pass
    with guard:
        pass


@trio_test
async def test_stream_recv_turns_reset_into_BrokenResourceError() -> None:
    client, server = await _tcp_stream_pair()
    async with server:
        _reset(client.socket._sock)  # type: ignore[attr-defined]
        with pytest.raises(trio.BrokenResourceError) as info:
            while True:
                await _core.stream_recv(server.socket._sock, 10)  # type: ignore[attr-defined]
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert info.value.__context__ is info.value.__cause__
    assert "socket connection broken" in str(info.value)


@trio_test
async def test_stream_recv_turns_EBADF_into_ClosedResourceError() -> None:
    a, b = stdlib_socket.socketpair()
    b.close()
    a.close()
    with pytest.raises(trio.ClosedResourceError) as info:
        await _core.stream_recv(a, 10)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert isinstance(info.value.__context__, OSError)


@trio_test
async def test_stream_recv_passes_Cancelled_through_untouched(pair) -> None:
    with trio.move_on_after(0) as scope:
        await _core.stream_recv(pair[0], 10)
    assert scope.cancelled_caught


@trio_test
async def test_stream_send_all_is_busy_while_another_send_waits(pair) -> None:
    a, _ = pair
    guard = _core.BusyGuard("sending")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_core.stream_send_all, a, b"x" * (4 * 1024 * 1024), guard)
        await wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="sending"):
            await _core.stream_send_all(a, b"y", guard)
        nursery.cancel_scope.cancel()
    with guard:  # released by the cancelled send
        pass


@trio_test
async def test_stream_send_all_takes_the_buffer_only_when_awaited(pair) -> None:
    data = bytearray(b"abc")
    op = _core.stream_send_all(pair[0], data, _core.BusyGuard("sending"))
    data.append(ord("d"))  # not exported yet
    await op
    data.append(ord("e"))  # released again
    assert pair[1].recv(10) == b"abcd"


def _guard_is_free(guard: _core.BusyGuard) -> bool:
    try:
        with guard:
            return True
    except trio.BusyResourceError:
        return False


@trio_test
async def test_stream_send_all_takes_the_guard_only_when_awaited(pair) -> None:
    guard = _core.BusyGuard("sending")
    op = _core.stream_send_all(pair[0], b"x", guard)
    assert _guard_is_free(guard)
    await op
    assert _guard_is_free(guard)
    assert pair[1].recv(10) == b"x"


# --- SocketStream's fast path -----------------------------------------------------------


@trio_test
async def test_SocketStream_receive_some_checks_arguments_when_awaited() -> None:
    a, b = tsocket.socketpair()
    async with trio.SocketStream(a) as s, trio.SocketStream(b):
        op = s.receive_some(0)
        with pytest.raises(ValueError, match="max_bytes must be >= 1"):
            await op


@trio_test
async def test_SocketStream_send_all_after_eof_fails_when_awaited() -> None:
    a, b = tsocket.socketpair()
    async with trio.SocketStream(a) as s, trio.SocketStream(b):
        await s.send_eof()
        op = s.send_all(b"late")
        with pytest.raises(trio.ClosedResourceError, match="after sending EOF"):
            await op


@trio_test
async def test_SocketStream_send_all_can_be_spawned_directly() -> None:
    a, b = tsocket.socketpair()
    async with trio.SocketStream(a) as s, trio.SocketStream(b) as r:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.send_all, b"spawned")
        assert await r.receive_some() == b"spawned"


@trio_test
async def test_SocketStream_send_all_reset_is_BrokenResourceError_with_cause() -> None:
    client, server = await _tcp_stream_pair()
    async with client:
        _reset(server.socket._sock)  # type: ignore[attr-defined]
        with pytest.raises(trio.BrokenResourceError) as info:
            while True:
                await client.send_all(b"x" * 65536)
    assert isinstance(info.value.__cause__, OSError)


@trio_test
async def test_SocketStream_receive_some_each_call_is_one_checkpoint() -> None:
    a, b = tsocket.socketpair()
    async with trio.SocketStream(a) as s, trio.SocketStream(b) as r:
        task = trio.lowlevel.current_task()
        await s.send_all(b"ab")
        before = (task._cancel_points, task._schedule_points)  # type: ignore[attr-defined]
        assert await r.receive_some(1) == b"a"
        after = (task._cancel_points, task._schedule_points)  # type: ignore[attr-defined]
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


@trio_test
async def test_SocketStream_falls_back_for_a_swapped_in_socket_object() -> None:
    a, b = tsocket.socketpair()
    calls = []

    class Recording:
        def __init__(self, sock: stdlib_socket.socket) -> None:
            self._s = sock

        def recv(self, *args: object) -> bytes:
            calls.append("recv")
            return self._s.recv(*args)  # type: ignore[arg-type]

        def __getattr__(self, name: str) -> object:
            return getattr(self._s, name)

    async with trio.SocketStream(a) as s, trio.SocketStream(b) as r:
        await s.send_all(b"via fake")
        r.socket._sock = Recording(r.socket._sock)  # type: ignore[attr-defined]
        assert await r.receive_some() == b"via fake"
        r.socket._sock = r.socket._sock._s  # type: ignore[attr-defined]
    assert calls == ["recv"]


# --- the awaitable protocol -------------------------------------------------------------


def test_sock_op_refuses_a_non_None_first_send(pair) -> None:
    op = _core.sock_recv(pair[0], 1)
    with pytest.raises(TypeError, match="just-started"):
        op.send(1)
    op.close()


@trio_test
async def test_sock_op_cannot_be_awaited_twice(pair) -> None:
    a, b = pair
    b.send(b"x")
    op = _core.sock_recv(a, 1)
    assert await op == b"x"
    with pytest.raises(RuntimeError, match="cannot reuse already awaited"):
        await op


@trio_test
async def test_sock_recv_after_a_wait_counts_the_wait_as_its_checkpoint(pair) -> None:
    a, b = pair
    counts = []

    async def reader() -> None:
        task = trio.lowlevel.current_task()
        before = (task._cancel_points, task._schedule_points)  # type: ignore[attr-defined]
        await _core.sock_recv(a, 10)
        after = (task._cancel_points, task._schedule_points)  # type: ignore[attr-defined]
        counts.append((after[0] - before[0], after[1] - before[1]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await wait_all_tasks_blocked()
        b.send(b"x")
    # The cancel check before the syscall, then the wait (a cancel and schedule
    # point); no extra schedule point after the retry succeeds.
    assert counts == [(2, 1)]
