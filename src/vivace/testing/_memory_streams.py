"""In-memory byte streams for tests: the buffered ``MemorySendStream`` /
``MemoryReceiveStream`` (with hooks, pumped by ``memory_stream_pump``) and the unbuffered
lockstep pair.

Design notes
------------
* ``_ByteBuffer`` is one direction of a virtual connection: an unbounded ``bytearray``
  plus an "end of data" flag. Readers park on a ParkingLot; every ``put`` or ``close``
  wakes them all and each re-checks its condition in a loop, so a spurious wakeup (an
  empty ``put``) costs a loop turn, never a wrong answer. Only one reader at a time
  (``OneAtATime``), which keeps the "who gets the bytes" question trivial.
* The memory streams run two checkpoints before touching their buffer. The first makes a
  concurrent second caller (started in the same batch) hit the busy guard; the second
  widens that window across batches. Either way nothing has happened yet if the call is
  cancelled there.
* Hooks are plain attributes, read at call time, so tests may swap them mid-stream.
* The lockstep queue holds at most the bytes of the ``send_all`` in flight: the sender
  parks until a receiver has taken all of them. Both sides re-check "closed" after every
  wakeup, because closing either end wakes everyone.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

from .._abc import ReceiveStream, SendStream
from .._busy import OneAtATime
from .._core import (
    BrokenResourceError,
    ClosedResourceError,
    ParkingLot,
    WouldBlock,
    checkpoint,
    final,
)
from .._highlevel_generic import StapledStream

AsyncHook: TypeAlias = Callable[[], Awaitable[object]]
SyncHook: TypeAlias = Callable[[], object]
SendStreamT = TypeVar("SendStreamT", bound=SendStream)
ReceiveStreamT = TypeVar("ReceiveStreamT", bound=ReceiveStream)


def _validated_max_bytes(max_bytes: int | None) -> int | None:
    if max_bytes is None:
        return None
    max_bytes = operator.index(max_bytes)  # TypeError for floats and other non-ints
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    return max_bytes


class _ByteBuffer:
    """One direction of an in-memory connection. After ``close()`` (the writer's EOF),
    ``put`` raises ClosedResourceError and reads drain what is left, then return an
    empty bytearray forever."""

    __slots__ = ("_data", "_eof", "_lot", "_reader_guard")

    def __init__(self) -> None:
        self._data = bytearray()
        self._eof = False
        self._lot = ParkingLot()
        self._reader_guard = OneAtATime("another task is already reading from this buffer")

    def close(self) -> None:
        self._eof = True
        self._lot.unpark_all()

    def close_and_discard(self) -> None:
        self._data.clear()
        self.close()

    def put(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof:
            raise ClosedResourceError("this virtual connection was closed")
        self._data += data
        if self._data:
            self._lot.unpark_all()

    def _take(self, max_bytes: int | None) -> bytearray:
        end = len(self._data) if max_bytes is None else max_bytes
        chunk = self._data[:end]
        del self._data[:end]
        return chunk

    def get_nowait(self, max_bytes: int | None = None) -> bytearray:
        with self._reader_guard:
            max_bytes = _validated_max_bytes(max_bytes)
            if not self._data and not self._eof:
                raise WouldBlock
            return self._take(max_bytes)

    async def get(self, max_bytes: int | None = None) -> bytearray:
        with self._reader_guard:
            max_bytes = _validated_max_bytes(max_bytes)
            if self._data or self._eof:
                await checkpoint()
            else:
                # park() is itself the checkpoint; loop in case we were woken by
                # something that left the buffer empty.
                while not self._data and not self._eof:
                    await self._lot.park()
            return self._take(max_bytes)


# ---------------------------------------------------------------- buffered streams


@final
class MemorySendStream(SendStream):
    """A ``SendStream`` that writes into an unbounded in-memory buffer, which the test
    drains with :meth:`get_data` / :meth:`get_data_nowait`.

    The three hooks are optional and may be replaced at any time through the attributes
    of the same name:

    * ``send_all_hook`` -- async, awaited at the end of every :meth:`send_all`, after the
      data is in the buffer;
    * ``wait_send_all_might_not_block_hook`` -- async, awaited by
      :meth:`wait_send_all_might_not_block`;
    * ``close_hook`` -- synchronous, called by :meth:`close` and :meth:`aclose` after the
      stream is marked closed.
    """

    def __init__(
        self,
        send_all_hook: AsyncHook | None = None,
        wait_send_all_might_not_block_hook: AsyncHook | None = None,
        close_hook: SyncHook | None = None,
    ) -> None:
        self._guard = OneAtATime("another task is already using this stream's send side")
        self._buffer = _ByteBuffer()
        self.send_all_hook = send_all_hook
        self.wait_send_all_might_not_block_hook = wait_send_all_might_not_block_hook
        self.close_hook = close_hook

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Append *data* to the internal buffer, then await ``send_all_hook`` if set.

        Raises ClosedResourceError after :meth:`close`, BusyResourceError if another task
        is in ``send_all`` or ``wait_send_all_might_not_block``.
        """
        with self._guard:
            await checkpoint()
            await checkpoint()
            self._buffer.put(data)
            hook = self.send_all_hook
            if hook is not None:
                await hook()

    async def wait_send_all_might_not_block(self) -> None:
        """Await ``wait_send_all_might_not_block_hook`` if set; otherwise just a
        checkpoint (the buffer never fills up). Raises ClosedResourceError after
        :meth:`close`."""
        with self._guard:
            await checkpoint()
            await checkpoint()
            # An empty put changes nothing but raises if the stream is closed.
            self._buffer.put(b"")
            hook = self.wait_send_all_might_not_block_hook
            if hook is not None:
                await hook()

    def close(self) -> None:
        """Mark the stream closed (readers of the buffer see EOF once it is drained),
        then call ``close_hook`` if set. Idempotent."""
        self._buffer.close()
        hook = self.close_hook
        if hook is not None:
            hook()

    async def aclose(self) -> None:
        """:meth:`close`, then a checkpoint (the stream is closed even if that
        checkpoint raises Cancelled)."""
        self.close()
        await checkpoint()

    async def get_data(self, max_bytes: int | None = None) -> bytearray:
        """Take up to *max_bytes* (all, if None) from the buffer, waiting until there is
        at least one byte. Returns an empty bytearray once the stream is closed and the
        buffer is drained."""
        return await self._buffer.get(max_bytes)

    def get_data_nowait(self, max_bytes: int | None = None) -> bytearray:
        """Like :meth:`get_data`, but raise WouldBlock instead of waiting."""
        return self._buffer.get_nowait(max_bytes)


@final
class MemoryReceiveStream(ReceiveStream):
    """A ``ReceiveStream`` that reads from an in-memory buffer, which the test fills
    with :meth:`put_data` and ends with :meth:`put_eof`.

    Optional hooks, replaceable through the attributes of the same name:

    * ``receive_some_hook`` -- async, awaited by every :meth:`receive_some` before it
      looks at the buffer (so it may put data there);
    * ``close_hook`` -- synchronous, called by :meth:`close` and :meth:`aclose`.
    """

    def __init__(
        self,
        receive_some_hook: AsyncHook | None = None,
        close_hook: SyncHook | None = None,
    ) -> None:
        self._guard = OneAtATime("another task is already using this stream's receive side")
        self._buffer = _ByteBuffer()
        # The buffer's EOF flag records the peer's EOF; this records our own close.
        self._closed = False
        self.receive_some_hook = receive_some_hook
        self.close_hook = close_hook

    async def receive_some(self, max_bytes: int | None = None) -> bytearray:
        """Await ``receive_some_hook`` if set, then return up to *max_bytes* (any amount
        if None) from the buffer, waiting for data if it is empty. Returns an empty
        bytearray after :meth:`put_eof` once the buffer is drained.

        Raises ClosedResourceError if this stream is (or gets, while waiting) closed,
        BusyResourceError if another task is already receiving.
        """
        with self._guard:
            await checkpoint()
            await checkpoint()
            if self._closed:
                raise ClosedResourceError("this stream was closed")
            hook = self.receive_some_hook
            if hook is not None:
                await hook()
            data = await self._buffer.get(max_bytes)
            # close() wakes a blocked reader by ending the buffer: tell that apart from
            # a real EOF.
            if self._closed:
                raise ClosedResourceError("this stream was closed while receiving")
            return data

    def close(self) -> None:
        """Mark the stream closed and discard any data still buffered, then call
        ``close_hook`` if set. Idempotent."""
        self._closed = True
        self._buffer.close_and_discard()
        hook = self.close_hook
        if hook is not None:
            hook()

    async def aclose(self) -> None:
        """:meth:`close`, then a checkpoint."""
        self.close()
        await checkpoint()

    def put_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append *data* to the buffer. Raises ClosedResourceError after
        :meth:`put_eof` or :meth:`close`."""
        self._buffer.put(data)

    def put_eof(self) -> None:
        """Mark the end of the data: once the buffer is drained, :meth:`receive_some`
        returns ``b""``. Idempotent."""
        self._buffer.close()


def memory_stream_pump(
    memory_send_stream: MemorySendStream,
    memory_receive_stream: MemoryReceiveStream,
    *,
    max_bytes: int | None = None,
) -> bool:
    """Move up to *max_bytes* (all, if None) from *memory_send_stream*'s buffer into
    *memory_receive_stream*'s. A closed, drained send stream is passed on as EOF.

    Returns True if it moved something (data or the EOF), False if there was nothing to
    move. Raises BrokenResourceError if the receive stream is closed (the bytes taken are
    then lost, as on a broken connection).
    """
    try:
        chunk = memory_send_stream.get_data_nowait(max_bytes)
    except WouldBlock:
        return False
    try:
        if chunk:
            memory_receive_stream.put_data(chunk)
        else:
            memory_receive_stream.put_eof()
    except ClosedResourceError:
        raise BrokenResourceError("the MemoryReceiveStream was closed") from None
    return True


def memory_stream_one_way_pair() -> tuple[MemorySendStream, MemoryReceiveStream]:
    """Return a connected ``(MemorySendStream, MemoryReceiveStream)`` with an unbounded
    buffer: an in-process stand-in for a pipe, data flowing left to right.

    The send stream's ``send_all_hook`` and ``close_hook`` call
    :func:`memory_stream_pump`, so whatever is sent (and the close, as EOF) arrives at
    once. Replace the hooks to simulate other networks: for instance set
    ``send_all_hook = None`` to stall the connection, and pump by hand later.
    """
    send_stream = MemorySendStream()
    receive_stream = MemoryReceiveStream()

    def pump() -> None:
        memory_stream_pump(send_stream, receive_stream)

    async def pump_after_send() -> None:
        pump()

    send_stream.send_all_hook = pump_after_send
    send_stream.close_hook = pump
    return send_stream, receive_stream


def _stapled_pair(
    make_one_way: Callable[[], tuple[SendStreamT, ReceiveStreamT]],
) -> tuple[
    StapledStream[SendStreamT, ReceiveStreamT],
    StapledStream[SendStreamT, ReceiveStreamT],
]:
    left_to_right_send, left_to_right_receive = make_one_way()
    right_to_left_send, right_to_left_receive = make_one_way()
    left = StapledStream(left_to_right_send, right_to_left_receive)
    right = StapledStream(right_to_left_send, left_to_right_receive)
    return left, right


def memory_stream_pair() -> tuple[
    StapledStream[MemorySendStream, MemoryReceiveStream],
    StapledStream[MemorySendStream, MemoryReceiveStream],
]:
    """Return two connected bidirectional streams with unbounded buffering: an
    in-process stand-in for ``socket.socketpair()``.

    Each is a :class:`~vivace.StapledStream` of a ``MemorySendStream`` and a
    ``MemoryReceiveStream``, built from two :func:`memory_stream_one_way_pair` pipes.
    ``send_eof`` closes the send side, so the peer reads ``b""``. Every piece is public,
    so tests can rewire it; to deliver one byte per second from left to right::

        left, right = memory_stream_pair()

        async def trickle():
            while memory_stream_pump(left.send_stream, right.receive_stream, max_bytes=1):
                await vivace.sleep(1)

        left.send_stream.send_all_hook = trickle

    (run such tests under ``MockClock(autojump_threshold=0)`` so the sleeps cost
    nothing).
    """
    return _stapled_pair(memory_stream_one_way_pair)


# ---------------------------------------------------------------- lockstep streams


class _LockstepQueue:
    """Shared state of an unbuffered one-way stream."""

    __slots__ = (
        "_in_flight",
        "_receive_guard",
        "_receiver_closed",
        "_receiver_waiting",
        "_send_guard",
        "_sender_closed",
        "_wakeups",
    )

    def __init__(self) -> None:
        self._in_flight = bytearray()
        self._sender_closed = False
        self._receiver_closed = False
        self._receiver_waiting = False
        self._wakeups = ParkingLot()
        self._send_guard = OneAtATime("another task is already using this stream's send side")
        self._receive_guard = OneAtATime("another task is already receiving on this stream")

    def _changed(self) -> None:
        self._wakeups.unpark_all()

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        # Closing either end ends every wait: each caller then decides what that means
        # for it. The final checkpoint makes the call a checkpoint even when it did not
        # park.
        while not (condition() or self._sender_closed or self._receiver_closed):
            await self._wakeups.park()
        await checkpoint()

    def close_sender(self) -> None:
        self._sender_closed = True
        self._changed()

    def close_receiver(self) -> None:
        self._receiver_closed = True
        self._changed()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_guard:
            if self._sender_closed:
                raise ClosedResourceError("this stream was closed")
            if self._receiver_closed:
                raise BrokenResourceError("the receiving side was closed")
            # Anything left by an earlier, cancelled send_all is still in flight and
            # goes first.
            self._in_flight += data
            self._changed()
            await self._wait_until(lambda: not self._in_flight)
            if self._sender_closed:
                raise ClosedResourceError("this stream was closed while sending")
            if self._in_flight and self._receiver_closed:
                raise BrokenResourceError("the receiving side was closed while sending")

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_guard:
            if self._sender_closed:
                raise ClosedResourceError("this stream was closed")
            if self._receiver_closed:
                # send_all would fail at once rather than block.
                await checkpoint()
                return
            await self._wait_until(lambda: self._receiver_waiting)
            if self._sender_closed:
                raise ClosedResourceError("this stream was closed while waiting")

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        with self._receive_guard:
            max_bytes = _validated_max_bytes(max_bytes)
            if self._receiver_closed:
                raise ClosedResourceError("this stream was closed")
            self._receiver_waiting = True
            self._changed()  # a sender in wait_send_all_might_not_block may go now
            try:
                await self._wait_until(lambda: bool(self._in_flight))
            finally:
                self._receiver_waiting = False
            if self._receiver_closed:
                raise ClosedResourceError("this stream was closed while receiving")
            if not self._in_flight:
                # Woken with nothing to read: the sender closed.
                return b""
            end = len(self._in_flight) if max_bytes is None else max_bytes
            chunk = self._in_flight[:end]
            del self._in_flight[:end]
            self._changed()  # the sender may be waiting for the queue to empty
            return chunk


class _LockstepSendStream(SendStream):
    def __init__(self, queue: _LockstepQueue) -> None:
        self._queue = queue

    def close(self) -> None:
        self._queue.close_sender()

    async def aclose(self) -> None:
        self.close()
        await checkpoint()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._queue.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._queue.wait_send_all_might_not_block()


class _LockstepReceiveStream(ReceiveStream):
    def __init__(self, queue: _LockstepQueue) -> None:
        self._queue = queue

    def close(self) -> None:
        self._queue.close_receiver()

    async def aclose(self) -> None:
        self.close()
        await checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._queue.receive_some(max_bytes)


def lockstep_stream_one_way_pair() -> tuple[SendStream, ReceiveStream]:
    """Return a connected ``(SendStream, ReceiveStream)`` with no buffering at all: each
    ``send_all`` blocks until ``receive_some`` calls have taken every byte of it, and
    ``wait_send_all_might_not_block`` blocks until a receiver is waiting.

    Useful to test flow control at its extreme, and as the "clogged" maker for
    :func:`check_one_way_stream`. Both ends also have a synchronous ``close()``.
    """
    queue = _LockstepQueue()
    return _LockstepSendStream(queue), _LockstepReceiveStream(queue)


def lockstep_stream_pair() -> tuple[
    StapledStream[SendStream, ReceiveStream],
    StapledStream[SendStream, ReceiveStream],
]:
    """Return two connected bidirectional lockstep streams: two
    :func:`lockstep_stream_one_way_pair` pipes stapled together with
    :class:`~vivace.StapledStream`."""
    return _stapled_pair(lockstep_stream_one_way_pair)
