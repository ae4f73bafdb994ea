"""Stream helpers that work on any ``abc`` stream: ``StapledStream`` and
``aclose_forcefully``."""

from __future__ import annotations

from typing import Generic, TypeVar

from ._abc import AsyncResource, HalfCloseableStream, ReceiveStream, SendStream
from ._core import CancelScope, final

SendStreamT = TypeVar("SendStreamT", bound=SendStream)
ReceiveStreamT = TypeVar("ReceiveStreamT", bound=ReceiveStream)


async def aclose_forcefully(resource: AsyncResource) -> None:
    """Close *resource* at once, skipping any graceful shutdown.

    It calls ``resource.aclose()`` inside an already-cancelled scope: an
    ``AsyncResource`` must still close itself when its ``aclose`` is cancelled, just
    less politely (for example, a TLS stream skips the close_notify exchange). Handy on
    error paths that must not block. It is a checkpoint but cannot block indefinitely.
    """
    with CancelScope() as scope:
        scope.cancel(reason="cancelled during aclose_forcefully")
        await resource.aclose()


@final
class StapledStream(HalfCloseableStream, Generic[SendStreamT, ReceiveStreamT]):
    """One bidirectional stream made of a ``SendStream`` and a ``ReceiveStream``.

    ``send_all`` and ``wait_send_all_might_not_block`` go to :attr:`send_stream`,
    ``receive_some`` to :attr:`receive_stream`; ``send_eof`` calls
    ``send_stream.send_eof()`` if it has one, else closes the send stream; ``aclose``
    closes both (the receive stream even if closing the send stream failed).
    """

    def __init__(self, send_stream: SendStreamT, receive_stream: ReceiveStreamT) -> None:
        self.send_stream = send_stream
        self.receive_stream = receive_stream

    def __repr__(self) -> str:
        return (
            f"StapledStream(send_stream={self.send_stream!r}, "
            f"receive_stream={self.receive_stream!r})"
        )

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """``await self.send_stream.send_all(data)``."""
        return await self.send_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """``await self.send_stream.wait_send_all_might_not_block()``."""
        return await self.send_stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Half-close: ``send_stream.send_eof()`` when the send stream supports it,
        otherwise ``send_stream.aclose()``."""
        half_close = getattr(self.send_stream, "send_eof", None)
        if half_close is None:
            await self.send_stream.aclose()
        else:
            await half_close()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """``await self.receive_stream.receive_some(max_bytes)``."""
        chunk = await self.receive_stream.receive_some(max_bytes)
        return chunk

    async def aclose(self) -> None:
        """Close the send stream, then the receive stream (even if the first failed)."""
        send_side, receive_side = self.send_stream, self.receive_stream
        try:
            await send_side.aclose()
        finally:
            await receive_side.aclose()
