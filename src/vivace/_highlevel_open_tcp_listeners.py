"""open_tcp_listeners and serve_tcp: listen on every address a host resolves to."""

from __future__ import annotations

import errno
import socket as _stdlib_socket
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from ._core import TASK_STATUS_IGNORED
from ._highlevel_serve_listeners import serve_listeners
from ._highlevel_socket import SocketListener
from ._socket import getaddrinfo, socket

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._core import Nursery, TaskStatus
    from ._highlevel_socket import SocketStream

__all__ = ["open_tcp_listeners", "serve_tcp"]

# The kernel caps the backlog itself (somaxconn); ask for the most it can give.
_MAX_BACKLOG = 0xFFFF


def _compute_backlog(backlog: int | None) -> int:
    if backlog is None:
        return _MAX_BACKLOG
    if not isinstance(backlog, int):
        raise TypeError(f"backlog must be an int or None, not {backlog!r}")
    return min(backlog, _MAX_BACKLOG)


async def open_tcp_listeners(
    port: int, *, host: str | bytes | None = None, backlog: int | None = None
) -> list[SocketListener]:
    """Open listening TCP sockets on *port* for every address *host* resolves to
    (``None``: all local interfaces, IPv4 and IPv6) and return a SocketListener for
    each. Port 0 picks a free port (one per listener). IPv6 sockets are V6ONLY, so the
    IPv4 and IPv6 wildcard listeners don't collide. *backlog* defaults to the maximum
    the system allows.
    """
    if not isinstance(port, int):
        raise TypeError(f"port must be an int, not {port!r}")
    computed_backlog = _compute_backlog(backlog)
    addresses = await getaddrinfo(
        host, port, type=_stdlib_socket.SOCK_STREAM, flags=_stdlib_socket.AI_PASSIVE
    )

    listeners: list[SocketListener] = []
    unsupported: list[OSError] = []
    try:
        for family, type_, proto, _canon, sockaddr in addresses:
            try:
                sock = socket(family, type_, proto)
            except OSError as exc:
                if exc.errno == errno.EAFNOSUPPORT:
                    unsupported.append(exc)
                    continue
                raise
            try:
                if sys.platform != "win32":
                    # Restarted servers must be able to rebind while old connections
                    # sit in TIME_WAIT.
                    sock.setsockopt(_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_REUSEADDR, 1)
                if family == _stdlib_socket.AF_INET6:
                    sock.setsockopt(_stdlib_socket.IPPROTO_IPV6, _stdlib_socket.IPV6_V6ONLY, 1)
                await sock.bind(sockaddr)
                sock.listen(computed_backlog)
                listeners.append(SocketListener(sock))
            except BaseException:
                sock.close()
                raise
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise

    if unsupported and not listeners:
        message = (
            "This system doesn't support any of the kinds of socket that that address could use"
        )
        raise OSError(errno.EAFNOSUPPORT, message) from ExceptionGroup(message, unsupported)
    return listeners


async def serve_tcp(
    handler: Callable[[SocketStream], Awaitable[object]],
    port: int,
    *,
    host: str | bytes | None = None,
    backlog: int | None = None,
    handler_nursery: Nursery | None = None,
    task_status: TaskStatus[list[SocketListener]] = TASK_STATUS_IGNORED,
) -> NoReturn:
    """Listen on *port* (see ``open_tcp_listeners``) and serve every connection with
    ``handler(stream)`` (see ``serve_listeners``). With ``nursery.start``, the started
    value is the list of listeners (useful with port 0 to learn the ports)."""
    listeners: list[Any] = await open_tcp_listeners(port, host=host, backlog=backlog)
    await serve_listeners(
        handler, listeners, handler_nursery=handler_nursery, task_status=task_status
    )
