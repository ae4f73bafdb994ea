"""DTLS over one UDP socket: ``DTLSEndpoint``, ``DTLSChannel``, ``DTLSChannelStatistics``.

One endpoint owns one datagram socket and a system task that reads it. Each datagram
goes to the channel registered for its source address; a ClientHello goes to the
listening side first, which checks its cookie (``_dtls_records.CookieJar``) before any
state is created. Anything that does not parse, or that no channel wants, is counted in
``DTLSEndpoint.packets_dropped`` and dropped: the reader task never raises on input.

OpenSSL (through pyOpenSSL) runs the protocol over memory BIOs; this module moves its
output to the socket. During the handshake it resends the last flight itself when no
answer comes (doubling the wait each time, and dropping to the worst-case path MTU
after two silent rounds), renumbering the plaintext records so a resent flight is never
taken for a replay.
"""

from __future__ import annotations

import errno
import socket as _stdlib_socket
import warnings
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._abc import Channel
from ._channel import open_memory_channel
from ._core import (
    TASK_STATUS_IGNORED,
    BrokenResourceError,
    BusyResourceError,
    ClosedResourceError,
    EndOfChannel,
    NoPublicConstructor,
    WouldBlock,
    checkpoint,
    current_time,
    final,
    open_nursery,
    spawn_system_task,
)
from ._dtls_records import (
    BadPacket,
    CookieJar,
    Record,
    client_hello_untrusted,
    encode_record,
    hello_verify_request,
    looks_like_handshake,
    pack_records,
    split_records,
)
from ._ssl import NeedHandshakeError
from ._sync import Lock
from ._timeouts import move_on_at

if TYPE_CHECKING:
    from typing import Self

    from OpenSSL import SSL

    from ._core import TaskStatus
    from ._socket import SocketType

__all__ = ["DTLSChannel", "DTLSChannelStatistics", "DTLSEndpoint"]

_MAX_DATAGRAM = 65527
_MAX_RETRANSMIT_TIMEOUT = 60.0
# OpenSSL option bits pyOpenSSL may not name: without NO_QUERY_MTU OpenSSL asks the
# memory BIO for a path MTU it cannot know; renegotiation over DTLS is not supported.
_OP_NO_QUERY_MTU = 0x00001000
_OP_NO_RENEGOTIATION = 0x40000000
_OP_COOKIE_EXCHANGE = 0x00002000


def _ip_overhead(sock: SocketType) -> int:
    return 28 if sock.family == _stdlib_socket.AF_INET else 48


def _best_guess_mtu(sock: SocketType) -> int:
    return 1500 - _ip_overhead(sock)


def _worst_case_mtu(sock: SocketType) -> int:
    link = 576 if sock.family == _stdlib_socket.AF_INET else 1280
    return link - _ip_overhead(sock)


def _prepare_context(ctx: SSL.Context) -> None:
    ctx.set_options(_OP_NO_QUERY_MTU | _OP_NO_RENEGOTIATION)


@dataclass(frozen=True)
class DTLSChannelStatistics:
    """``incoming_packets_dropped_in_trio``: datagrams from this peer that arrived but
    were dropped because the channel's incoming buffer was full."""

    incoming_packets_dropped_in_trio: int


@final
class DTLSChannel(Channel[bytes], metaclass=NoPublicConstructor):
    """One DTLS association with ``peer_address`` over ``endpoint``'s socket.

    Made by ``DTLSEndpoint.connect`` or handed to ``DTLSEndpoint.serve``'s handler.
    """

    def __init__(
        self, endpoint: DTLSEndpoint, peer_address: Any, ctx: SSL.Context, *, first_seq: int = 0
    ) -> None:
        from OpenSSL import SSL

        self.endpoint = endpoint
        self.peer_address = peer_address
        self._ssl = SSL.Connection(ctx)
        self._handshake_mtu = _best_guess_mtu(endpoint.socket)
        self._ssl.set_ciphertext_mtu(self._handshake_mtu)
        self._incoming_send, self._incoming = open_memory_channel[bytes](
            endpoint.incoming_packets_buffer
        )
        self._packets_dropped = 0
        self._closed = False
        self._replaced = False
        self._did_handshake = False
        self._handshake_lock = Lock()
        # Next record number for the plaintext records we lay out ourselves (a list so
        # pack_records can advance it in place).
        self._next_seq = [first_seq]
        # The flight to resend on a timeout; kept on the channel so a handshake that was
        # cancelled and is called again still has it.
        self._last_flight: list[Record] = []
        self._final_flight: list[Record] = []
        self._hello_id: tuple[bytes, bytes] | None = None

    # -- state ------------------------------------------------------------------------

    def _set_replaced(self) -> None:
        self._replaced = True
        self._incoming_send.close()

    def _check_usable(self) -> None:
        if self._closed or self.endpoint._closed:
            raise ClosedResourceError("this DTLS channel is closed")
        if self._replaced:
            raise BrokenResourceError(
                "the peer started a new DTLS association from the same address"
            )

    def _deliver(self, packet: bytes) -> None:
        try:
            self._incoming_send.send_nowait(packet)
        except WouldBlock:
            self._packets_dropped += 1
        except (ClosedResourceError, BrokenResourceError):
            pass

    async def _next_packet(self) -> bytes:
        if self._closed or self.endpoint._closed:
            raise ClosedResourceError("this DTLS channel is closed")
        # A replaced channel still hands out what it had buffered, then reports broken.
        try:
            return await self._incoming.receive()
        except (EndOfChannel, ClosedResourceError):
            self._check_usable()
            raise ClosedResourceError("this DTLS channel is closed") from None

    def close(self) -> None:
        """Close the channel; its peer is not told (no close_notify is sent)."""
        if self._closed:
            return
        self._closed = True
        # A newer channel may already own this address (the peer reconnected).
        by_address = self.endpoint._streams
        if by_address.get(self.peer_address) is self:
            by_address.pop(self.peer_address)
        self._incoming_send.close()
        self._incoming.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def aclose(self) -> None:
        self.close()
        await checkpoint()

    # -- I/O helpers ------------------------------------------------------------------

    def _drain_records(self) -> list[Record]:
        from OpenSSL import SSL

        out = b""
        while True:
            try:
                out += self._ssl.bio_read(_MAX_DATAGRAM)
            except SSL.WantReadError:
                break
        try:
            return split_records(out)
        except BadPacket:  # pragma: no cover - OpenSSL's own output
            raise BrokenResourceError("OpenSSL produced an unparseable record") from None

    async def _send_flight(self, flight: list[Record]) -> None:
        for datagram in pack_records(flight, self._handshake_mtu, self._next_seq):
            await self.endpoint._send_to(datagram, self.peer_address)

    async def _flush(self) -> None:
        # Encrypted traffic and alerts: one datagram each, as OpenSSL laid them out.
        for record in self._drain_records():
            await self.endpoint._send_to(encode_record(record), self.peer_address)

    def _feed(self, packet: bytes) -> bool:
        from OpenSSL import SSL

        try:
            # (writing nothing reports "want read"; empty datagrams are not data)
            return packet != b"" and self._ssl.bio_write(packet) == len(packet)
        except SSL.Error:
            return False

    def _handshake_step(self) -> bool:
        from OpenSSL import SSL

        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return False
        except SSL.Error as exc:
            raise BrokenResourceError(f"DTLS handshake failed: {exc}") from exc
        return True

    # -- handshake --------------------------------------------------------------------

    async def do_handshake(self, *, initial_retransmit_timeout: float = 1.0) -> None:
        """Run the handshake, resending our last flight when the peer stays silent.

        Implicit in the first ``send``/``receive``; concurrent and repeated calls wait
        for (or return after) the one handshake.
        """
        async with self._handshake_lock:
            self._check_usable()
            if self._did_handshake:
                return
            timeout = initial_retransmit_timeout
            silent_rounds = 0
            done = self._handshake_step()
            flight = self._drain_records()
            deadline = current_time() + timeout
            while True:
                if flight:
                    self._last_flight = flight
                    await self._send_flight(flight)
                    deadline = current_time() + timeout
                if done:
                    self._did_handshake = True
                    self._final_flight = self._last_flight
                    return
                packet = None
                with move_on_at(deadline):
                    packet = await self._next_packet()
                if packet is None:
                    silent_rounds += 1
                    timeout = min(timeout * 2, _MAX_RETRANSMIT_TIMEOUT)
                    if silent_rounds >= 2:
                        # Perhaps our datagrams are too big for the path. We re-fragment
                        # the plaintext flight ourselves, so OpenSSL's MTU (what
                        # get_cleartext_mtu reports, the user's setting) stays as it is.
                        worst = _worst_case_mtu(self.endpoint.socket)
                        self._handshake_mtu = min(self._handshake_mtu, worst)
                    deadline = current_time() + timeout
                    await self._send_flight(self._last_flight)
                    continue
                if not self._feed(packet):
                    continue
                done = self._handshake_step()
                new_flight = self._drain_records()
                if new_flight:
                    silent_rounds = 0
                    timeout = initial_retransmit_timeout
                flight = new_flight

    # -- data -------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """Encrypt ``data`` and send it as one datagram (handshaking first if needed)."""
        from OpenSSL import SSL

        self._check_usable()
        if not data:
            raise ValueError("openssl doesn't support sending empty DTLS packets")
        if not self._did_handshake:
            await self.do_handshake()
        self._check_usable()
        try:
            self._ssl.write(data)
        except SSL.Error as exc:
            raise BrokenResourceError(f"DTLS send failed: {exc}") from exc
        await self._flush()

    async def receive(self) -> bytes:
        """The next datagram from the peer, decrypted (handshaking first if needed)."""
        from OpenSSL import SSL

        if not self._did_handshake:
            await self.do_handshake()
        while True:
            packet = await self._next_packet()
            if not self._feed(packet):
                continue
            try:
                data = self._ssl.read(_MAX_DATAGRAM)
            except (SSL.WantReadError, SSL.ZeroReturnError):
                await self._flush()
                continue
            except SSL.Error:
                # Undecryptable datagrams are dropped, as DTLS prescribes.
                self._drain_records()
                continue
            await self._flush()
            return data

    # -- MTU and statistics ----------------------------------------------------------

    def set_ciphertext_mtu(self, new_mtu: int) -> None:
        """Largest UDP payload to this peer: handshake flights are fragmented to fit, and
        ``get_cleartext_mtu`` is derived from it."""
        self._handshake_mtu = new_mtu
        self._ssl.set_ciphertext_mtu(new_mtu)

    def get_cleartext_mtu(self) -> int:
        """Largest ``send`` payload that fits one datagram of the ciphertext MTU."""
        if not self._did_handshake:
            raise NeedHandshakeError("the cleartext MTU is known only after the handshake")
        return self._ssl.get_cleartext_mtu()

    def statistics(self) -> DTLSChannelStatistics:
        return DTLSChannelStatistics(self._packets_dropped)


async def _read_datagrams(endpoint_ref: weakref.ref[DTLSEndpoint], sock: SocketType) -> None:
    # Holds the endpoint only while handling a packet, so an abandoned endpoint can be
    # collected (its __del__ closes the socket, which ends this loop).
    while True:
        try:
            packet, address = await sock.recvfrom(_MAX_DATAGRAM)
        except ClosedResourceError:
            return
        except OSError as exc:
            if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                return
            # ICMP errors surface here (e.g. ECONNREFUSED after a send to a closed port).
            continue
        endpoint = endpoint_ref()
        if endpoint is None or endpoint._closed:
            return
        try:
            await endpoint._dispatch(packet, address)
        except ClosedResourceError:
            return
        del endpoint


@final
class DTLSEndpoint:
    """A UDP socket carrying any number of DTLS associations, as client or server.

    ``socket`` must be ``SOCK_DGRAM``; ``incoming_packets_buffer`` is the size of each
    channel's queue of received datagrams. ``packets_dropped`` counts datagrams dropped
    because they were malformed, unsolicited or carried a bad cookie (a vivace extra).
    """

    def __init__(self, socket: SocketType, *, incoming_packets_buffer: int = 10) -> None:
        self._closed = True  # until fully built, so __del__ has nothing to do
        if socket.type != _stdlib_socket.SOCK_DGRAM:
            raise ValueError("DTLS requires a SOCK_DGRAM socket")
        self.socket = socket
        self.incoming_packets_buffer = incoming_packets_buffer
        self.packets_dropped: int = 0
        self._streams: weakref.WeakValueDictionary[Any, DTLSChannel] = weakref.WeakValueDictionary()
        self._listening_context: SSL.Context | None = None
        self._new_channels: Any = None
        self._cookies = CookieJar()
        self._send_lock = Lock()
        self._reader_started = False
        self._closed = False

    def _ensure_receive_loop(self) -> None:
        if not self._reader_started:
            self._reader_started = True
            spawn_system_task(_read_datagrams, weakref.ref(self), self.socket)

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        try:
            self.close()
        except Exception:  # pragma: no cover - the run (or the interpreter) is gone
            pass
        # Last: under an "error" warnings filter this raises, and the socket is closed.
        warnings.warn(
            f"unclosed DTLS endpoint {self!r}", ResourceWarning, source=self, stacklevel=1
        )

    def close(self) -> None:
        """Close the socket and every channel; ``serve`` returns."""
        if self._closed:
            return
        self._closed = True
        self.socket.close()
        for channel in list(self._streams.values()):
            channel.close()
        if self._new_channels is not None:
            self._new_channels.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_closed(self) -> None:
        if self._closed:
            raise ClosedResourceError("this DTLS endpoint is closed")

    async def _send_to(self, datagram: bytes, address: Any) -> None:
        self._check_closed()
        async with self._send_lock:
            try:
                await self.socket.sendto(datagram, address)
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                    raise ClosedResourceError("the endpoint's socket is closed") from None
                # Any other failure is a lost datagram as far as DTLS is concerned; the
                # retransmit timer copes.
        # Read only once the socket has an address: an unbound client socket gets one
        # from its first send.
        self._ensure_receive_loop()

    async def _dispatch(self, packet: bytes, address: Any) -> None:
        if self._listening_context is not None:
            try:
                hello = client_hello_untrusted(packet)
            except BadPacket:
                hello = None
            if hello is not None:
                await self._handle_client_hello(packet, address, hello)
                return
        channel = self._streams.get(address)
        if channel is None or not packet:
            self.packets_dropped += 1
        elif channel._did_handshake and looks_like_handshake(packet):
            # The peer is still handshaking, so our final flight went missing. Answer
            # here: nobody need be reading the channel once its handshake is done.
            await channel._send_flight(channel._final_flight)
        else:
            channel._deliver(packet)

    async def _handle_client_hello(self, packet: bytes, address: Any, hello: Any) -> None:
        from OpenSSL import SSL

        now = current_time()
        if not self._cookies.check(now, hello.cookie, address, hello.signable):
            cookie = self._cookies.make(now, address, hello.signable)
            await self._send_to(hello_verify_request(hello, cookie), address)
            return
        existing = self._streams.get(address)
        if existing is not None and existing._hello_id == (hello.cookie, hello.signable):
            # A retransmission of the hello that started this very association.
            existing._deliver(packet)
            return
        ctx = self._listening_context
        assert ctx is not None
        channel = DTLSChannel._create(self, address, ctx, first_seq=hello.record_seq)
        channel._hello_id = (hello.cookie, hello.signable)
        channel._ssl.set_accept_state()
        channel._ssl.bio_write(packet)
        try:
            channel._ssl.DTLSv1_listen()
        except SSL.Error:
            self.packets_dropped += 1
            return
        if existing is not None:
            existing._set_replaced()
        self._streams[address] = channel
        try:
            self._new_channels.send_nowait(channel)
        except (ClosedResourceError, BrokenResourceError, AttributeError):
            pass

    async def serve(
        self,
        ssl_context: SSL.Context,
        async_fn: Callable[..., Awaitable[object]],
        *args: object,
        task_status: TaskStatus[None] = TASK_STATUS_IGNORED,
    ) -> None:
        """Accept associations with ``ssl_context`` and run ``async_fn(channel, *args)``
        for each in a nursery; returns when the endpoint is closed."""
        self._check_closed()
        if self._listening_context is not None:
            raise BusyResourceError("another task is already serving on this endpoint")
        _prepare_context(ssl_context)
        ssl_context.set_options(_OP_COOKIE_EXCHANGE)
        # We checked the cookie ourselves before OpenSSL sees the hello; OpenSSL still
        # insists on having both callbacks.
        ssl_context.set_cookie_generate_callback(lambda _ssl: b"vivace")
        ssl_context.set_cookie_verify_callback(lambda _ssl, _cookie: True)
        send, receive = open_memory_channel[DTLSChannel](float("inf"))
        self._listening_context = ssl_context
        self._new_channels = send
        try:
            self._ensure_receive_loop()

            async def run_handler(channel: DTLSChannel) -> None:
                with channel:
                    await async_fn(channel, *args)

            async with open_nursery() as nursery:
                task_status.started()
                async for channel in receive:
                    nursery.start_soon(run_handler, channel)
        finally:
            self._listening_context = None
            self._new_channels = None
            send.close()

    def connect(self, address: Any, ssl_context: SSL.Context) -> DTLSChannel:
        """A client channel to ``address``; the handshake starts on first use."""
        self._check_closed()
        _prepare_context(ssl_context)
        channel = DTLSChannel._create(self, address, ssl_context)
        channel._ssl.set_connect_state()
        existing = self._streams.get(address)
        if existing is not None:
            existing._set_replaced()
        self._streams[address] = channel
        return channel
