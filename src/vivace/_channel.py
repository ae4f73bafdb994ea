"""Memory channels (``open_memory_channel``) and ``as_safe_channel``.

Design notes
------------
All clones of one channel share a ``ChannelState`` (the buffer, the counts of open
handles, and the FIFO wait queues of blocked senders and receivers); the state and the
hot operations of both handles -- send/receive, their ``*_nowait`` forms, ``close`` and
``async for`` -- are the engine's (``ChannelState``, ``SendChannelBase``,
``ReceiveChannelBase``: C awaitables in the compiled engine, see ``_core/_sync_py`` and
``_core/_sync_channel_py`` for the rules). The handle classes here add the rest:
cloning, statistics, reprs, ``aclose``.

Invariants (kept by the engine): receivers wait only while the buffer is empty, senders
only while it is full; a send that finds a waiting receiver hands the item straight to
it, and a receive that finds a waiting sender takes that sender's item (through the
buffer, to keep FIFO order) before waking it. A cancelled waiter leaves its queue
before anything is handed to it, so ``Cancelled`` always means "nothing happened". Each
awaited operation is a checkpoint: a cancel point before anything happens and, when it
completed without blocking, a cancel-shielded schedule point.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import wraps
from math import inf
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._abc import ReceiveChannel, ReceiveType, SendChannel, SendType
from ._core import (
    BrokenResourceError,
    Cancelled,
    ChannelState,
    ClosedResourceError,
    NoPublicConstructor,
    ReceiveChannelBase,
    SendChannelBase,
    checkpoint,
    enable_ki_protection,
    final,
    open_nursery,
)
from ._sync import Semaphore

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType
    from typing import ParamSpec, Self

    P = ParamSpec("P")

T = TypeVar("T")


# Written as a class (a tuple subclass whose __new__ returns a plain tuple) so that
# ``open_memory_channel[int](0)`` works at runtime, as it does in trio.
@final
class open_memory_channel(tuple["MemorySendChannel[T]", "MemoryReceiveChannel[T]"]):
    """Create an in-process channel and return ``(send_channel, receive_channel)``
    (data flows left to right).

    *max_buffer_size* (an int >= 0, or ``math.inf``) is how many items may wait in the
    channel before ``send`` blocks; 0 makes every send wait for a receiver. When in
    doubt, use 0: a small buffer propagates backpressure promptly.

    Both ends can be cloned (for several producers/consumers) and closed
    (``close()``, ``aclose()``, ``with``/``async with``); receivers see
    ``EndOfChannel`` once every send handle is closed and the buffer is drained, senders
    get ``BrokenResourceError`` once every receive handle is closed. Every operation is
    atomic under cancellation: a cancelled ``send`` sent nothing, a cancelled
    ``receive`` took nothing. ``statistics()`` on either end returns a
    ``MemoryChannelStatistics``.
    """

    def __new__(  # type: ignore[misc]
        cls, max_buffer_size: int | float
    ) -> tuple[MemorySendChannel[T], MemoryReceiveChannel[T]]:
        if max_buffer_size != inf and not isinstance(max_buffer_size, int):
            raise TypeError("max_buffer_size must be an integer or math.inf")
        if max_buffer_size < 0:
            raise ValueError("max_buffer_size must be >= 0")
        state = ChannelState(max_buffer_size)
        return (MemorySendChannel[T]._create(state), MemoryReceiveChannel[T]._create(state))

    def __init__(self, max_buffer_size: int | float) -> None:  # for type checkers only
        ...


@dataclass(frozen=True, slots=True)
class MemoryChannelStatistics:
    """A snapshot of a memory channel, shared by all its clones.

    ``current_buffer_used``: items in the buffer; ``max_buffer_size``: its capacity;
    ``open_send_channels`` / ``open_receive_channels``: open handles of each kind;
    ``tasks_waiting_send`` / ``tasks_waiting_receive``: tasks blocked in ``send`` /
    ``receive`` (over all clones); ``peak_buffer_used``: the most items ever buffered
    at once.
    """

    current_buffer_used: int
    max_buffer_size: float  # int or float (math.inf for unbounded)
    open_send_channels: int
    open_receive_channels: int
    tasks_waiting_send: int
    tasks_waiting_receive: int
    peak_buffer_used: int


def _statistics(state: ChannelState) -> MemoryChannelStatistics:
    return MemoryChannelStatistics(
        current_buffer_used=state.current_buffer_used,
        max_buffer_size=state.max_buffer_size,
        open_send_channels=state.open_send_channels,
        open_receive_channels=state.open_receive_channels,
        tasks_waiting_send=state.tasks_waiting_send,
        tasks_waiting_receive=state.tasks_waiting_receive,
        peak_buffer_used=state.peak_buffer_used,
    )


def _closed_error(what: str) -> ClosedResourceError:
    return ClosedResourceError(f"this {what} channel is closed")


class _ClosesOnWithExit:
    """Mixin for channel handles that also work as *synchronous* context managers:
    leaving the ``with`` block calls the handle's (non-blocking) ``close()``."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None,
        exc_value: BaseException | None, traceback: TracebackType | None,
    ) -> None:
        self.close()


@final
class MemorySendChannel(
    SendChannelBase,
    _ClosesOnWithExit,
    SendChannel[SendType],
    metaclass=NoPublicConstructor,
):
    """The sending end of a memory channel (made by ``open_memory_channel``).

    ``send`` / ``send_nowait`` / ``close`` are the engine's (``SendChannelBase``).
    """

    __slots__ = ()

    if TYPE_CHECKING:
        # The engine's methods take any object; type checkers see the channel's type.
        def send_nowait(self, value: SendType) -> None: ...
        async def send(self, value: SendType) -> None: ...

    def __repr__(self) -> str:
        return f"<send channel at {id(self):#x}, using buffer at {id(self._state):#x}>"

    def statistics(self) -> MemoryChannelStatistics:
        """The shared ``MemoryChannelStatistics`` of this channel."""
        return _statistics(self._state)

    @enable_ki_protection
    def clone(self) -> MemorySendChannel[SendType]:
        """Return a new send handle on the same channel. Receivers see EndOfChannel only
        after every handle is closed, so give each producer its own clone and have it
        close that clone when done. ClosedResourceError if this handle is closed."""
        if self._closed:
            raise _closed_error("send")
        return MemorySendChannel._create(self._state)

    @enable_ki_protection
    async def aclose(self) -> None:
        """``close()``, then a checkpoint."""
        self.close()
        await checkpoint()


@final
class MemoryReceiveChannel(
    ReceiveChannelBase,
    _ClosesOnWithExit,
    ReceiveChannel[ReceiveType],
    metaclass=NoPublicConstructor,
):
    """The receiving end of a memory channel (made by ``open_memory_channel``);
    ``async for value in channel`` receives until EndOfChannel.

    ``receive`` / ``receive_nowait`` / ``close`` / ``__anext__`` are the engine's
    (``ReceiveChannelBase``).
    """

    __slots__ = ()

    if TYPE_CHECKING:
        # The engine's methods return any object; type checkers see the channel's type.
        def receive_nowait(self) -> ReceiveType: ...
        async def receive(self) -> ReceiveType: ...
        async def __anext__(self) -> ReceiveType: ...

    def __repr__(self) -> str:
        return f"<receive channel at {id(self):#x}, using buffer at {id(self._state):#x}>"

    def statistics(self) -> MemoryChannelStatistics:
        """The shared ``MemoryChannelStatistics`` of this channel."""
        return _statistics(self._state)

    @enable_ki_protection
    def clone(self) -> MemoryReceiveChannel[ReceiveType]:
        """Return a new receive handle on the same channel. Clones *share* the items
        (each item is received once, by one of them); the channel counts as closed
        for senders only when every handle is closed. ClosedResourceError if this
        handle is closed."""
        if self._closed:
            raise _closed_error("receive")
        return MemoryReceiveChannel._create(self._state)

    @enable_ki_protection
    async def aclose(self) -> None:
        """``close()``, then a checkpoint."""
        self.close()
        await checkpoint()


# ---------------------------------------------------------------- as_safe_channel


class _MultipleErrors(Exception):
    pass


def _reraise_keeping_context(exc: BaseException) -> NoReturn:
    # ``raise exc`` inside an except block would overwrite exc.__context__ with the
    # group being handled; keep the one it had.
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


def _raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the one meaningful exception of *group*: a KeyboardInterrupt or
    SystemExit at once (as a fresh one caused by the group); else its only
    non-Cancelled member; else its first Cancelled. Two or more non-Cancelled members
    raise _MultipleErrors."""
    for exc in group.exceptions:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise type(exc)(*exc.args) from group
    first_cancelled: BaseException | None = None
    single: BaseException | None = None
    for exc in group.exceptions:
        if isinstance(exc, Cancelled):
            if first_cancelled is None:
                first_cancelled = exc
        elif single is None:
            single = exc
        else:
            raise _MultipleErrors
    chosen = single if single is not None else first_cancelled
    assert chosen is not None, "empty exception group"
    _reraise_keeping_context(chosen)


def _count_leaves(group: BaseException | None) -> int:
    if group is None:
        return 0
    if isinstance(group, BaseExceptionGroup):
        return sum(_count_leaves(exc) for exc in group.exceptions)
    return 1


async def _close_generator(agen: AsyncGenerator[Any, None]) -> None:
    """``agen.aclose()``, also accepting the GeneratorExit we threw in coming back
    wrapped in an exception group (a nursery inside the generator does that)."""
    try:
        await agen.aclose()
    except BaseExceptionGroup as group:
        genexits, others = group.split(GeneratorExit)
        if _count_leaves(genexits) > 1:
            # Only one GeneratorExit was thrown in; another came from elsewhere and
            # silently dropping it would hide a bug.
            problem = AssertionError("More than one GeneratorExit found.")
            if others is None:
                others = group.derive([problem])
            else:
                others = others.derive([*others.exceptions, problem])
        if others is not None:
            raise others from None


async def _pump(
    agen: AsyncGenerator[T, None],
    send_chan: MemorySendChannel[T],
    demand: Semaphore,
    task_status: Any,
) -> None:
    # A synchronous ``with``: ``async with`` would checkpoint on exit and could turn a
    # pending error into Cancelled.
    state = send_chan._state
    with send_chan:
        try:
            task_status.started()
            # Advance the generator only when a receiver asked for an item, and stop as
            # soon as nobody is left to receive (no point computing an unsendable item).
            while await _demand_is_live(demand, state):
                try:
                    item = await agen.__anext__()
                except StopAsyncIteration:
                    break
                try:
                    await send_chan.send(item)
                except BrokenResourceError:
                    # Every receiver closed while the item was being produced.
                    break
        finally:
            await _close_generator(agen)


async def _demand_is_live(demand: Semaphore, state: ChannelState) -> bool:
    """Wait for a receiver to ask for an item; False if all receivers are gone."""
    await demand.acquire()
    return state.open_receive_channels > 0


class _SafeReceiveChannel(_ClosesOnWithExit, ReceiveChannel[T]):
    """What ``as_safe_channel`` hands out: each ``receive`` lets the generator produce
    exactly one more item."""

    __slots__ = ("_demand", "_receive_channel")

    def __init__(self, receive_channel: MemoryReceiveChannel[T], demand: Semaphore) -> None:
        self._receive_channel = receive_channel
        self._demand = demand

    async def receive(self) -> T:
        self._demand.release()
        return await self._receive_channel.receive()

    async def aclose(self) -> None:
        await self._receive_channel.aclose()

    def close(self) -> None:
        self._receive_channel.close()


def as_safe_channel(
    fn: Callable[P, AsyncGenerator[T, None]],
) -> Callable[P, AbstractAsyncContextManager[ReceiveChannel[T]]]:
    """Decorator: turn an async generator function into one returning an async context
    manager that yields a ``ReceiveChannel`` of the generator's items.

    The generator runs in a background task of a nursery owned by the context manager,
    so cancel scopes and nurseries inside it stay properly nested, and it is closed
    promptly when the ``async with`` block exits. It produces one item per ``receive``
    (zero buffering). Use it as::

        @as_safe_channel
        async def numbers(n):
            for i in range(n):
                yield i

        async with numbers(3) as channel:
            async for i in channel:
                ...

    An error from the generator or the block comes out unwrapped when it is the only
    one; if both fail, both come out in an ExceptionGroup.
    """

    @asynccontextmanager
    @wraps(fn)
    async def context_manager(
        *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[_SafeReceiveChannel[T]]:
        send_chan, receive_chan = open_memory_channel[T](0)
        try:
            async with open_nursery(strict_exception_groups=True) as nursery:
                agen = fn(*args, **kwargs)
                demand = Semaphore(0)
                # start(), not start_soon(): once it returns, _pump owns send_chan and
                # agen and will close both whatever happens.
                await nursery.start(_pump, agen, send_chan, demand)
                with _SafeReceiveChannel(receive_chan, demand) as channel:
                    yield channel
                nursery.cancel_scope.cancel("exited the as_safe_channel context manager")
        except BaseExceptionGroup as group:
            try:
                _raise_single(group)
            except _MultipleErrors:
                group.add_note(
                    "Encountered exception during cleanup of generator object, as "
                    "well as exception in the contextmanager body - unable to unwrap."
                )
                raise group from None

    return context_manager
