"""SocketStream, SocketListener, open_tcp_stream/listeners, serve_listeners."""

from __future__ import annotations

import errno
import os
import resource
import socket as stdlib_socket
import struct

import pytest

import vivace as trio
from vivace import socket as tsocket
from vivace.testing import (
    assert_checkpoints,
    check_half_closeable_stream,
    open_stream_to_socket_listener,
    trio_test,
    wait_all_tasks_blocked,
)


async def _tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        client = await open_stream_to_socket_listener(listener)
        server = await listener.accept()
    return client, server


@trio_test
async def test_SocketStream_turns_on_TCP_NODELAY() -> None:
    client, server = await _tcp_pair()
    async with client, server:
        assert client.getsockopt(tsocket.IPPROTO_TCP, tsocket.TCP_NODELAY)


@trio_test
async def test_SocketStream_rejects_non_stream_sockets() -> None:
    with tsocket.socket(type=tsocket.SOCK_DGRAM) as sock:
        with pytest.raises(ValueError, match="SOCK_STREAM"):
            trio.SocketStream(sock)
    with stdlib_socket.socket() as raw, pytest.raises(TypeError):
        trio.SocketStream(raw)  # type: ignore[arg-type]


@trio_test
async def test_SocketStream_send_receive_roundtrip() -> None:
    client, server = await _tcp_pair()
    async with client, server:
        await client.send_all(b"x" * 100_000)
        got = bytearray()
        while len(got) < 100_000:
            got += await server.receive_some()
        assert got == b"x" * 100_000


@trio_test
async def test_SocketStream_receive_some_rejects_zero() -> None:
    client, server = await _tcp_pair()
    async with client, server:
        with pytest.raises(ValueError):
            await server.receive_some(0)


@trio_test
async def test_SocketStream_concurrent_send_all_is_busy() -> None:
    client, server = await _tcp_pair()
    async with client, server:

        async def fill() -> None:
            await client.send_all(b"x" * 50_000_000)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fill)
            await wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await client.send_all(b"y")
            nursery.cancel_scope.cancel()


@trio_test
async def test_SocketStream_send_after_eof_is_closed_error() -> None:
    client, server = await _tcp_pair()
    async with client, server:
        await client.send_eof()
        assert await server.receive_some() == b""
        with pytest.raises(trio.ClosedResourceError):
            await client.send_all(b"x")


@trio_test
async def test_SocketStream_use_after_close_is_closed_error() -> None:
    client, server = await _tcp_pair()
    await client.aclose()
    await server.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await client.receive_some()


@trio_test
async def test_SocketStream_peer_reset_mid_send_is_broken() -> None:
    client, server = await _tcp_pair()
    async with client:
        # SO_LINGER 0: close() sends RST instead of FIN.
        server.setsockopt(tsocket.SOL_SOCKET, tsocket.SO_LINGER, struct.pack("ii", 1, 0))
        async with trio.open_nursery() as nursery:

            async def send_forever() -> None:
                with pytest.raises(trio.BrokenResourceError) as excinfo:
                    while True:
                        await client.send_all(b"x" * 1_000_000)
                assert isinstance(excinfo.value.__cause__, OSError)

            nursery.start_soon(send_forever)
            await wait_all_tasks_blocked()
            await server.aclose()


@trio_test
async def test_SocketStream_passes_generic_stream_checks() -> None:
    async def make() -> tuple[trio.SocketStream, trio.SocketStream]:
        return await _tcp_pair()

    async def make_clogged() -> tuple[trio.SocketStream, trio.SocketStream]:
        client, server = await _tcp_pair()
        for stream in (client, server):
            stream.setsockopt(tsocket.SOL_SOCKET, tsocket.SO_SNDBUF, 1)
            stream.setsockopt(tsocket.SOL_SOCKET, tsocket.SO_RCVBUF, 1)
        for stream in (client, server):
            raw = stream.socket._sock  # type: ignore[attr-defined]
            while True:
                try:
                    raw.send(b"x" * 10000)
                except BlockingIOError:
                    break
        return client, server

    await check_half_closeable_stream(make, make_clogged)


@trio_test
async def test_SocketListener_requires_listening_socket() -> None:
    with tsocket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="listening"):
            trio.SocketListener(sock)


@trio_test
async def test_SocketListener_accept_on_closed_socket() -> None:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener.socket.close()
    with assert_checkpoints():
        with pytest.raises(trio.ClosedResourceError):
            await listener.accept()


@trio_test
async def test_open_tcp_listeners_wildcard_host_gives_listeners() -> None:
    listeners = await trio.open_tcp_listeners(0)
    try:
        assert listeners
        for listener in listeners:
            assert listener.socket.getsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR)
    finally:
        for listener in listeners:
            await listener.aclose()


@trio_test
async def test_open_tcp_listeners_rejects_non_int_port() -> None:
    with pytest.raises(TypeError):
        await trio.open_tcp_listeners("80")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backlog must be an int or None"):
        await trio.open_tcp_listeners(0, backlog=1.5)  # type: ignore[arg-type]


@trio_test
async def test_open_tcp_stream_all_refused_raises_with_group_cause() -> None:
    # A port that is bound but not listening refuses connections; holding it bound
    # keeps any other process from starting to listen there meanwhile.
    with stdlib_socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(OSError, match="all attempts to connect to 127.0.0.1") as excinfo:
            await trio.open_tcp_stream("127.0.0.1", port)
    assert isinstance(excinfo.value.__cause__, ExceptionGroup)


@trio_test
async def test_open_tcp_stream_validates_arguments() -> None:
    with pytest.raises(ValueError, match="host must be str or bytes"):
        await trio.open_tcp_stream(None, 80)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await trio.open_tcp_stream("127.0.0.1", "80")  # type: ignore[arg-type]


@trio_test
async def test_open_tcp_stream_local_address() -> None:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        port = listener.socket.getsockname()[1]
        async with await trio.open_tcp_stream(
            "127.0.0.1", port, local_address="127.0.0.1"
        ) as stream:
            assert stream.socket.getsockname()[0] == "127.0.0.1"


@trio_test
async def test_serve_tcp_serves_and_reports_listeners() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await stream.send_all(b"hello")

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, handler, 0)
        async with await open_stream_to_socket_listener(listeners[0]) as stream:
            assert await stream.receive_some(5) == b"hello"
        nursery.cancel_scope.cancel()


@trio_test
async def test_open_unix_socket_connects(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(str(tmp_path), "s")
    with tsocket.socket(tsocket.AF_UNIX) as sock:
        await sock.bind(path)
        sock.listen()
        async with await trio.open_unix_socket(path) as stream:
            server, _ = await sock.accept()
            with server:
                await stream.send_all(b"u")
                assert await server.recv(1) == b"u"


@trio_test
async def test_serve_listeners_backs_off_on_EMFILE_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    addr = listener.socket.getsockname()
    served = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        served.set()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, [listener])
        client = stdlib_socket.socket()
        client.connect(addr)  # queued in the backlog; accept() needs a new fd
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (_open_fds_high_water() + 1, hard))
            try:
                while True:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
            # The queued connection makes accept fail at once; the server then sleeps
            # in its back-off, so once every task is blocked it has tried and failed.
            await wait_all_tasks_blocked()
            assert not served.is_set()
            assert "accept returned EMFILE" in caplog.text
        finally:
            for fd in fillers:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with trio.fail_after(30):  # a hang guard: the back-off is 0.1 s
            await served.wait()
        client.close()
        nursery.cancel_scope.cancel()


def _open_fds_high_water() -> int:
    return max(int(name) for name in os.listdir("/proc/self/fd"))


@trio_test
async def test_FdStream_pipe_roundtrip_and_close_restores_fd_state() -> None:
    r, w = os.pipe()
    async with trio.lowlevel.FdStream(w) as send, trio.lowlevel.FdStream(r) as receive:
        await send.send_all(b"pipe")
        assert await receive.receive_some(10) == b"pipe"
    assert send.fileno() == -1
    with pytest.raises(OSError):
        os.close(w)
