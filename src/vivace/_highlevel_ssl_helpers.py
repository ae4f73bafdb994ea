"""TLS over TCP in one call: open_ssl_over_tcp_stream, open_ssl_over_tcp_listeners and
serve_ssl_over_tcp (thin compositions of the TCP helpers with SSLStream/SSLListener)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, NoReturn

from ._core import TASK_STATUS_IGNORED
from ._highlevel_open_tcp_listeners import open_tcp_listeners
from ._highlevel_open_tcp_stream import DEFAULT_DELAY, open_tcp_stream
from ._highlevel_serve_listeners import serve_listeners
from ._ssl import SSLListener, SSLStream

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._core import Nursery, TaskStatus
    from ._highlevel_socket import SocketStream

__all__ = [
    "open_ssl_over_tcp_listeners",
    "open_ssl_over_tcp_stream",
    "serve_ssl_over_tcp",
]


async def open_ssl_over_tcp_stream(
    host: str | bytes,
    port: int,
    *,
    https_compatible: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    happy_eyeballs_delay: float | None = DEFAULT_DELAY,
) -> SSLStream[SocketStream]:
    """Connect over TCP to *host*:*port* (see ``open_tcp_stream``) and return the
    connection wrapped in a client-side ``SSLStream`` that checks the server's
    certificate against *host*.

    *ssl_context* defaults to ``ssl.create_default_context()``, with truncation
    detection left on. The handshake is not done here: call ``do_handshake()`` or let
    the first send/receive do it. See ``SSLStream`` for *https_compatible*.
    """
    if ssl_context is None:
        ssl_context = ssl.create_default_context()
        # Some OpenSSL builds enable this by default; it would hide truncation attacks,
        # which SSLStream reports unless https_compatible is set.
        ssl_context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    transport = await open_tcp_stream(host, port, happy_eyeballs_delay=happy_eyeballs_delay)
    return SSLStream(
        transport, ssl_context, server_hostname=host, https_compatible=https_compatible
    )


async def open_ssl_over_tcp_listeners(
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    host: str | bytes | None = None,
    https_compatible: bool = False,
    backlog: int | None = None,
) -> list[SSLListener[SocketStream]]:
    """Listen for TLS connections on *port*: ``open_tcp_listeners(port, host=host,
    backlog=backlog)`` with each listener wrapped in an ``SSLListener`` that uses
    *ssl_context* for every accepted connection."""
    tcp_listeners = await open_tcp_listeners(port, host=host, backlog=backlog)
    return [
        SSLListener(listener, ssl_context, https_compatible=https_compatible)
        for listener in tcp_listeners
    ]


async def serve_ssl_over_tcp(
    handler: Callable[[SSLStream[SocketStream]], Awaitable[object]],
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    host: str | bytes | None = None,
    https_compatible: bool = False,
    backlog: int | None = None,
    handler_nursery: Nursery | None = None,
    task_status: TaskStatus[list[SSLListener[SocketStream]]] = TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve TLS over TCP forever: open listeners with ``open_ssl_over_tcp_listeners``
    and run ``handler(stream)`` for each connection via ``serve_listeners``.

    With ``nursery.start`` the started value is the list of listeners (handy with
    ``port=0``). An exception from *handler* is not caught: it propagates and stops the
    server unless *handler_nursery* handles it.
    """
    listeners = await open_ssl_over_tcp_listeners(
        port,
        ssl_context,
        host=host,
        https_compatible=https_compatible,
        backlog=backlog,
    )
    await serve_listeners(
        handler, listeners, handler_nursery=handler_nursery, task_status=task_status
    )
