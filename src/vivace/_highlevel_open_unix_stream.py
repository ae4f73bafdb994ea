"""open_unix_socket: connect to a Unix-domain stream socket by path."""

from __future__ import annotations

import os
import socket as _stdlib_socket
from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, TypeVar

from ._highlevel_socket import SocketStream
from ._socket import socket

if TYPE_CHECKING:
    pass

__all__ = ["open_unix_socket"]


class _Closable(Protocol):
    def close(self) -> None: ...


CloseT = TypeVar("CloseT", bound=_Closable)

has_unix = hasattr(_stdlib_socket, "AF_UNIX")


@contextmanager
def close_on_error(obj: CloseT) -> Generator[CloseT, None, None]:
    """Yield *obj*, closing it if the block raises."""
    try:
        yield obj
    except BaseException:
        obj.close()
        raise


async def open_unix_socket(
    filename: str | bytes | os.PathLike[str] | os.PathLike[bytes],
) -> SocketStream:
    """Connect to the Unix-domain stream socket at *filename* and return a
    SocketStream. Raises RuntimeError where Unix sockets don't exist."""
    if not has_unix:
        raise RuntimeError("Unix sockets are not supported on this platform")
    # Check the type before making a socket, so a bad argument leaks nothing.
    path = os.fspath(filename)
    sock = socket(_stdlib_socket.AF_UNIX, _stdlib_socket.SOCK_STREAM)
    with close_on_error(sock):
        await sock.connect(path)
    return SocketStream(sock)
