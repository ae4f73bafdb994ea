"""Memory channels (``open_memory_channel``) and ``as_safe_channel``.

Design notes
------------
All clones of one channel share a ``_MemoryChannelState``: the buffer (a deque), the
counts of open send/receive handles, and two FIFO queues of parked tasks --
``send_tasks`` (task -> the value it is trying to send) and ``receive_tasks``. They are
OrderedDicts: O(1) append, O(1) pop of the oldest, and O(1) removal of an arbitrary
task when its wait is cancelled. (A plain dict's "pop the first key" is O(number of
deleted keys before it), which makes a long queue quadratic.)

Invariants: receivers wait only while the buffer is empty; senders wait only while it
is full. Hence a send that finds a parked receiver hands the value *directly* to it:
the receiver is rescheduled with ``Value(item)``, so from that instant it can no longer
be cancelled and the item cannot be lost. Symmetrically, a receive that finds a parked
sender takes its value (through the buffer, to keep FIFO order) and reschedules the
sender with success. A cancelled waiter is removed from its queue by its abort function
before anything was handed to it, so ``Cancelled`` always means "nothing happened".

A parked task's ``custom_sleep_data`` is the *handle* it waits on, so that closing one
clone wakes exactly the tasks that used that clone (closing is rare, so we scan the
queue then rather than keep per-handle sets on the hot path).

Each awaited operation is a checkpoint: a cancel point before anything happens
(``checkpoint_if_cancelled``) and, when it completed without blocking, a
cancel-shielded schedule point (the operation already happened and must not be undone).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import wraps
from math import inf
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from outcome import Error, Value

from ._abc import ReceiveChannel, ReceiveType, SendChannel, SendType
from ._core import (
    Abort,
    BrokenResourceError,
    Cancelled,
    ClosedResourceError,
    EndOfChannel,
    WouldBlock,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    current_task,
    enable_ki_protection,
    open_nursery,
    wait_task_rescheduled,
)
from ._sync import Semaphore
from ._util import NoPublicConstructor, final

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
        state: _MemoryChannelState[T] = _MemoryChannelState(max_buffer_size)
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


class _MemoryChannelState(Generic[T]):
    __slots__ = (
        "data",
        "max_buffer_size",
        "open_receive_channels",
        "open_send_channels",
        "peak_buffer_used",
        "receive_tasks",
        "send_tasks",
    )

    def __init__(self, max_buffer_size: int | float) -> None:
        self.max_buffer_size = max_buffer_size
        self.data: deque[T] = deque()
        self.open_send_channels = 0
        self.open_receive_channels = 0
        self.send_tasks: OrderedDict[Any, T] = OrderedDict()
        self.receive_tasks: OrderedDict[Any, None] = OrderedDict()
        self.peak_buffer_used = 0

    def statistics(self) -> MemoryChannelStatistics:
        # Field order matches MemoryChannelStatistics' declaration.
        return MemoryChannelStatistics(
            len(self.data),
            self.max_buffer_size,
            self.open_send_channels,
            self.open_receive_channels,
            len(self.send_tasks),
            len(self.receive_tasks),
            self.peak_buffer_used,
        )


def _closed_send() -> ClosedResourceError:
    return ClosedResourceError("this send channel is closed")


def _closed_receive() -> ClosedResourceError:
    return ClosedResourceError("this receive channel is closed")


def _broken() -> BrokenResourceError:
    return BrokenResourceError("every receive channel of this memory channel is closed")


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
class MemorySendChannel(_ClosesOnWithExit, SendChannel[SendType], metaclass=NoPublicConstructor):
    """The sending end of a memory channel (made by ``open_memory_channel``)."""

    __slots__ = ("__weakref__", "_closed", "_state")

    def __init__(self, state: _MemoryChannelState[SendType]) -> None:
        self._state = state
        self._closed = False
        state.open_send_channels += 1

    def __repr__(self) -> str:
        return f"<send channel at {id(self):#x}, using buffer at {id(self._state):#x}>"

    def statistics(self) -> MemoryChannelStatistics:
        """The shared ``MemoryChannelStatistics`` of this channel."""
        return self._state.statistics()

    @enable_ki_protection
    def send_nowait(self, value: SendType) -> None:
        """Send *value* without blocking: hand it to a waiting receiver or buffer it.

        Raises WouldBlock if the buffer is full, ClosedResourceError if this handle is
        closed, BrokenResourceError if every receive handle is closed.
        """
        if self._closed:
            raise _closed_send()
        state = self._state
        if not state.open_receive_channels:
            raise _broken()
        receivers = state.receive_tasks
        if receivers:
            task, _ = receivers.popitem(last=False)
            task._runner.reschedule(task, Value(value))
            return
        data = state.data
        if len(data) < state.max_buffer_size:
            data.append(value)
            if len(data) > state.peak_buffer_used:
                state.peak_buffer_used = len(data)
            return
        raise WouldBlock

    @enable_ki_protection
    async def send(self, value: SendType) -> None:
        """Send *value*, waiting while the buffer is full (and, with a zero-size buffer,
        until a receiver takes it). A checkpoint; Cancelled means nothing was sent.

        Raises ClosedResourceError if this handle is (or gets) closed,
        BrokenResourceError if every receive handle is (or gets) closed.
        """
        task = current_task()
        if task._cancel_status.effectively_cancelled or task._runner.ki_pending:
            await checkpoint_if_cancelled()  # raises if there is something to deliver
        else:
            task._cancel_points += 1
        if self._closed:
            raise _closed_send()
        state = self._state
        if not state.open_receive_channels:
            raise _broken()
        receivers = state.receive_tasks
        if receivers:
            receiver, _ = receivers.popitem(last=False)
            receiver._runner.reschedule(receiver, Value(value))
            await cancel_shielded_checkpoint()
            return
        data = state.data
        if len(data) < state.max_buffer_size:
            data.append(value)
            if len(data) > state.peak_buffer_used:
                state.peak_buffer_used = len(data)
            await cancel_shielded_checkpoint()
            return

        senders = state.send_tasks
        senders[task] = value
        task.custom_sleep_data = self

        def abort_fn(_: object) -> Abort:
            del senders[task]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort_fn)

    @enable_ki_protection
    def clone(self) -> MemorySendChannel[SendType]:
        """Return a new send handle on the same channel. Receivers see EndOfChannel only
        after every handle is closed, so give each producer its own clone and have it
        close that clone when done. ClosedResourceError if this handle is closed."""
        if self._closed:
            raise _closed_send()
        return MemorySendChannel._create(self._state)

    @enable_ki_protection
    def close(self) -> None:
        """Close this handle (idempotent, not a checkpoint). Tasks blocked in ``send``
        on it get ClosedResourceError; when the last send handle closes, blocked
        receivers get EndOfChannel."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        senders = state.send_tasks
        if senders:
            mine = [task for task in senders if task.custom_sleep_data is self]
            for task in mine:
                del senders[task]
                task._runner.reschedule(task, Error(_closed_send()))
        state.open_send_channels -= 1
        if state.open_send_channels == 0:
            receivers = state.receive_tasks
            while receivers:
                task, _ = receivers.popitem(last=False)
                task._runner.reschedule(task, Error(EndOfChannel()))

    @enable_ki_protection
    async def aclose(self) -> None:
        """``close()``, then a checkpoint."""
        self.close()
        await checkpoint()


@final
class MemoryReceiveChannel(
    _ClosesOnWithExit, ReceiveChannel[ReceiveType], metaclass=NoPublicConstructor
):
    """The receiving end of a memory channel (made by ``open_memory_channel``);
    ``async for value in channel`` receives until EndOfChannel."""

    __slots__ = ("__weakref__", "_closed", "_state")

    def __init__(self, state: _MemoryChannelState[ReceiveType]) -> None:
        self._state = state
        self._closed = False
        state.open_receive_channels += 1

    def __repr__(self) -> str:
        return f"<receive channel at {id(self):#x}, using buffer at {id(self._state):#x}>"

    def statistics(self) -> MemoryChannelStatistics:
        """The shared ``MemoryChannelStatistics`` of this channel."""
        return self._state.statistics()

    @enable_ki_protection
    def receive_nowait(self) -> ReceiveType:
        """Take the next item without blocking.

        Raises WouldBlock if there is none yet, EndOfChannel if there never will be
        (every send handle closed, buffer empty), ClosedResourceError if this handle
        is closed.
        """
        if self._closed:
            raise _closed_receive()
        state = self._state
        data = state.data
        senders = state.send_tasks
        if senders:
            # A sender waits only while the buffer is full: its value goes to the back,
            # we take from the front.
            task, value = senders.popitem(last=False)
            task._runner.reschedule(task)
            if data:
                data.append(value)
                return data.popleft()
            return value
        if data:
            return data.popleft()
        if not state.open_send_channels:
            raise EndOfChannel
        raise WouldBlock

    @enable_ki_protection
    async def receive(self) -> ReceiveType:
        """Take the next item, waiting for one if needed. A checkpoint; Cancelled means
        nothing was taken. Clones share the items: each item goes to one receiver.

        Raises EndOfChannel once every send handle is closed and the buffer is empty,
        ClosedResourceError if this handle is (or gets) closed.
        """
        task = current_task()
        if task._cancel_status.effectively_cancelled or task._runner.ki_pending:
            await checkpoint_if_cancelled()  # raises if there is something to deliver
        else:
            task._cancel_points += 1
        if self._closed:
            raise _closed_receive()
        state = self._state
        data = state.data
        senders = state.send_tasks
        if senders:
            sender, value = senders.popitem(last=False)
            sender._runner.reschedule(sender)
            if data:
                data.append(value)
                value = data.popleft()
            await cancel_shielded_checkpoint()
            return value
        if data:
            value = data.popleft()
            await cancel_shielded_checkpoint()
            return value
        if not state.open_send_channels:
            raise EndOfChannel

        receivers = state.receive_tasks
        receivers[task] = None
        task.custom_sleep_data = self

        def abort_fn(_: object) -> Abort:
            del receivers[task]
            return Abort.SUCCEEDED

        return await wait_task_rescheduled(abort_fn)

    async def __anext__(self) -> ReceiveType:
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None

    @enable_ki_protection
    def clone(self) -> MemoryReceiveChannel[ReceiveType]:
        """Return a new receive handle on the same channel. Clones *share* the items
        (each item is received once, by one of them); the channel counts as closed
        for senders only when every handle is closed. ClosedResourceError if this
        handle is closed."""
        if self._closed:
            raise _closed_receive()
        return MemoryReceiveChannel._create(self._state)

    @enable_ki_protection
    def close(self) -> None:
        """Close this handle (idempotent, not a checkpoint). Tasks blocked in
        ``receive`` on it get ClosedResourceError; when the last receive handle closes,
        blocked senders get BrokenResourceError and buffered items are dropped."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        receivers = state.receive_tasks
        if receivers:
            mine = [task for task in receivers if task.custom_sleep_data is self]
            for task in mine:
                del receivers[task]
                task._runner.reschedule(task, Error(_closed_receive()))
        state.open_receive_channels -= 1
        if state.open_receive_channels == 0:
            senders = state.send_tasks
            while senders:
                task, _ = senders.popitem(last=False)
                task._runner.reschedule(task, Error(_broken()))
            state.data.clear()

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


async def _demand_is_live(demand: Semaphore, state: _MemoryChannelState[Any]) -> bool:
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
