"""vivace.socket: the namespace, socket objects, resolution and checkpoint semantics."""

from __future__ import annotations

import errno
import os
import socket as stdlib_socket

import pytest

import vivace as trio
from vivace import socket as tsocket
from vivace.testing import assert_checkpoints, trio_test, wait_all_tasks_blocked


def _open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- namespace ---


def test_reexports_every_stdlib_constant() -> None:
    missing = [
        name for name in stdlib_socket.__all__ if name.isupper() and not hasattr(tsocket, name)
    ]
    assert missing == []


def test_reexports_helper_functions() -> None:
    for name in ("gaierror", "herror", "gethostname", "inet_pton", "inet_ntop", "htons"):
        assert getattr(tsocket, name) is getattr(stdlib_socket, name)


def test_public_names_have_public_module() -> None:
    assert tsocket.SocketType.__module__ == "vivace.socket"
    assert trio.SocketStream.__module__ == "vivace"
    assert trio.SocketListener.__module__ == "vivace"


def test_SocketType_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        tsocket.SocketType()


def test_SocketType_can_be_subclassed_by_factories() -> None:
    class Custom(tsocket.SocketType):
        pass

    assert isinstance(Custom(), tsocket.SocketType)


def test_encode_hostname_passes_ascii_and_encodes_unicode() -> None:
    assert trio.lowlevel.encode_hostname("example.com") == b"example.com"
    assert trio.lowlevel.encode_hostname("::1") == b"::1"
    assert trio.lowlevel.encode_hostname("föö") == b"xn--f-1gaa"


# --- constructors ---


@trio_test
async def test_socket_defaults_to_tcp_ipv4() -> None:
    with tsocket.socket() as sock:
        assert sock.family == tsocket.AF_INET
        assert sock.type == tsocket.SOCK_STREAM
        assert sock._sock.getblocking() is False  # type: ignore[attr-defined]


@trio_test
async def test_from_stdlib_socket_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        tsocket.from_stdlib_socket(object())  # type: ignore[arg-type]


@trio_test
async def test_fromfd_sniffs_the_real_family_and_type() -> None:
    with stdlib_socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM) as raw:
        with tsocket.fromfd(raw.fileno(), tsocket.AF_INET6, tsocket.SOCK_STREAM) as sock:
            assert sock.family == tsocket.AF_INET
            assert sock.type == tsocket.SOCK_DGRAM
            assert sock.fileno() != raw.fileno()


@trio_test
async def test_close_sets_fileno_to_minus_one_and_is_idempotent() -> None:
    sock = tsocket.socket()
    sock.close()
    sock.close()
    assert sock.fileno() == -1


@trio_test
async def test_custom_socket_factory_is_used_without_fileno() -> None:
    class Factory:
        def socket(self, family: int, type: int, proto: int) -> object:
            return ("made", family, type, proto)

    factory = Factory()
    assert tsocket.set_custom_socket_factory(factory) is None  # type: ignore[arg-type]
    assert tsocket.socket() == ("made", tsocket.AF_INET, tsocket.SOCK_STREAM, 0)
    assert tsocket.set_custom_socket_factory(None) is factory


# --- send/recv semantics ---


@trio_test
async def test_recv_after_cancel_received_nothing() -> None:
    a, b = tsocket.socketpair()
    with a, b:
        await b.send(b"x")
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await a.recv(10)
        assert await a.recv(10) == b"x"


@trio_test
async def test_immediate_recv_is_a_checkpoint() -> None:
    a, b = tsocket.socketpair()
    with a, b:
        await b.send(b"x")
        with assert_checkpoints():
            assert await a.recv(1) == b"x"


@trio_test
async def test_immediate_failure_is_a_checkpoint() -> None:
    a, b = tsocket.socketpair()
    with a, b:
        with assert_checkpoints():
            with pytest.raises(TypeError):
                await a.recv("nope")  # type: ignore[arg-type]


@trio_test
async def test_blocked_recv_wakes_when_data_arrives() -> None:
    a, b = tsocket.socketpair()
    got: list[bytes] = []
    with a, b:
        async with trio.open_nursery() as nursery:

            async def reader() -> None:
                got.append(await a.recv(10))

            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            await b.send(b"late")
    assert got == [b"late"]


@trio_test
async def test_close_wakes_blocked_recv_with_ClosedResourceError() -> None:
    a, b = tsocket.socketpair()
    with a, b:
        async with trio.open_nursery() as nursery:

            async def reader() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await a.recv(1)

            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            a.close()


@trio_test
async def test_is_readable_tracks_pending_data() -> None:
    a, b = tsocket.socketpair()
    with a, b:
        assert not a.is_readable()
        await b.send(b"x")
        await trio.lowlevel.wait_readable(a)
        assert a.is_readable()


@trio_test
async def test_shutdown_SHUT_WR_is_recorded() -> None:
    a, b = tsocket.socketpair()
    with a, b:
        assert not a.did_shutdown_SHUT_WR
        a.shutdown(tsocket.SHUT_WR)
        assert a.did_shutdown_SHUT_WR
        assert await b.recv(1) == b""


@trio_test
async def test_udp_sendto_recvfrom_roundtrip() -> None:
    with tsocket.socket(type=tsocket.SOCK_DGRAM) as a, tsocket.socket(type=tsocket.SOCK_DGRAM) as b:
        await a.bind(("127.0.0.1", 0))
        await b.sendto(b"ping", a.getsockname())
        data, addr = await a.recvfrom(10)
        assert data == b"ping"
        assert addr[1] == b.getsockname()[1]


# --- connect and resolution ---


@trio_test
async def test_connect_resolves_localhost() -> None:
    with tsocket.socket() as listener:
        await listener.bind(("localhost", 0))
        listener.listen()
        with tsocket.socket() as client:
            await client.connect(("localhost", listener.getsockname()[1]))
            assert client.getpeername() == listener.getsockname()


@trio_test
async def test_connect_refused_error_names_the_address() -> None:
    with tsocket.socket() as listener:
        await listener.bind(("127.0.0.1", 0))
        addr = listener.getsockname()
    with tsocket.socket() as client:
        with pytest.raises(OSError, match=r"Error connecting to \('127\.0\.0\.1', \d+\)") as exc:
            await client.connect(addr)
        assert exc.value.errno == errno.ECONNREFUSED


@trio_test
async def test_connect_rejects_non_tuple_address() -> None:
    with tsocket.socket() as sock:
        with pytest.raises(ValueError, match="address should be a"):
            await sock.connect("localhost")


@trio_test
async def test_cancelled_connect_closes_the_socket() -> None:
    with tsocket.socket() as sock:
        with trio.CancelScope() as scope:
            scope.cancel()
            await sock.connect(("127.0.0.1", 80))
        assert sock.fileno() == -1


@trio_test
async def test_numeric_getaddrinfo_is_a_checkpoint_without_threads() -> None:
    with assert_checkpoints():
        res = await tsocket.getaddrinfo("127.0.0.1", 80, type=tsocket.SOCK_STREAM)
    assert res[0][-1] == ("127.0.0.1", 80)
    assert trio.testing.active_thread_count() == 0


@trio_test
async def test_numeric_getaddrinfo_error_is_raised_at_once() -> None:
    with pytest.raises(tsocket.gaierror):
        await tsocket.getaddrinfo("::1", "80", type=-1)


@trio_test
async def test_custom_resolver_gets_idna_encoded_host() -> None:
    calls: list[tuple[object, ...]] = []

    class Resolver:
        async def getaddrinfo(self, *args: object) -> list[object]:
            calls.append(args)
            return []

        async def getnameinfo(self, *args: object) -> tuple[str, str]:
            return ("h", "p")

    tsocket.set_custom_hostname_resolver(Resolver())  # type: ignore[arg-type]
    await tsocket.getaddrinfo("föö", 80)
    assert calls == [(b"xn--f-1gaa", 80, 0, 0, 0, 0)]
    assert await tsocket.getnameinfo(("127.0.0.1", 80), 0) == ("h", "p")


@trio_test
async def test_unix_socket_bind_connect_accept(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(str(tmp_path), "sock")
    with tsocket.socket(tsocket.AF_UNIX) as listener:
        await listener.bind(path)
        listener.listen()
        with tsocket.socket(tsocket.AF_UNIX) as client:
            await client.connect(path)
            server, _ = await listener.accept()
            with server:
                await client.send(b"u")
                assert await server.recv(1) == b"u"


@trio_test
async def test_many_connect_cancel_close_cycles_leak_no_fds() -> None:
    with tsocket.socket() as listener:
        await listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        addr = listener.getsockname()
        before = _open_fd_count()
        for i in range(1000):
            with tsocket.socket() as client:
                if i % 2:
                    with trio.CancelScope() as scope:
                        scope.cancel()
                        await client.connect(addr)
                else:
                    await client.connect(addr)
                    server, _ = await listener.accept()
                    server.close()
        assert _open_fd_count() == before
