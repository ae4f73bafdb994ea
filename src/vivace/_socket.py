"""vivace.socket's socket objects: the abstract ``SocketType`` and its one real
implementation, wrapping a non-blocking stdlib socket.

Design notes:
- Every awaited method is a full checkpoint, even when the syscall succeeds at once:
  check for cancellation, try the syscall, and on success add a shielded schedule point
  (``try_sync``). Only on EAGAIN do we park in ``wait_readable``/``wait_writable``; a
  cancel there means the syscall never happened, so ``Cancelled`` always means "nothing
  was sent/received".
- The stdlib socket object itself (``self._sock``) is what we hand to the I/O manager,
  so it can reuse a registration; ``notify_closing`` runs before every close so a task
  parked on the fd wakes with ClosedResourceError instead of hanging on a reused fd.
- Syscalls are looked up on ``self._sock`` at call time (tests swap ``_sock``).
- On a real stdlib socket, recv/send go through the engine's ``sock_recv``/``sock_send``
  and every other non-blocking method through ``sock_call`` (compiled: one C awaitable
  per call, same checkpoints as ``try_sync`` + wait); anything unusual (a swapped-in
  fake ``_sock``, odd argument types) takes the generic ``try_sync`` path.
"""

from __future__ import annotations

import os
import select
import socket as _stdlib_socket
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from ._core import (
    Cancelled,
    in_trio_run,
    notify_closing,
    sock_call,
    sock_recv,
    sock_send,
    wait_readable,
    wait_writable,
)
from ._socket_resolve import (
    _socket_factory,
    encode_hostname,
    getaddrinfo,
    getnameinfo,
    getprotobyname,
    resolve_address_nocp,
    set_custom_hostname_resolver,
    set_custom_socket_factory,
    try_sync,
)
from ._threads import to_thread_run_sync

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType
    from typing import Self

__all__ = [
    "SocketType",
    "encode_hostname",
    "from_stdlib_socket",
    "fromfd",
    "getaddrinfo",
    "getnameinfo",
    "getprotobyname",
    "set_custom_hostname_resolver",
    "set_custom_socket_factory",
    "socket",
    "socketpair",
]

_DEFAULT_BACKLOG = min(_stdlib_socket.SOMAXCONN, 128)
_StdlibSocket = _stdlib_socket.socket
# recv/send take a C int of flags: other values go the stdlib's way (its errors).
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _abstract(name: str) -> NoReturn:
    raise NotImplementedError(f"SocketType.{name} is not implemented by this socket class")


class SocketType:
    """The type of vivace's socket objects: an async mirror of ``socket.socket``.

    It cannot be built directly: use ``vivace.socket.socket()``, ``socketpair()``,
    ``fromfd()`` or ``from_stdlib_socket()``. Custom socket factories may subclass it.
    Blocking methods of the stdlib socket become ``async`` methods here, and each is a
    checkpoint.
    """

    def __init__(self) -> None:
        super().__init__()
        if type(self) is SocketType:
            raise TypeError("SocketType is abstract; use vivace.socket.socket() to make a socket")

    def detach(self) -> int:
        _abstract("detach")

    def fileno(self) -> int:
        _abstract("fileno")

    def getpeername(self) -> Any:
        _abstract("getpeername")

    def getsockname(self) -> Any:
        _abstract("getsockname")

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        _abstract("getsockopt")

    def setsockopt(
        self, level: int, optname: int, value: int | bytes | None, optlen: int | None = None
    ) -> None:
        _abstract("setsockopt")

    def listen(self, backlog: int = _DEFAULT_BACKLOG) -> None:
        _abstract("listen")

    def get_inheritable(self) -> bool:
        _abstract("get_inheritable")

    def set_inheritable(self, inheritable: bool) -> None:
        _abstract("set_inheritable")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None,
        exc_value: BaseException | None, traceback: TracebackType | None,
    ) -> None:
        # Plain ``with sock:`` closes synchronously, like the stdlib socket.
        self.close()

    @property
    def family(self) -> _stdlib_socket.AddressFamily:
        _abstract("family")

    @property
    def type(self) -> _stdlib_socket.SocketKind:
        _abstract("type")

    @property
    def proto(self) -> int:
        _abstract("proto")

    @property
    def did_shutdown_SHUT_WR(self) -> bool:
        """True once ``shutdown(SHUT_WR)`` or ``shutdown(SHUT_RDWR)`` was called."""
        _abstract("did_shutdown_SHUT_WR")

    def dup(self) -> SocketType:
        _abstract("dup")

    def close(self) -> None:
        _abstract("close")

    async def bind(self, address: Any) -> None:
        _abstract("bind")

    def shutdown(self, flag: int) -> None:
        _abstract("shutdown")

    def is_readable(self) -> bool:
        """True if a ``recv`` would not block right now (data or EOF is pending)."""
        _abstract("is_readable")

    async def wait_writable(self) -> None:
        """Block until the socket is writable."""
        _abstract("wait_writable")

    async def accept(self) -> tuple[SocketType, Any]:
        _abstract("accept")

    async def connect(self, address: Any) -> None:
        _abstract("connect")

    async def recv(self, buflen: int, flags: int = 0, /) -> bytes:
        _abstract("recv")

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        _abstract("recv_into")

    async def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        _abstract("recvfrom")

    async def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        _abstract("recvfrom_into")

    async def recvmsg(
        self, bufsize: int, ancbufsize: int = 0, flags: int = 0, /
    ) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
        _abstract("recvmsg")

    async def recvmsg_into(
        self, buffers: Any, ancbufsize: int = 0, flags: int = 0, /
    ) -> tuple[int, list[tuple[int, int, bytes]], int, Any]:
        _abstract("recvmsg_into")

    async def send(self, data: Any, flags: int = 0, /) -> int:
        _abstract("send")

    async def sendto(self, *args: Any) -> int:
        _abstract("sendto")

    async def sendmsg(
        self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None, /
    ) -> int:
        _abstract("sendmsg")


SocketType.__module__ = "vivace.socket"


def _is_readable_now(sock: _stdlib_socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _SocketType(SocketType):
    """A real socket: a stdlib socket in non-blocking mode, driven by the I/O manager."""

    def __init__(self, sock: _stdlib_socket.socket) -> None:
        if type(sock) is not _stdlib_socket.socket:
            raise TypeError(
                f"expected an object of type 'socket.socket', not '{type(sock).__name__}'"
            )
        sock.setblocking(False)
        self._sock = sock
        self._did_shutdown_SHUT_WR = False

    # --- synchronous pass-throughs ---

    def fileno(self) -> int:
        return self._sock.fileno()

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def detach(self) -> int:
        return self._sock.detach()

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        if buflen is None:
            return self._sock.getsockopt(level, optname)
        return self._sock.getsockopt(level, optname, buflen)

    def setsockopt(
        self, level: int, optname: int, value: int | bytes | None, optlen: int | None = None
    ) -> None:
        if optlen is None:
            if value is None:
                raise TypeError(
                    "invalid value for argument 'value': None is only allowed together with optlen"
                )
            self._sock.setsockopt(level, optname, value)
            return
        if value is not None:
            raise TypeError(
                f"invalid value for argument 'value': {value!r}; pass None when giving optlen"
            )
        self._sock.setsockopt(level, optname, None, optlen)

    def listen(self, backlog: int = _DEFAULT_BACKLOG) -> None:
        self._sock.listen(backlog)

    def get_inheritable(self) -> bool:
        return self._sock.get_inheritable()

    def set_inheritable(self, inheritable: bool) -> None:
        self._sock.set_inheritable(inheritable)

    if sys.platform == "win32":  # pragma: no cover

        def share(self, process_id: int) -> bytes:
            return self._sock.share(process_id)

    @property
    def did_shutdown_SHUT_WR(self) -> bool:
        return self._did_shutdown_SHUT_WR

    @property
    def family(self) -> _stdlib_socket.AddressFamily:
        return self._sock.family

    @property
    def proto(self) -> int:
        return self._sock.proto

    @property
    def type(self) -> _stdlib_socket.SocketKind:
        return self._sock.type

    def __repr__(self) -> str:
        return repr(self._sock).replace("socket.socket", "vivace.socket.socket", 1)

    def dup(self) -> SocketType:
        return _SocketType(self._sock.dup())

    def close(self) -> None:
        if self._sock.fileno() != -1:
            if in_trio_run():
                notify_closing(self._sock)
            self._sock.close()

    def shutdown(self, flag: int) -> None:
        self._sock.shutdown(flag)
        if flag in (_stdlib_socket.SHUT_WR, _stdlib_socket.SHUT_RDWR):
            self._did_shutdown_SHUT_WR = True

    def is_readable(self) -> bool:
        return _is_readable_now(self._sock)

    async def wait_writable(self) -> None:
        await wait_writable(self._sock)

    # --- address handling ---

    async def _resolve_address_nocp(self, address: Any, *, local: bool) -> Any:
        if self.family == _stdlib_socket.AF_INET6:
            v6only: bool | int = self._sock.getsockopt(
                _stdlib_socket.IPPROTO_IPV6, _stdlib_socket.IPV6_V6ONLY
            )
        else:
            v6only = False
        return await resolve_address_nocp(
            self.type,
            self.family,
            self.proto,
            ipv6_v6only=v6only,
            address=address,
            local=local,
        )

    async def bind(self, address: Any) -> None:
        address = await self._resolve_address_nocp(address, local=True)
        if (
            hasattr(_stdlib_socket, "AF_UNIX")
            and self.family == _stdlib_socket.AF_UNIX
            and address
            and address[0] not in (0, "\0")
        ):
            # A filesystem path: bind() walks the filesystem, so it may block.
            await to_thread_run_sync(self._sock.bind, address)
            return
        async with try_sync():
            self._sock.bind(address)

    # --- the non-blocking core ---

    async def _nonblocking(
        self,
        wait: Callable[[Any], Awaitable[None]],
        name: str,
        *args: Any,
    ) -> Any:
        sock = self._sock
        if type(sock) is _StdlibSocket:
            return await sock_call(sock, wait is wait_readable, name, args)
        async with try_sync():
            return getattr(self._sock, name)(*args)
        while True:
            await wait(self._sock)
            try:
                return getattr(self._sock, name)(*args)
            except BlockingIOError:
                pass

    async def accept(self) -> tuple[SocketType, Any]:
        sock, addr = await self._nonblocking(wait_readable, "accept")
        return from_stdlib_socket(sock), addr

    async def connect(self, address: Any) -> None:
        try:
            address = await self._resolve_address_nocp(address, local=False)
            async with try_sync():
                self._sock.connect(address)
                return
            # In progress: the socket turns writable when the attempt finishes.
            await wait_writable(self._sock)
        except Cancelled:
            # A half-open connection attempt cannot be resumed: close the socket.
            self._sock.close()
            raise
        err = self._sock.getsockopt(_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_ERROR)
        if err != 0:
            raise OSError(err, f"Error connecting to {address!r}: {os.strerror(err)}")

    async def recv(self, buflen: int, flags: int = 0, /) -> bytes:
        sock = self._sock
        if type(sock) is _StdlibSocket and type(buflen) is int and type(flags) is int:
            if 0 <= buflen and _INT_MIN <= flags <= _INT_MAX:
                return await sock_recv(sock, buflen, flags)
        data: bytes = await self._nonblocking(wait_readable, "recv", buflen, flags)
        return data

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        count: int = await self._nonblocking(wait_readable, "recv_into", buffer, nbytes, flags)
        return count

    async def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        result: tuple[bytes, Any] = await self._nonblocking(
            wait_readable, "recvfrom", bufsize, flags
        )
        return result

    async def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        result: tuple[int, Any] = await self._nonblocking(
            wait_readable, "recvfrom_into", buffer, nbytes, flags
        )
        return result

    async def recvmsg(
        self, bufsize: int, ancbufsize: int = 0, flags: int = 0, /
    ) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
        result: tuple[bytes, list[tuple[int, int, bytes]], int, Any] = await self._nonblocking(
            wait_readable, "recvmsg", bufsize, ancbufsize, flags
        )
        return result

    async def recvmsg_into(
        self, buffers: Any, ancbufsize: int = 0, flags: int = 0, /
    ) -> tuple[int, list[tuple[int, int, bytes]], int, Any]:
        result: tuple[int, list[tuple[int, int, bytes]], int, Any] = await self._nonblocking(
            wait_readable, "recvmsg_into", buffers, ancbufsize, flags
        )
        return result

    async def send(self, data: Any, flags: int = 0, /) -> int:
        sock = self._sock
        if type(sock) is _StdlibSocket and type(flags) is int and _INT_MIN <= flags <= _INT_MAX:
            return await sock_send(sock, data, flags)
        count: int = await self._nonblocking(wait_writable, "send", data, flags)
        return count

    async def sendto(self, *args: Any) -> int:
        """``sendto(data[, flags], address)``; the address may need resolving."""
        if not 2 <= len(args) <= 3:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args)} given)")
        *rest, address = args
        address = await self._resolve_address_nocp(address, local=False)
        count: int = await self._nonblocking(wait_writable, "sendto", *rest, address)
        return count

    async def sendmsg(
        self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None, /
    ) -> int:
        if address is not None:
            address = await self._resolve_address_nocp(address, local=False)
            count: int = await self._nonblocking(
                wait_writable, "sendmsg", buffers, ancdata, flags, address
            )
        else:
            count = await self._nonblocking(wait_writable, "sendmsg", buffers, ancdata, flags)
        return count


if not hasattr(_stdlib_socket.socket, "recvmsg"):  # pragma: no cover
    del _SocketType.recvmsg, _SocketType.recvmsg_into, _SocketType.sendmsg


# --- constructors ---


def from_stdlib_socket(sock: _stdlib_socket.socket) -> SocketType:
    """Wrap an existing stdlib socket object (which the result then owns)."""
    return _SocketType(sock)


def _sniffed_kind(family: int, type_: int, proto: int, fileno: int) -> tuple[int, int, int]:
    # The kernel knows what an fd really is; ask it rather than trust the caller.
    if sys.platform != "linux":  # pragma: no cover
        return family, type_, proto
    probe = _stdlib_socket.socket(fileno=fileno)
    try:
        return probe.family, probe.type, probe.proto
    finally:
        probe.detach()


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> SocketType:
    """Like ``socket.fromfd``: duplicate *fd* and wrap the copy."""
    family, type, proto = _sniffed_kind(family, type, proto, fd)
    return from_stdlib_socket(_stdlib_socket.fromfd(fd, family, type, proto))


if sys.platform == "win32":  # pragma: no cover

    def fromshare(info: bytes) -> SocketType:
        """Like ``socket.fromshare``."""
        return from_stdlib_socket(_stdlib_socket.fromshare(info))


def socketpair(
    family: int | None = None, type: int = _stdlib_socket.SOCK_STREAM, proto: int = 0
) -> tuple[SocketType, SocketType]:
    """Like ``socket.socketpair``, returning two vivace sockets."""
    if family is None:
        left, right = _stdlib_socket.socketpair(type=type, proto=proto)
    else:
        left, right = _stdlib_socket.socketpair(family, type, proto)
    return from_stdlib_socket(left), from_stdlib_socket(right)


def socket(
    family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
) -> SocketType:
    """Make a new vivace socket, like ``socket.socket``.

    Without *fileno*, a custom socket factory (``set_custom_socket_factory``) is used if
    one is set. With *fileno*, the existing fd is wrapped and its family/type/protocol
    are read from the kernel when not given.
    """
    if fileno is None:
        factory = _socket_factory.get(None)
        if factory is not None:
            made: SocketType = factory.socket(
                _stdlib_socket.AF_INET if family == -1 else family,
                _stdlib_socket.SOCK_STREAM if type == -1 else type,
                0 if proto == -1 else proto,
            )
            return made
        sock = _stdlib_socket.socket(
            _stdlib_socket.AF_INET if family == -1 else family,
            _stdlib_socket.SOCK_STREAM if type == -1 else type,
            0 if proto == -1 else proto,
        )
    else:
        sock = _stdlib_socket.socket(family, type, proto, fileno)
    return from_stdlib_socket(sock)
