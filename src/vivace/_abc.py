"""Abstract base classes of the API layer (the implementations behind ``vivace.abc``).

``Clock`` and ``Instrument``, which the run loop calls, are the core's
(``vivace._core._abc``); ``vivace.abc`` takes those from ``vivace._core``.
"""

from __future__ import annotations

import socket as _stdlib_socket
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._core import EndOfChannel

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from .socket import SocketType


class HostnameResolver(ABC):
    """The interface for a custom name resolver; install one with
    ``socket.set_custom_hostname_resolver`` and ``socket.getaddrinfo`` /
    ``socket.getnameinfo`` delegate to it."""

    __slots__ = ()

    @abstractmethod
    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0, type: int = 0, proto: int = 0, flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        """Resolve like ``socket.getaddrinfo``. *host* arrives already IDNA-encoded
        (A-labels only); numeric hosts may be answered without calling this."""

    @abstractmethod
    async def getnameinfo(
        self,
        sockaddr: tuple[str, int] | tuple[str, int, int, int],
        flags: int,
    ) -> tuple[str, str]:
        """Reverse-resolve like ``socket.getnameinfo``."""


class SocketFactory(ABC):
    """The interface for a custom socket maker; install one with
    ``socket.set_custom_socket_factory`` and ``socket.socket`` (without ``fileno=``)
    delegates to it."""

    __slots__ = ()

    @abstractmethod
    def socket(
        self,
        family: _stdlib_socket.AddressFamily | int = _stdlib_socket.AF_INET,
        type: _stdlib_socket.SocketKind | int = _stdlib_socket.SOCK_STREAM,
        proto: int = 0,
    ) -> SocketType:
        """Return a new socket object; it must be an instance of
        ``vivace.socket.SocketType``."""


class AsyncResource(ABC):
    """Something that must be closed: ``aclose()``, or ``async with`` (which closes on
    exit, whether or not the block raised).

    ``aclose`` must be idempotent, and it must leave the resource closed even if it is
    cancelled (it may then close it less gracefully). Using a closed resource raises
    ``ClosedResourceError``.
    """

    __slots__ = ()

    @abstractmethod
    async def aclose(self) -> None:
        """Close the resource (a checkpoint; idempotent; closes even if cancelled)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None,
        exc_value: BaseException | None, traceback: TracebackType | None,
    ) -> None:
        # Close whether the block succeeded or raised; never swallow its exception.
        await self.aclose()


class SendStream(AsyncResource):
    """A byte stream you write to."""

    __slots__ = ()

    @abstractmethod
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of *data*, blocking as long as needed. Only one task may call
        ``send_all`` at a time (``BusyResourceError`` otherwise). If it is cancelled,
        an unknown amount of *data* may have been sent: the stream is then broken."""

    @abstractmethod
    async def wait_send_all_might_not_block(self) -> None:
        """Block until a ``send_all`` call would probably make progress without
        blocking. It is only a hint: it may return early or late."""


class ReceiveStream(AsyncResource):
    """A byte stream you read from; ``async for chunk in stream`` reads until EOF."""

    __slots__ = ()

    @abstractmethod
    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Wait for some data and return at most *max_bytes* of it (any amount if
        None); ``b""`` means end of file. Only one task may call it at a time."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes | bytearray:
        chunk = await self.receive_some()
        if chunk:
            return chunk
        raise StopAsyncIteration


class Stream(SendStream, ReceiveStream):
    """A bidirectional byte stream."""

    __slots__ = ()


class HalfCloseableStream(Stream):
    """A bidirectional byte stream whose send side can be closed on its own."""

    __slots__ = ()

    @abstractmethod
    async def send_eof(self) -> None:
        """Close the send side (the peer reads EOF) while still allowing receives.
        Idempotent; a ``send_all`` afterwards raises ``ClosedResourceError``."""


T = TypeVar("T")
ReceiveType = TypeVar("ReceiveType", covariant=True)
SendType = TypeVar("SendType", contravariant=True)
T_resource = TypeVar("T_resource", bound=AsyncResource, covariant=True)


class Listener(AsyncResource, Generic[T_resource]):
    """Something that accepts incoming connections, each as a resource (usually a
    ``Stream``)."""

    __slots__ = ()

    @abstractmethod
    async def accept(self) -> T_resource:
        """Wait for the next connection and return it. Raises ``ClosedResourceError``
        if the listener was closed, ``BusyResourceError`` if another task is already
        accepting on it."""


class SendChannel(AsyncResource, Generic[SendType]):
    """The sending end of a channel of Python objects."""

    __slots__ = ()

    @abstractmethod
    async def send(self, value: SendType) -> None:
        """Send *value*, blocking while the channel applies backpressure.

        Raises ``BrokenResourceError`` if the receiving side is closed,
        ``ClosedResourceError`` if this end is (or gets) closed, ``BusyResourceError``
        for channels that allow only one sender at a time.
        """


class ReceiveChannel(AsyncResource, Generic[ReceiveType]):
    """The receiving end of a channel of Python objects; ``async for value in
    channel`` receives until ``EndOfChannel``."""

    __slots__ = ()

    @abstractmethod
    async def receive(self) -> ReceiveType:
        """Wait for the next value and return it.

        Raises ``EndOfChannel`` once every sender is closed and nothing is left,
        ``ClosedResourceError`` if this end is (or gets) closed, ``BrokenResourceError``
        if the channel broke, ``BusyResourceError`` for channels that allow only one
        receiver at a time.
        """

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ReceiveType:
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None


class Channel(SendChannel[T], ReceiveChannel[T]):
    """Both ends of a channel in one object."""

    __slots__ = ()
