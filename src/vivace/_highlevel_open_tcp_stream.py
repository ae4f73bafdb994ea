"""open_tcp_stream: connect to a host by name with Happy Eyeballs (RFC 6555 / 8305).

Design notes:
- Attempts start one after another, each ``happy_eyeballs_delay`` after the previous
  one, or at once when the previous attempt fails; the first connection to succeed wins
  and cancels the rest. All attempts run in one nursery, so none outlives the call.
- Every socket made here is closed on the way out except the winner, whatever happens
  (error, cancel): no fd leaks.
"""

from __future__ import annotations

import socket as _stdlib_socket
import sys
from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._core import open_nursery
from ._highlevel_socket import SocketStream
from ._socket import getaddrinfo, socket
from ._sync import Event
from ._timeouts import move_on_after

if TYPE_CHECKING:
    from ._socket import SocketType

__all__ = ["open_tcp_stream"]

# RFC 8305 recommends 250 ms between attempts.
DEFAULT_DELAY = 0.250

_IP_BIND_ADDRESS_NO_PORT: int | None = getattr(
    _stdlib_socket, "IP_BIND_ADDRESS_NO_PORT", 24 if sys.platform == "linux" else None
)


@contextmanager
def close_all() -> Generator[set[SocketType], None, None]:
    """Yield a set; every socket still in it on exit is closed."""
    sockets: set[SocketType] = set()
    try:
        yield sockets
    finally:
        errors: list[BaseException] = []
        for sock in sockets:
            try:
                sock.close()
            except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise BaseExceptionGroup("errors while closing sockets", errors)


def reorder_for_rfc_6555_section_5_4(targets: list[tuple[Any, ...]]) -> None:
    """Make sure the first two targets use different address families, when the list
    has more than one family (so a broken family costs one delay, not many)."""
    for index in range(1, len(targets)):
        if targets[index][0] != targets[0][0]:
            if index != 1:
                targets.insert(1, targets.pop(index))
            break


def format_host_port(host: str | bytes, port: int | str) -> str:
    """``host:port``, with IPv6 literals in brackets."""
    text = host.decode() if isinstance(host, bytes) else host
    if ":" in text:
        text = f"[{text}]"
    return f"{text}:{port}"


async def open_tcp_stream(
    host: str | bytes,
    port: int,
    *,
    happy_eyeballs_delay: float | None = DEFAULT_DELAY,
    local_address: str | None = None,
) -> SocketStream:
    """Connect to *host*:*port* over TCP and return a SocketStream.

    *host* may be a name or an IP literal; every address it resolves to is tried with
    Happy Eyeballs: a new attempt starts every *happy_eyeballs_delay* seconds (default
    0.25; ``None`` means the default) or as soon as the previous one fails, and the
    first success wins. If all fail, raises OSError whose ``__cause__`` is an
    ExceptionGroup of the individual errors.

    *local_address* binds the outgoing sockets to that local IP (port chosen by the
    kernel) first.
    """
    if not isinstance(host, (str, bytes)):
        raise ValueError(f"host must be str or bytes, not {host!r}")
    if not isinstance(port, int):
        raise TypeError(f"port must be int, not {port!r}")
    if happy_eyeballs_delay is None:
        happy_eyeballs_delay = DEFAULT_DELAY

    targets = await getaddrinfo(host, port, type=_stdlib_socket.SOCK_STREAM)
    if not targets:
        raise OSError(f"no results found for hostname lookup: {format_host_port(host, port)}")
    reorder_for_rfc_6555_section_5_4(targets)

    errors: list[OSError] = []
    winner: SocketType | None = None

    with close_all() as to_close:

        async def attempt(socket_args: tuple[Any, ...], sockaddr: Any, failed: Event) -> None:
            nonlocal winner
            try:
                sock = socket(*socket_args)
                to_close.add(sock)
                if local_address is not None:
                    await _bind_local(sock, local_address, sockaddr)
                await sock.connect(sockaddr)
            except OSError as exc:
                errors.append(exc)
                failed.set()
                return
            winner = sock
            nursery.cancel_scope.cancel()

        async with open_nursery() as nursery:
            for family, type_, proto, _canon, sockaddr in targets:
                failed = Event()
                nursery.start_soon(attempt, (family, type_, proto), sockaddr, failed)
                with move_on_after(happy_eyeballs_delay):
                    await failed.wait()

        if winner is None:
            message = f"all attempts to connect to {format_host_port(host, port)} failed"
            raise OSError(message) from ExceptionGroup(message, errors)
        # Build the stream while the socket is still in to_close: if this fails, the
        # socket is closed with the rest.
        stream = SocketStream(winner)
        to_close.discard(winner)
        return stream


async def _bind_local(sock: SocketType, local_address: str, sockaddr: Any) -> None:
    if _IP_BIND_ADDRESS_NO_PORT is not None:
        # Let connect() pick the port, so binding doesn't use up ephemeral ports that a
        # (local IP, remote IP, remote port) tuple could otherwise share.
        try:
            sock.setsockopt(_stdlib_socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
        except (OSError, AttributeError):
            pass
    try:
        await sock.bind((local_address, 0))
    except OSError:
        raise OSError(
            f"local_address={local_address!r} is incompatible with remote address {sockaddr!r}"
        ) from None
