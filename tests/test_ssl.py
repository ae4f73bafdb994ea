"""SSLStream, SSLListener, NeedHandshakeError and the TLS-over-TCP helpers."""

from __future__ import annotations

import ssl
from functools import partial
from typing import TYPE_CHECKING

import pytest

import vivace as trio
from vivace.testing import (
    assert_checkpoints,
    check_two_way_stream,
    lockstep_stream_pair,
    memory_stream_pair,
    trio_test,
    wait_all_tasks_blocked,
)

if TYPE_CHECKING:
    from vivace.abc import Stream

trustme = pytest.importorskip("trustme")

HOSTNAME = "vivace-test.example.org"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module", params=["tls12", "tls13"])
def contexts(
    ca: trustme.CA, request: pytest.FixtureRequest
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOSTNAME).configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    version = ssl.TLSVersion.TLSv1_2 if request.param == "tls12" else ssl.TLSVersion.TLSv1_3
    client_ctx.minimum_version = client_ctx.maximum_version = version
    return server_ctx, client_ctx


def _ssl_pair(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    *,
    lockstep: bool = False,
    https_compatible: bool = False,
) -> tuple[trio.SSLStream[Stream], trio.SSLStream[Stream]]:
    server_ctx, client_ctx = contexts
    raw_client, raw_server = lockstep_stream_pair() if lockstep else memory_stream_pair()
    client = trio.SSLStream(
        raw_client,
        client_ctx,
        server_hostname=HOSTNAME,
        https_compatible=https_compatible,
    )
    server = trio.SSLStream(
        raw_server, server_ctx, server_side=True, https_compatible=https_compatible
    )
    return client, server


async def _handshake_both(client: trio.SSLStream[Stream], server: trio.SSLStream[Stream]) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)


# -- basic traffic -------------------------------------------------------------


@trio_test
async def test_ssl_stream_roundtrip_over_memory_streams(contexts) -> None:
    client, server = _ssl_pair(contexts)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"hello tls")
        assert await server.receive_some(100) == b"hello tls"


@trio_test
async def test_ssl_stream_roundtrip_over_lockstep_streams(contexts) -> None:
    client, server = _ssl_pair(contexts, lockstep=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.send_all, b"x" * 50_000)
        received = bytearray()
        while len(received) < 50_000:
            received += await client.receive_some()
    assert received == b"x" * 50_000


@trio_test
async def test_ssl_stream_full_duplex_on_lockstep_streams(contexts) -> None:
    client, server = _ssl_pair(contexts, lockstep=True)
    payload = b"y" * 100_000

    async def send(stream: trio.SSLStream[Stream]) -> None:
        await stream.send_all(payload)

    async def receive(stream: trio.SSLStream[Stream]) -> None:
        got = bytearray()
        while len(got) < len(payload):
            got += await stream.receive_some()
        assert got == payload

    async with trio.open_nursery() as nursery:
        for stream in (client, server):
            nursery.start_soon(send, stream)
            nursery.start_soon(receive, stream)


@trio_test
async def test_ssl_stream_passes_generic_two_way_stream_checks(contexts) -> None:
    async def maker() -> tuple[trio.SSLStream[Stream], trio.SSLStream[Stream]]:
        return _ssl_pair(contexts)

    await check_two_way_stream(maker, None)


@trio_test
async def test_receive_some_rejects_nonpositive_max_bytes(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)
    with pytest.raises(ValueError, match="max_bytes"):
        await client.receive_some(0)


@trio_test
async def test_send_all_of_empty_data_is_a_checkpoint(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)
    with assert_checkpoints():
        await client.send_all(b"")


# -- handshake ------------------------------------------------------------------


@trio_test
async def test_do_handshake_twice_is_a_checkpoint_the_second_time(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)
    with assert_checkpoints():
        await client.do_handshake()


@trio_test
async def test_concurrent_do_handshake_calls_share_one_handshake(contexts) -> None:
    client, server = _ssl_pair(contexts)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)
    assert client.version() is not None


@trio_test
async def test_handshake_attributes_need_a_completed_handshake(contexts) -> None:
    client, _server = _ssl_pair(contexts)
    for name in ("getpeercert", "cipher", "version", "selected_alpn_protocol"):
        with pytest.raises(trio.NeedHandshakeError):
            getattr(client, name)


@trio_test
async def test_getpeercert_after_handshake_reports_server_name(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)
    cert = client.getpeercert()
    assert ("DNS", HOSTNAME) in cert["subjectAltName"]


@trio_test
async def test_forwarded_attributes_read_from_the_ssl_object(contexts) -> None:
    client, server = _ssl_pair(contexts)
    assert client.server_side is False
    assert server.server_side is True
    assert client.server_hostname == HOSTNAME
    assert client.context is contexts[1]
    assert client._ssl_object.server_hostname == HOSTNAME


@trio_test
async def test_unknown_attribute_raises_attribute_error(contexts) -> None:
    client, _server = _ssl_pair(contexts)
    with pytest.raises(AttributeError):
        client.no_such_attribute  # noqa: B018


@trio_test
async def test_wrong_hostname_breaks_the_stream_with_cause(contexts) -> None:
    server_ctx, client_ctx = contexts
    raw_client, raw_server = memory_stream_pair()
    client = trio.SSLStream(raw_client, client_ctx, server_hostname="wrong.example")
    server = trio.SSLStream(raw_server, server_ctx, server_side=True)

    async def server_side() -> None:
        with pytest.raises(trio.BrokenResourceError):
            await server.do_handshake()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server_side)
        with pytest.raises(trio.BrokenResourceError) as excinfo:
            await client.do_handshake()
        assert isinstance(excinfo.value.__cause__, ssl.SSLError)
        await client.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")


@trio_test
async def test_broken_stream_stays_broken(contexts) -> None:
    _server_ctx, client_ctx = contexts
    raw_client, raw_server = memory_stream_pair()
    client = trio.SSLStream(raw_client, client_ctx, server_hostname=HOSTNAME)
    await raw_server.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await client.do_handshake()
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"x")


@trio_test
async def test_server_hostname_is_encoded_with_idna_2008(contexts) -> None:
    _server_ctx, client_ctx = contexts
    raw_client, _raw_server = memory_stream_pair()
    # IDNA 2003 would map the sharp s to "ss"; IDNA 2008 keeps it.
    client = trio.SSLStream(raw_client, client_ctx, server_hostname="straße.de")
    assert client.server_hostname == "xn--strae-oqa.de"


# -- concurrency ----------------------------------------------------------------


@trio_test
async def test_concurrent_send_all_raises_busy(contexts) -> None:
    client, _server = _ssl_pair(contexts, lockstep=True)

    async def send() -> None:
        await client.send_all(b"x")

    with pytest.raises(ExceptionGroup) as excinfo:  # noqa: PT012
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await wait_all_tasks_blocked()
            await client.send_all(b"y")
    assert excinfo.group_contains(trio.BusyResourceError, match="another task")


@trio_test
async def test_concurrent_receive_some_raises_busy(contexts) -> None:
    client, _server = _ssl_pair(contexts)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.receive_some)
        await wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="receiving"):
            await client.receive_some()
        nursery.cancel_scope.cancel()


# -- shutdown -------------------------------------------------------------------


@trio_test
async def test_aclose_sends_close_notify_and_peer_sees_eof(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)
    await client.aclose()
    assert await server.receive_some() == b""


@trio_test
async def test_use_after_aclose_raises_closed(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)
    await client.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await client.receive_some()
    with pytest.raises(trio.ClosedResourceError):
        await client.do_handshake()


@trio_test
async def test_aclose_twice_is_fine(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)
    await client.aclose()
    with assert_checkpoints():
        await client.aclose()


@trio_test
async def test_aclose_with_dead_transport_still_closes(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)
    await server.transport_stream.aclose()
    await client.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")


@trio_test
async def test_ragged_eof_is_an_error_by_default(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)
    await server.transport_stream.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await client.receive_some()


@trio_test
async def test_ragged_eof_is_plain_eof_when_https_compatible(contexts) -> None:
    client, server = _ssl_pair(contexts, https_compatible=True)
    await _handshake_both(client, server)
    await server.aclose()  # https mode: no close_notify
    assert await client.receive_some() == b""


@trio_test
async def test_unwrap_returns_transport_and_trailing_bytes(contexts) -> None:
    client, server = _ssl_pair(contexts)
    await _handshake_both(client, server)

    async def server_unwrap() -> None:
        transport, trailing = await server.unwrap()
        await transport.send_all(trailing + b"plaintext after tls")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server_unwrap)
        raw, trailing = await client.unwrap()
    assert trailing == b""
    assert await raw.receive_some() == b"plaintext after tls"
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")


# -- listener and TCP helpers ---------------------------------------------------


@trio_test
async def test_ssl_listener_accept_returns_server_side_stream(contexts) -> None:
    server_ctx, client_ctx = contexts
    (tcp_listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener = trio.SSLListener(tcp_listener, server_ctx, https_compatible=True)
    port = tcp_listener.socket.getsockname()[1]
    async with listener:
        client = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=client_ctx)
        client._ssl_object  # noqa: B018
        server = await listener.accept()
        assert server.server_side is True
        assert server._https_compatible is True
        # Neither side handshook: close without attempting close_notify.
        await trio.aclose_forcefully(client)
        await server.aclose()


@trio_test
async def test_serve_ssl_over_tcp_echoes(contexts) -> None:
    server_ctx, client_ctx = contexts

    async def echo(stream: trio.SSLStream[trio.SocketStream]) -> None:
        async with stream:
            await stream.send_all(await stream.receive_some())

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_ssl_over_tcp, echo, 0, server_ctx, host="127.0.0.1")
        )
        port = listeners[0].transport_listener.socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        stream = trio.SSLStream(client, client_ctx, server_hostname=HOSTNAME)
        async with stream:
            await stream.send_all(b"ping")
            assert await stream.receive_some() == b"ping"
        nursery.cancel_scope.cancel()


@trio_test
async def test_open_ssl_over_tcp_listeners_wraps_every_listener(contexts) -> None:
    server_ctx, _client_ctx = contexts
    listeners = await trio.open_ssl_over_tcp_listeners(0, server_ctx, host="127.0.0.1")
    assert all(isinstance(lst, trio.SSLListener) for lst in listeners)
    for lst in listeners:
        await lst.aclose()


def test_public_classes_are_final() -> None:
    with pytest.raises(TypeError):

        class Sub(trio.SSLStream):  # type: ignore[misc]
            pass
