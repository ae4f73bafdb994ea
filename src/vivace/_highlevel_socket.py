"""SocketStream and SocketListener: the Stream/Listener interfaces over vivace sockets.

Design notes:
- OS errors are translated at this boundary: EBADF/ENOTSOCK mean *we* closed the socket
  (ClosedResourceError); anything else means the connection broke
  (BrokenResourceError, with the OSError chained as ``__cause__``).
- send_all is not reentrant: a second concurrent sender gets BusyResourceError rather
  than interleaving bytes on the wire.
- The hot path: ``receive_some`` and ``send_all`` are plain methods that return an
  awaitable. For the common case -- our own socket object over a stdlib socket, plain
  arguments -- that is the engine's ``stream_recv``/``stream_send_all`` (compiled: one
  C awaitable doing the checkpoints, the syscall, the busy guard and the error
  translation). Anything else gets the general coroutine (``_receive_some`` /
  ``_send_all``). Both check and raise only when awaited, as an ``async def`` would.
"""

from __future__ import annotations

import errno
import socket as _stdlib_socket
from collections.abc import Coroutine, Generator
from contextlib import contextmanager, suppress
from typing import Any

from ._abc import HalfCloseableStream, Listener
from ._core import (
    BrokenResourceError,
    BusyGuard,
    ClosedResourceError,
    checkpoint,
    final,
    stream_recv,
    stream_send_all,
)
from ._socket import SocketType, _SocketType

__all__ = ["SocketListener", "SocketStream"]

# Big enough to drain a typical socket buffer in one call, small enough to allocate freely.
DEFAULT_RECEIVE_SIZE = 65536

_CLOSED_ERRNOS = {errno.EBADF, errno.ENOTSOCK}
_StdlibSocket = _stdlib_socket.socket
# Sizes the engine's recv takes directly (a C ssize_t); larger ones go the general way.
_MAX_FAST_RECEIVE = 2**31


@contextmanager
def _translate_socket_errors() -> Generator[None, None, None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in _CLOSED_ERRNOS:
            raise ClosedResourceError("this socket was already closed") from None
        raise BrokenResourceError(f"socket connection broken: {exc}") from exc


@final
class SocketStream(HalfCloseableStream):
    """A HalfCloseableStream over a connected ``SOCK_STREAM`` vivace socket.

    The stream owns the socket: closing the stream closes it. For TCP sockets,
    ``TCP_NODELAY`` is switched on (streams send whole messages; Nagle only delays them).

    Attributes:
      socket: the underlying vivace socket object.
    """

    def __init__(self, socket: SocketType) -> None:
        if not isinstance(socket, SocketType):
            raise TypeError("SocketStream requires a vivace socket object")
        if socket.type != _stdlib_socket.SOCK_STREAM:
            raise ValueError("SocketStream requires a SOCK_STREAM socket")
        self.socket = socket
        self._send_guard = BusyGuard("another task is currently sending data on this SocketStream")
        with suppress(OSError):
            self.setsockopt(_stdlib_socket.IPPROTO_TCP, _stdlib_socket.TCP_NODELAY, True)
        if hasattr(_stdlib_socket, "TCP_NOTSENT_LOWAT"):
            # Keep the kernel's unsent queue short so wait_send_all_might_not_block is
            # meaningful and latency stays low.
            with suppress(OSError):
                self.setsockopt(_stdlib_socket.IPPROTO_TCP, _stdlib_socket.TCP_NOTSENT_LOWAT, 2**14)

    def send_all(self, data: bytes | bytearray | memoryview) -> Coroutine[Any, Any, None]:
        sock = self.socket
        if type(sock) is _SocketType and not sock._did_shutdown_SHUT_WR:
            std = sock._sock
            if type(std) is _StdlibSocket and (type(data) is bytes or type(data) is bytearray):
                if data:
                    return stream_send_all(std, data, self._send_guard)
        return self._send_all(data)

    async def _send_all(self, data: bytes | bytearray | memoryview) -> None:
        sock = self.socket
        if sock.did_shutdown_SHUT_WR:
            raise ClosedResourceError("can't send data after sending EOF")
        with self._send_guard, _translate_socket_errors(), memoryview(data) as view:
            if not view:
                if sock.fileno() == -1:
                    raise ClosedResourceError("socket was already closed")
                await checkpoint()
                return
            view = view.cast("B")
            total = len(view)
            sent = 0
            while sent < total:
                with view[sent:] as remaining:
                    sent += await sock.send(remaining)

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_guard:
            if self.socket.fileno() == -1:
                raise ClosedResourceError
            with _translate_socket_errors():
                await self.socket.wait_writable()

    async def send_eof(self) -> None:
        with self._send_guard:
            await checkpoint()
            if self.socket.did_shutdown_SHUT_WR:
                return
            with _translate_socket_errors():
                self.socket.shutdown(_stdlib_socket.SHUT_WR)

    def receive_some(self, max_bytes: int | None = None) -> Coroutine[Any, Any, bytes]:
        sock = self.socket
        if type(sock) is _SocketType:
            std = sock._sock
            if type(std) is _StdlibSocket:
                if max_bytes is None:
                    return stream_recv(std, DEFAULT_RECEIVE_SIZE)
                if type(max_bytes) is int and 1 <= max_bytes <= _MAX_FAST_RECEIVE:
                    return stream_recv(std, max_bytes)
        return self._receive_some(max_bytes)

    async def _receive_some(self, max_bytes: int | None) -> bytes:
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        with _translate_socket_errors():
            return await self.socket.recv(max_bytes)

    async def aclose(self) -> None:
        self.socket.close()
        await checkpoint()

    def setsockopt(
        self, level: int, option: int, value: int | bytes | None, length: int | None = None
    ) -> None:
        """Set an option on the underlying socket (see ``socket.setsockopt``)."""
        if length is None:
            if value is None:
                raise TypeError(
                    "invalid value for argument 'value': None is only allowed together with length"
                )
            self.socket.setsockopt(level, option, value)
            return
        if value is not None:
            raise TypeError(
                f"invalid value for argument 'value': {value!r}; pass None when giving length"
            )
        self.socket.setsockopt(level, option, value, length)

    def getsockopt(self, level: int, option: int, buffersize: int = 0) -> Any:
        """Read an option of the underlying socket (see ``socket.getsockopt``)."""
        if buffersize == 0:
            return self.socket.getsockopt(level, option)
        return self.socket.getsockopt(level, option, buffersize)


# accept() errors that concern only the one incoming connection (it was reset or
# refused by a firewall before we got it): skip it and wait for the next one.
_IGNORABLE_ACCEPT_ERRNOS = {
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "EPERM",
        "ECONNRESET",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
    )
    if hasattr(errno, name)
}


@final
class SocketListener(Listener[SocketStream]):
    """A Listener that accepts connections on a listening ``SOCK_STREAM`` vivace socket,
    giving a SocketStream for each.

    Attributes:
      socket: the underlying listening vivace socket.
    """

    def __init__(self, socket: SocketType) -> None:
        if not isinstance(socket, SocketType):
            raise TypeError("SocketListener requires a vivace socket object")
        if socket.type != _stdlib_socket.SOCK_STREAM:
            raise ValueError("SocketListener requires a SOCK_STREAM socket")
        try:
            listening = socket.getsockopt(_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_ACCEPTCONN)
        except OSError:
            pass  # this platform can't tell us; assume the caller got it right
        else:
            if not listening:
                raise ValueError("SocketListener requires a listening socket")
        self.socket = socket

    async def accept(self) -> SocketStream:
        """Wait for and return the next incoming connection.

        Raises ClosedResourceError if the listener (or its socket) was closed, and
        OSError for resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM), which
        ``serve_listeners`` handles by backing off.
        """
        while True:
            try:
                sock, _ = await self.socket.accept()
            except OSError as exc:
                if exc.errno in _CLOSED_ERRNOS:
                    raise ClosedResourceError from None
                if exc.errno not in _IGNORABLE_ACCEPT_ERRNOS:
                    raise
            else:
                return SocketStream(sock)

    async def aclose(self) -> None:
        self.socket.close()
        await checkpoint()
