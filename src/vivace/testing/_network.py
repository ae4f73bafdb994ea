"""Connecting to a SocketListener in tests."""

from __future__ import annotations

from socket import AF_INET as _AF_INET, AF_INET6 as _AF_INET6

from .._highlevel_open_tcp_stream import open_tcp_stream
from .._highlevel_socket import SocketListener, SocketStream
from .._socket import socket

__all__ = ["open_stream_to_socket_listener"]


async def open_stream_to_socket_listener(socket_listener: SocketListener) -> SocketStream:
    """Connect to *socket_listener* and return the client's SocketStream.

    Works for TCP (a wildcard bind address is replaced by the loopback address of the
    same family) and for Unix-domain listeners.
    """
    family = socket_listener.socket.family
    sockaddr = socket_listener.socket.getsockname()
    if family in (_AF_INET, _AF_INET6):
        sockaddr = list(sockaddr)
        if sockaddr[0] == "0.0.0.0":
            sockaddr[0] = "127.0.0.1"
        elif sockaddr[0] == "::":
            sockaddr[0] = "::1"
        return await open_tcp_stream(sockaddr[0], sockaddr[1])
    sock = socket(family, socket_listener.socket.type, socket_listener.socket.proto)
    try:
        await sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return SocketStream(sock)
