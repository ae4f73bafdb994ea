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
    # The constants above are computed at run time; type checkers read them, with the
    # stdlib's own types, from the list spelled out for them.
    from ._socket_constants import *  # noqa: F403


# Synchronous stdlib helpers need no wrapping: these are the stdlib's own objects.
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

# Socket objects and their constructors.
from ._socket import (  # noqa: E402
    SocketType as SocketType,
    from_stdlib_socket as from_stdlib_socket,
    fromfd as fromfd,
    socket as socket,
    socketpair as socketpair,
)

# Name resolution, and the hooks to customise it and socket creation.
from ._socket_resolve import (  # noqa: E402
    getaddrinfo as getaddrinfo,
    getnameinfo as getnameinfo,
    getprotobyname as getprotobyname,
    set_custom_hostname_resolver as set_custom_hostname_resolver,
    set_custom_socket_factory as set_custom_socket_factory,
)

if _sys.platform == "win32" or not _t.TYPE_CHECKING:  # Windows-only, to type checkers too
    with _suppress(ImportError):
        from ._socket import fromshare as fromshare  # type: ignore[attr-defined,unused-ignore]
with _suppress(ImportError):
    from socket import if_indextoname as if_indextoname, if_nametoindex as if_nametoindex
with _suppress(ImportError):
    from socket import if_nameindex as if_nameindex
if _sys.platform != "win32" or not _t.TYPE_CHECKING:  # Unix-only, to type checkers too
    with _suppress(ImportError):
        from socket import sethostname as sethostname

if not _t.TYPE_CHECKING and "IP_BIND_ADDRESS_NO_PORT" not in globals() and _sys.platform == "linux":
    IP_BIND_ADDRESS_NO_PORT = 24
