"""vivace.socket: trio.socket's names — async socket objects, name resolution, and the
stdlib's socket constants and helper functions, re-exported."""

from __future__ import annotations

import socket as _stdlib_socket
import sys as _sys
import typing as _t
from contextlib import suppress as _suppress

# Every constant this Python's socket module has (they vary by platform and build).
# Windows' SO_REUSEADDR means something dangerous, so it is not re-exported there.
globals().update(
    {
        _name: getattr(_stdlib_socket, _name)
        for _name in _stdlib_socket.__all__
        if _name.isupper() and not (_sys.platform == "win32" and _name == "SO_REUSEADDR")
    }
)

if _t.TYPE_CHECKING:
    # The constants above are computed at runtime; to a type checker they are ints.
    def __getattr__(name: str) -> int: ...


from socket import (  # noqa: E402
    gaierror as gaierror,
    gethostname as gethostname,
    herror as herror,
    htonl as htonl,
    htons as htons,
    inet_aton as inet_aton,
    inet_ntoa as inet_ntoa,
    inet_ntop as inet_ntop,
    inet_pton as inet_pton,
    ntohs as ntohs,
)

from ._socket import (  # noqa: E402
    SocketType as SocketType,
    from_stdlib_socket as from_stdlib_socket,
    fromfd as fromfd,
    getaddrinfo as getaddrinfo,
    getnameinfo as getnameinfo,
    getprotobyname as getprotobyname,
    set_custom_hostname_resolver as set_custom_hostname_resolver,
    set_custom_socket_factory as set_custom_socket_factory,
    socket as socket,
    socketpair as socketpair,
)

with _suppress(ImportError):
    from ._socket import fromshare as fromshare  # type: ignore[attr-defined,unused-ignore]
with _suppress(ImportError):
    from socket import if_indextoname as if_indextoname, if_nametoindex as if_nametoindex
with _suppress(ImportError):
    from socket import if_nameindex as if_nameindex
with _suppress(ImportError):
    from socket import sethostname as sethostname  # type: ignore[attr-defined,unused-ignore]

if not _t.TYPE_CHECKING and "IP_BIND_ADDRESS_NO_PORT" not in globals() and _sys.platform == "linux":
    IP_BIND_ADDRESS_NO_PORT = 24
