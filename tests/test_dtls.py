"""DTLS: the wire-format helpers, the stateless cookie, and endpoints/channels over real
UDP sockets on localhost (issue 11)."""

from __future__ import annotations

import gc
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import vivace as trio
from vivace._dtls_records import (
    BadPacket,
    CookieJar,
    Record,
    client_hello_untrusted,
    encode_record,
    hello_verify_request,
    pack_records,
    split_fragments,
    split_records,
)
from vivace.testing import trio_test

trustme = pytest.importorskip("trustme")
SSL = pytest.importorskip("OpenSSL.SSL")

CA = trustme.CA()
SERVER_CERT = CA.issue_cert("example.com")
# A hang guard only: every wait below is bounded by events the test drives.
GUARD = 30


def server_ctx() -> Any:
    ctx = SSL.Context(SSL.DTLS_METHOD)
    SERVER_CERT.configure_cert(ctx)
    return ctx


def client_ctx() -> Any:
    ctx = SSL.Context(SSL.DTLS_METHOD)
    CA.configure_trust(ctx)
    return ctx


def udp_endpoint(**kwargs: Any) -> trio.DTLSEndpoint:
    return trio.DTLSEndpoint(trio.socket.socket(type=trio.socket.SOCK_DGRAM), **kwargs)


async def echo(channel: trio.DTLSChannel) -> None:
    async for packet in channel:
        await channel.send(packet)


@asynccontextmanager
async def serving(
    handler: Callable[[trio.DTLSChannel], Awaitable[None]] = echo, **kwargs: Any
) -> AsyncIterator[trio.DTLSEndpoint]:
    with udp_endpoint(**kwargs) as server:
        await server.socket.bind(("127.0.0.1", 0))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, server_ctx(), handler)
            yield server
            nursery.cancel_scope.cancel()


def first_client_hello() -> tuple[Any, bytes]:
    """A client connection (memory BIOs) and the datagram with its first ClientHello."""
    ctx = client_ctx()
    ctx.set_options(0x00001000)  # no MTU query on a memory BIO
    conn = SSL.Connection(ctx)
    conn.set_ciphertext_mtu(1400)  # a memory BIO cannot tell OpenSSL the path MTU
    conn.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        conn.do_handshake()
    return conn, conn.bio_read(65536)


# -- wire format ----------------------------------------------------------------------


def test_records_round_trip_and_truncation_is_bad_packet() -> None:
    records = [
        Record(22, 0xFEFD, 5, b"hello"),
        Record(23, 0xFEFD, (1 << 48) | 7, b"x" * 300),
    ]
    packet = b"".join(encode_record(r) for r in records)
    assert split_records(packet) == records
    assert records[1].epoch == 1 and records[1].seq == 7
    for cut in (1, 12, 14, len(packet) - 1):
        with pytest.raises(BadPacket):
            split_records(packet[:cut])


def test_client_hello_is_parsed_and_garbage_is_rejected() -> None:
    _, packet = first_client_hello()
    hello = client_hello_untrusted(packet)
    assert hello.cookie == b""
    assert hello.record_seq == 0 and hello.message_seq == 0
    for bad in (b"", b"\x16" * 12, packet[:30], b"\x17" + packet[1:], bytes(200)):
        with pytest.raises(BadPacket):
            client_hello_untrusted(bad)


def test_hello_verify_request_echoes_the_hello_and_carries_the_cookie() -> None:
    _, packet = first_client_hello()
    hello = client_hello_untrusted(packet)
    (record,) = split_records(hello_verify_request(hello, b"C" * 40))
    assert record.content_type == 22 and record.epoch_seq == hello.record_seq
    (fragment,) = split_fragments(record.payload)
    assert fragment.msg_type == 3 and fragment.body[2] == 40
    assert fragment.body[3:] == b"C" * 40


def test_cookie_is_bound_to_address_hello_and_period() -> None:
    jar = CookieJar(period=30.0)
    address = ("127.0.0.1", 5000)
    cookie = jar.make(100.0, address, b"hello")
    assert jar.check(100.0, cookie, address, b"hello")
    assert jar.check(125.0, cookie, address, b"hello")  # the next period still accepts
    assert not jar.check(100.0, cookie, ("127.0.0.1", 5001), b"hello")
    assert not jar.check(100.0, cookie, address, b"hellO")
    assert not jar.check(155.0, cookie, address, b"hello")  # two periods on: expired
    tampered = cookie[:-1] + bytes([cookie[-1] ^ 1])
    assert not jar.check(100.0, tampered, address, b"hello")
    assert not jar.check(100.0, b"", address, b"hello")
    assert not CookieJar().check(100.0, cookie, address, b"hello")  # another secret


def test_pack_records_fragments_plaintext_to_the_mtu_and_renumbers() -> None:
    body = bytes(range(256)) * 8
    fragment = (
        bytes([11]) + len(body).to_bytes(3, "big") + (4).to_bytes(2, "big")
        + (0).to_bytes(3, "big") + len(body).to_bytes(3, "big") + body
    )  # fmt: skip
    encrypted = Record(22, 0xFEFD, (1 << 48) | 3, b"e" * 60)
    next_seq = [10]
    datagrams = pack_records([Record(22, 0xFEFD, 0, fragment), encrypted], 300, next_seq)
    assert all(len(d) <= 300 for d in datagrams)
    records = [r for d in datagrams for r in split_records(d)]
    assert records[-1] == encrypted  # encrypted records go out untouched
    plain = records[:-1]
    assert [r.seq for r in plain] == list(range(10, 10 + len(plain)))
    assert next_seq == [10 + len(plain)]
    pieces = [f for r in plain for f in split_fragments(r.payload)]
    assert b"".join(p.body for p in sorted(pieces, key=lambda p: p.offset)) == body
    assert {(p.msg_type, p.length, p.message_seq) for p in pieces} == {(11, len(body), 4)}


# -- endpoints and channels -----------------------------------------------------------


@trio_test
async def test_handshake_echo_and_mtu() -> None:
    async with serving() as server:
        with udp_endpoint() as client_endpoint:
            channel = client_endpoint.connect(server.socket.getsockname(), client_ctx())
            with pytest.raises(trio.NeedHandshakeError):
                channel.get_cleartext_mtu()
            with trio.fail_after(GUARD):
                await channel.do_handshake()
                await channel.do_handshake()  # a no-op the second time
                for payload in (b"hello", b"x" * 1000):
                    await channel.send(payload)
                    assert await channel.receive() == payload
            with pytest.raises(ValueError, match="empty DTLS packets"):
                await channel.send(b"")
            channel.set_ciphertext_mtu(1000)
            small = channel.get_cleartext_mtu()
            channel.set_ciphertext_mtu(2000)
            assert 900 < small < channel.get_cleartext_mtu() < 2000
            assert channel.statistics().incoming_packets_dropped_in_trio == 0
            assert server.packets_dropped == 0


@trio_test
async def test_endpoint_fed_10000_random_datagrams_keeps_serving_and_counts_them() -> None:
    # The issue's acceptance test. Garbage is sent in batches the endpoint is allowed to
    # drain before the next, so that the kernel's receive buffer never overflows and the
    # count is exact; a real handshake runs in the middle of the flood.
    rng = random.Random(11)

    def garbage() -> bytes:
        kind = rng.randrange(4)
        junk = rng.randbytes(rng.randrange(0, 300))
        if kind == 0:
            return junk
        if kind == 1:  # a plausible record header over junk
            return bytes([rng.choice((20, 21, 22, 23)), 0xFE, 0xFD]) + junk
        if kind == 2:  # a well-formed record of random content
            return encode_record(Record(22, 0xFEFD, rng.randrange(1 << 48), junk))
        return encode_record(Record(23, 0xFEFD, (1 << 48) | 1, junk))

    async with serving() as server:
        address = server.socket.getsockname()
        with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as flood:
            await flood.bind(("127.0.0.1", 0))

            async def send_batches(count: int) -> None:
                for _ in range(count // 100):
                    target = server.packets_dropped + 100
                    for _ in range(100):
                        await flood.sendto(garbage(), address)
                    while server.packets_dropped < target:
                        await trio.sleep(0.001)

            with trio.fail_after(120):
                await send_batches(5000)
                with udp_endpoint() as client_endpoint:
                    channel = client_endpoint.connect(address, client_ctx())
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(send_batches, 5000)
                        await channel.send(b"still serving")
                        assert await channel.receive() == b"still serving"
            assert server.packets_dropped == 10_000


@trio_test
async def test_cookie_from_another_address_is_refused() -> None:
    handled = []

    async def record(channel: trio.DTLSChannel) -> None:
        handled.append(channel.peer_address)
        await channel.do_handshake()  # sends the ServerHello; never finishes here

    async with serving(record) as server:
        address = server.socket.getsockname()
        with (
            trio.socket.socket(type=trio.socket.SOCK_DGRAM) as honest,
            trio.socket.socket(type=trio.socket.SOCK_DGRAM) as spoofer,
        ):
            await honest.bind(("127.0.0.1", 0))
            await spoofer.bind(("127.0.0.1", 0))
            conn, hello1 = first_client_hello()
            with trio.fail_after(GUARD):
                await honest.sendto(hello1, address)
                hvr, _ = await honest.recvfrom(65536)
                (fragment,) = split_fragments(split_records(hvr)[0].payload)
                assert fragment.msg_type == 3
                conn.bio_write(hvr)
                with pytest.raises(SSL.WantReadError):
                    conn.do_handshake()
                hello2 = conn.bio_read(65536)
                assert client_hello_untrusted(hello2).cookie == fragment.body[3:]

                # The cookie was issued to `honest`: from `spoofer` it earns a fresh
                # HelloVerifyRequest, and no association.
                await spoofer.sendto(hello2, address)
                again, _ = await spoofer.recvfrom(65536)
                (fragment,) = split_fragments(split_records(again)[0].payload)
                assert fragment.msg_type == 3
                assert fragment.body[3:] != client_hello_untrusted(hello2).cookie
                assert handled == []

                # From `honest` it starts the handshake: a ServerHello comes back.
                await honest.sendto(hello2, address)
                flight, _ = await honest.recvfrom(65536)
                (first, *_) = split_fragments(split_records(flight)[0].payload)
                assert first.msg_type == 2
                await trio.testing.wait_all_tasks_blocked()
                assert handled == [honest.getsockname()]


def drop_first(n: int) -> Callable[[bytes], bool]:
    left = [n]

    def rule(datagram: bytes) -> bool:
        if left[0]:
            left[0] -= 1
            return True
        return False

    return rule


def drop_first_encrypted() -> Callable[[bytes], bool]:
    # The first datagram carrying an epoch-1 record is that side's final flight
    # (ChangeCipherSpec and Finished): losing it exercises resending a finished
    # handshake's last flight, and retransmitting encrypted records untouched.
    dropped = [False]

    def rule(datagram: bytes) -> bool:
        if not dropped[0] and any(r.epoch == 1 for r in split_records(datagram)):
            dropped[0] = True
            return True
        return False

    return rule


@pytest.mark.parametrize(
    "losses",
    [
        pytest.param((drop_first, 2), id="first-two-each-way"),
        pytest.param((drop_first_encrypted,), id="final-flights"),
    ],
)
@trio_test
async def test_retransmission_recovers_lost_flights(autojump_clock: Any, losses: Any) -> None:
    # A relay between client and server drops datagrams by a rule, the same each way;
    # the handshake still completes because the sides resend their last flights.
    make_rule, *args = losses
    rules = {"to_server": make_rule(*args), "to_client": make_rule(*args)}
    async with serving() as server:
        server_address = server.socket.getsockname()
        with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as relay:
            await relay.bind(("127.0.0.1", 0))
            dropped = {"to_server": 0, "to_client": 0}

            async def run_relay() -> None:
                client_address = None
                while True:
                    data, source = await relay.recvfrom(65536)
                    if source == server_address:
                        direction, target = "to_client", client_address
                    else:
                        client_address = source
                        direction, target = "to_server", server_address
                    if rules[direction](data):
                        dropped[direction] += 1
                        continue
                    await relay.sendto(data, target)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_relay)
                with udp_endpoint() as client_endpoint:
                    channel = client_endpoint.connect(relay.getsockname(), client_ctx())
                    start = trio.current_time()
                    with trio.fail_after(GUARD):
                        await channel.do_handshake(initial_retransmit_timeout=0.5)
                        await channel.send(b"through the loss")
                        assert await channel.receive() == b"through the loss"
                    # At least one timer had to expire for anything to get through.
                    assert trio.current_time() - start >= 0.5
                nursery.cancel_scope.cancel()
            assert dropped["to_server"] >= 1 and dropped["to_client"] >= 1


@trio_test
async def test_full_incoming_buffer_drops_and_counts() -> None:
    channels: list[trio.DTLSChannel] = []
    ready = trio.Event()

    async def hold(channel: trio.DTLSChannel) -> None:
        await channel.do_handshake()
        channels.append(channel)
        ready.set()
        await trio.sleep_forever()

    async with serving(hold, incoming_packets_buffer=4) as server:
        with udp_endpoint() as client_endpoint:
            channel = client_endpoint.connect(server.socket.getsockname(), client_ctx())
            with trio.fail_after(GUARD):
                await channel.do_handshake()
                await ready.wait()
                (server_channel,) = channels
                for i in range(7):
                    await channel.send(b"%d" % i)
                while server_channel.statistics().incoming_packets_dropped_in_trio < 3:
                    await trio.sleep(0.001)
                assert [await server_channel.receive() for _ in range(4)] == [
                    b"0", b"1", b"2", b"3",
                ]  # fmt: skip
                await channel.send(b"after")
                assert await server_channel.receive() == b"after"
                assert server_channel.statistics().incoming_packets_dropped_in_trio == 3


@trio_test
async def test_closing_and_replacing_associations() -> None:
    async with serving() as server:
        address = server.socket.getsockname()
        with udp_endpoint() as client_endpoint:
            first = client_endpoint.connect(address, client_ctx())
            second = client_endpoint.connect(address, client_ctx())
            with pytest.raises(trio.BrokenResourceError):
                await first.do_handshake()
            with trio.fail_after(GUARD):
                await second.send(b"x")
                assert await second.receive() == b"x"
            second.close()
            second.close()
            await second.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await second.send(b"x")
            with pytest.raises(trio.ClosedResourceError):
                await second.receive()
            third = client_endpoint.connect(address, client_ctx())
            client_endpoint.close()
            client_endpoint.close()
            with pytest.raises(trio.ClosedResourceError):
                await third.send(b"x")
            with pytest.raises(trio.ClosedResourceError):
                client_endpoint.connect(address, client_ctx())


@trio_test
async def test_serve_rules() -> None:
    with trio.socket.socket() as stream_socket:
        with pytest.raises(ValueError, match="SOCK_DGRAM"):
            trio.DTLSEndpoint(stream_socket)

    async def unused(channel: trio.DTLSChannel) -> None:  # pragma: no cover
        pass

    with udp_endpoint() as server:
        await server.socket.bind(("127.0.0.1", 0))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, server_ctx(), unused)
            with pytest.raises(trio.BusyResourceError):
                await nursery.start(server.serve, server_ctx(), unused)
            server.close()  # serve returns by itself
        with pytest.raises(trio.ClosedResourceError):
            await server.serve(server_ctx(), unused)


@trio_test
async def test_abandoned_endpoint_warns_and_its_reader_task_ends() -> None:
    before = trio.lowlevel.current_statistics().tasks_living

    async def abandon() -> None:
        endpoint = udp_endpoint()
        with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as silent:
            await silent.bind(("127.0.0.1", 0))
            channel = endpoint.connect(silent.getsockname(), client_ctx())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(channel.do_handshake)
                await trio.testing.wait_all_tasks_blocked()
                # the handshake and the endpoint's reader, which its first send started
                assert trio.lowlevel.current_statistics().tasks_living == before + 2
                nursery.cancel_scope.cancel()

    with pytest.warns(ResourceWarning, match="unclosed DTLS"):
        await abandon()
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            gc.collect()
    await trio.testing.wait_all_tasks_blocked()
    assert trio.lowlevel.current_statistics().tasks_living == before


@trio_test
async def test_mutated_handshake_datagrams_never_crash_the_endpoint() -> None:
    # Bit flips and truncations of a real first ClientHello and of its cookie-carrying
    # retry, from the address the cookie was issued to: the record and fragment headers
    # are outside the cookie, so these reach OpenSSL too. The reader must survive all of
    # them, and a real client must still get through afterwards.
    rng = random.Random(1111)
    broken = []

    async def tolerant_echo(channel: trio.DTLSChannel) -> None:
        # An association begun by a mangled hello may fail its handshake: that breaks
        # the channel (as it should), not the endpoint.
        try:
            await echo(channel)
        except trio.BrokenResourceError:
            broken.append(channel)

    async with serving(tolerant_echo) as server:
        address = server.socket.getsockname()
        with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as sender:
            await sender.bind(("127.0.0.1", 0))
            conn, hello1 = first_client_hello()
            with trio.fail_after(GUARD):
                await sender.sendto(hello1, address)
                hvr, _ = await sender.recvfrom(65536)
                conn.bio_write(hvr)
                with pytest.raises(SSL.WantReadError):
                    conn.do_handshake()
                hello2 = conn.bio_read(65536)
                for i in range(2000):
                    data = bytearray(rng.choice((hello1, hello2)))
                    if i % 3 == 0:
                        del data[rng.randrange(len(data)) :]
                    else:
                        for _ in range(rng.randrange(1, 4)):
                            # mostly the headers (the first 25 bytes), sometimes anywhere
                            limit = 25 if rng.random() < 0.7 else len(data)
                            data[rng.randrange(limit)] ^= 1 << rng.randrange(8)
                    await sender.sendto(bytes(data), address)
                    if i % 50 == 0:
                        await trio.testing.wait_all_tasks_blocked()
                with udp_endpoint() as client_endpoint:
                    channel = client_endpoint.connect(address, client_ctx())
                    await channel.send(b"unharmed")
                    assert await channel.receive() == b"unharmed"
            assert server.packets_dropped > 0


@trio_test
async def test_cancelled_handshake_resumes_by_resending_its_flight(autojump_clock: Any) -> None:
    # Everything the client sends before the cancellation is lost; called again, the
    # handshake must resend its pending ClientHello (OpenSSL has nothing new to say).
    async with serving() as server:
        server_address = server.socket.getsockname()
        with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as relay:
            await relay.bind(("127.0.0.1", 0))
            blackhole = True

            async def run_relay() -> None:
                client_address = None
                while True:
                    data, source = await relay.recvfrom(65536)
                    if source == server_address:
                        await relay.sendto(data, client_address)
                    elif not blackhole:
                        client_address = source
                        await relay.sendto(data, server_address)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_relay)
                with udp_endpoint() as client_endpoint:
                    channel = client_endpoint.connect(relay.getsockname(), client_ctx())
                    with trio.move_on_after(0.5) as scope:
                        await channel.do_handshake(initial_retransmit_timeout=10)
                    assert scope.cancelled_caught
                    blackhole = False
                    with trio.fail_after(GUARD):
                        await channel.do_handshake(initial_retransmit_timeout=1)
                        await channel.send(b"resumed")
                        assert await channel.receive() == b"resumed"
                nursery.cancel_scope.cancel()
