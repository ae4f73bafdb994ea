"""DTLS 1.2 wire format, as much of it as the endpoint needs to look at without OpenSSL.

Everything here parses bytes that come straight off an unauthenticated UDP socket, so
every parser raises ``BadPacket`` (and nothing else) on input that does not fit.

The stateless cookie exchange (RFC 6347 §4.2.1) lives here too: a server answers a
ClientHello without a valid cookie with a HelloVerifyRequest and keeps no state, so a
flood of spoofed hellos costs it one HMAC each and no memory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "BadPacket",
    "CookieJar",
    "Record",
    "client_hello_untrusted",
    "encode_record",
    "hello_verify_request",
    "is_client_hello_untrusted",
    "looks_like_handshake",
    "pack_records",
    "split_records",
]

CONTENT_CHANGE_CIPHER_SPEC = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPLICATION_DATA = 23

HANDSHAKE_CLIENT_HELLO = 1
HANDSHAKE_HELLO_VERIFY_REQUEST = 3

# DTLS 1.0's version number; RFC 6347 §4.2.1 has HelloVerifyRequest always carry it.
DTLS10_VERSION = 0xFEFF

# content type, version, epoch and 48-bit sequence number as one 64-bit field, length
_RECORD_HEADER = struct.Struct("!BHQH")
_RECORD_HEADER_LEN = _RECORD_HEADER.size  # 13
# msg_type, then 24-bit length, 16-bit message_seq, 24-bit offset, 24-bit fragment length
_FRAGMENT_HEADER_LEN = 12
_SEQ_MASK = (1 << 48) - 1


class BadPacket(Exception):
    """The bytes are not the DTLS structure we expected."""


@dataclass(frozen=True)
class Record:
    content_type: int
    version: int
    epoch_seq: int  # epoch in the top 16 bits, sequence number in the low 48
    payload: bytes

    @property
    def epoch(self) -> int:
        return self.epoch_seq >> 48

    @property
    def seq(self) -> int:
        return self.epoch_seq & _SEQ_MASK


def split_records(packet: bytes) -> list[Record]:
    records = []
    view = memoryview(packet)
    i = 0
    while i < len(view):
        if len(view) - i < _RECORD_HEADER_LEN:
            raise BadPacket("truncated record header")
        ctype, version, epoch_seq, length = _RECORD_HEADER.unpack_from(view, i)
        i += _RECORD_HEADER_LEN
        if len(view) - i < length:
            raise BadPacket("truncated record payload")
        records.append(Record(ctype, version, epoch_seq, bytes(view[i : i + length])))
        i += length
    return records


def encode_record(record: Record) -> bytes:
    header = _RECORD_HEADER.pack(
        record.content_type, record.version, record.epoch_seq, len(record.payload)
    )
    return header + record.payload


@dataclass(frozen=True)
class HandshakeFragment:
    msg_type: int
    length: int  # of the whole message, not just this fragment
    message_seq: int
    offset: int
    body: bytes


def _u24(data: bytes | memoryview, i: int) -> int:
    return int.from_bytes(data[i : i + 3], "big")


def split_fragments(payload: bytes) -> list[HandshakeFragment]:
    fragments = []
    i = 0
    while i < len(payload):
        if len(payload) - i < _FRAGMENT_HEADER_LEN:
            raise BadPacket("truncated handshake header")
        msg_type = payload[i]
        length = _u24(payload, i + 1)
        message_seq = int.from_bytes(payload[i + 4 : i + 6], "big")
        offset = _u24(payload, i + 6)
        frag_len = _u24(payload, i + 9)
        i += _FRAGMENT_HEADER_LEN
        if len(payload) - i < frag_len or offset + frag_len > length:
            raise BadPacket("handshake fragment does not fit")
        fragments.append(
            HandshakeFragment(msg_type, length, message_seq, offset, payload[i : i + frag_len])
        )
        i += frag_len
    return fragments


def encode_fragment(fragment: HandshakeFragment) -> bytes:
    return (
        bytes([fragment.msg_type])
        + fragment.length.to_bytes(3, "big")
        + fragment.message_seq.to_bytes(2, "big")
        + fragment.offset.to_bytes(3, "big")
        + len(fragment.body).to_bytes(3, "big")
        + fragment.body
    )


def looks_like_handshake(packet: bytes) -> bool:
    """Whether a datagram carries handshake traffic (a retransmitted flight, say)."""
    try:
        records = split_records(packet)
    except BadPacket:
        return False
    return any(r.content_type in (CONTENT_HANDSHAKE, CONTENT_CHANGE_CIPHER_SPEC) for r in records)


@dataclass(frozen=True)
class ClientHello:
    record_seq: int
    message_seq: int
    cookie: bytes
    # The hello with the cookie cut out: what the cookie is computed over, so a cookie
    # is good only for the very hello (and address) it was issued to.
    signable: bytes


def client_hello_untrusted(packet: bytes) -> ClientHello:
    records = split_records(packet)
    if not records:
        raise BadPacket("empty datagram")
    first = records[0]
    if first.content_type != CONTENT_HANDSHAKE or first.epoch != 0:
        raise BadPacket("not an epoch-0 handshake record")
    fragments = split_fragments(first.payload)
    if not fragments:
        raise BadPacket("no handshake message")
    hello = fragments[0]
    if hello.msg_type != HANDSHAKE_CLIENT_HELLO:
        raise BadPacket("not a ClientHello")
    if hello.offset != 0 or len(hello.body) != hello.length:
        # A fragmented ClientHello cannot be checked statelessly; real clients keep
        # their first hello in one datagram.
        raise BadPacket("fragmented ClientHello")
    body = hello.body
    i = 2 + 32  # client_version, random
    if len(body) < i + 1:
        raise BadPacket("truncated ClientHello")
    i += 1 + body[i]  # session_id
    if len(body) < i + 1:
        raise BadPacket("truncated ClientHello")
    cookie_len = body[i]
    cookie_start = i + 1
    cookie_end = cookie_start + cookie_len
    if len(body) < cookie_end + 2:
        raise BadPacket("truncated ClientHello")
    suites_len = int.from_bytes(body[cookie_end : cookie_end + 2], "big")
    j = cookie_end + 2 + suites_len
    if len(body) < j + 1:
        raise BadPacket("truncated ClientHello")
    j += 1 + body[j]  # compression methods
    if len(body) < j:
        raise BadPacket("truncated ClientHello")
    return ClientHello(
        record_seq=first.seq,
        message_seq=hello.message_seq,
        cookie=body[cookie_start:cookie_end],
        signable=body[: cookie_start - 1] + body[cookie_end:],
    )


def is_client_hello_untrusted(packet: bytes) -> bool:
    try:
        client_hello_untrusted(packet)
    except BadPacket:
        return False
    return True


def hello_verify_request(hello: ClientHello, cookie: bytes) -> bytes:
    body = DTLS10_VERSION.to_bytes(2, "big") + bytes([len(cookie)]) + cookie
    fragment = HandshakeFragment(
        HANDSHAKE_HELLO_VERIFY_REQUEST, len(body), hello.message_seq, 0, body
    )
    # Echoing the hello's record number (RFC 6347 §4.2.1) keeps the client's replay
    # window happy without the server remembering anything.
    record = Record(CONTENT_HANDSHAKE, DTLS10_VERSION, hello.record_seq, encode_fragment(fragment))
    return encode_record(record)


class CookieJar:
    """Issues and checks cookies with a key that changes every ``period`` seconds.

    A cookie names the period it was made in; cookies from the current and the previous
    period are accepted, so a client always has at least ``period`` seconds to answer.
    """

    def __init__(self, period: float = 30.0) -> None:
        self._secret = os.urandom(32)
        self._period = period

    def _mac(self, tick: int, address: object, signable: bytes) -> bytes:
        tick_bytes = tick.to_bytes(8, "big", signed=True)
        key = hmac.digest(self._secret, tick_bytes, hashlib.sha256)
        message = repr(address).encode() + b"\0" + signable
        return tick_bytes + hmac.digest(key, message, hashlib.sha256)

    def make(self, now: float, address: object, signable: bytes) -> bytes:
        return self._mac(int(now // self._period), address, signable)

    def check(self, now: float, cookie: bytes, address: object, signable: bytes) -> bool:
        if len(cookie) != 8 + 32:
            return False
        tick = int.from_bytes(cookie[:8], "big", signed=True)
        current = int(now // self._period)
        if tick not in (current, current - 1):
            return False
        return hmac.compare_digest(cookie, self._mac(tick, address, signable))


def pack_records(records: Iterable[Record], mtu: int, next_seq: list[int]) -> list[bytes]:
    """Lay a flight of records out in datagrams of at most ``mtu`` bytes.

    Plaintext (epoch 0) records are renumbered from ``next_seq[0]`` (which is advanced),
    so that a retransmitted flight is never mistaken for a replay; their handshake
    messages are re-fragmented when a record would not fit. Encrypted records cannot be
    touched and go out as they are.
    """
    pieces: list[bytes] = []
    room = max(mtu - _RECORD_HEADER_LEN - _FRAGMENT_HEADER_LEN, 1)

    def numbered(ctype: int, version: int, payload: bytes) -> bytes:
        seq = next_seq[0]
        next_seq[0] += 1
        return encode_record(Record(ctype, version, seq & _SEQ_MASK, payload))

    for record in records:
        if record.epoch != 0:
            pieces.append(encode_record(record))
        elif record.content_type == CONTENT_HANDSHAKE:
            for fragment in split_fragments(record.payload):
                body = fragment.body
                starts = range(0, max(len(body), 1), room)
                for start in starts:
                    part = HandshakeFragment(
                        fragment.msg_type,
                        fragment.length,
                        fragment.message_seq,
                        fragment.offset + start,
                        body[start : start + room],
                    )
                    pieces.append(
                        numbered(record.content_type, record.version, encode_fragment(part))
                    )
        else:
            pieces.append(numbered(record.content_type, record.version, record.payload))
    datagrams: list[bytes] = []
    current = b""
    for piece in pieces:
        if current and len(current) + len(piece) > mtu:
            datagrams.append(current)
            current = b""
        current += piece
    if current:
        datagrams.append(current)
    return datagrams
