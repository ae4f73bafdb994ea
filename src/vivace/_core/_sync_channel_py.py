"""Memory-channel state and the hot halves of its two handles -- part of the reference
twin of ``_ext/_sync.pyx`` (its ``_sync_channel.pxi``); see ``_sync_py`` for the wait
queues and the hand-off rules.

Design notes
------------
All clones of a channel share one ``ChannelState``: the buffer, the counts of open
handles of each kind, and two wait queues (blocked senders, each waiter's ``value`` the
item it offers; blocked receivers, whose ``value`` is filled in by the hand-off).
Invariants: receivers wait only while the buffer is empty, senders only while it is
full. So a send that finds a waiting receiver gives it the item directly, and a receive
that finds a waiting sender takes that sender's item through the back of the buffer
(FIFO order) before waking it. A waiter's ``target`` is the handle it used, so closing
one clone wakes exactly the tasks blocked on that clone.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import outcome

from ._exceptions import BrokenResourceError, ClosedResourceError, EndOfChannel, WouldBlock
from ._kernel_py import cancel_shielded_checkpoint, checkpoint, wait_task_rescheduled
from ._ki import enable_ki_protection
from ._sync_py import _current_task, _passed_cancel_point, _Waiter, _WaitQueue, _wake

_Error = outcome.Error


def _closed_send() -> ClosedResourceError:
    return ClosedResourceError("this send channel is closed")


def _closed_receive() -> ClosedResourceError:
    return ClosedResourceError("this receive channel is closed")


def _broken() -> BrokenResourceError:
    return BrokenResourceError("every receive channel of this memory channel is closed")


class ChannelState:
    """What every clone of one memory channel shares."""

    __slots__ = (
        "_data",
        "_receivers",
        "_senders",
        "max_buffer_size",
        "open_receive_channels",
        "open_send_channels",
        "peak_buffer_used",
    )

    def __init__(self, max_buffer_size: int | float) -> None:
        self.max_buffer_size: int | float = max_buffer_size
        self._data: deque[Any] = deque()
        self.open_send_channels: int = 0
        self.open_receive_channels: int = 0
        self.peak_buffer_used: int = 0
        self._senders = _WaitQueue()
        self._receivers = _WaitQueue()

    @property
    def current_buffer_used(self) -> int:
        return len(self._data)

    @property
    def tasks_waiting_send(self) -> int:
        return self._senders._count()

    @property
    def tasks_waiting_receive(self) -> int:
        return self._receivers._count()

    def _offer(self, value: Any) -> bool:
        """Hand *value* to a waiting receiver or buffer it; False if neither."""
        receivers = self._receivers
        if receivers._waiters:
            receiver = receivers._popleft()
            receiver.value = value
            _wake(receiver.task)
            return True
        data = self._data
        if len(data) < self.max_buffer_size:
            data.append(value)
            if len(data) > self.peak_buffer_used:
                self.peak_buffer_used = len(data)
            return True
        return False

    def _take(self) -> tuple[bool, Any]:
        """(True, the next item) from a waiting sender or the buffer, else (False, None)."""
        data = self._data
        senders = self._senders
        if senders._waiters:
            sender = senders._popleft()
            value = sender.value
            sender.value = None
            _wake(sender.task)
            if data:
                data.append(value)
                value = data.popleft()
            return True, value
        if data:
            return True, data.popleft()
        return False, None


def _mine(queue: _WaitQueue, handle: object) -> list[_Waiter]:
    return [waiter for waiter in queue._waiters if waiter.target is handle]


def _refuse_foreign_close(
    own: _WaitQueue, mine: list[_Waiter], last: bool, other: _WaitQueue
) -> None:
    # Closing wakes the tasks blocked on this handle (and, for the last handle of its
    # kind, every task blocked on the other side): from another thread that is
    # refused, as every wake-up is, before anything changes -- a half-done close
    # would strand those tasks.
    if mine:
        own._refuse_foreign_thread()
    if last:
        other._refuse_foreign_thread()


def _wake_mine(queue: _WaitQueue, mine: list[_Waiter], make_error: Any) -> None:
    for waiter in mine:
        queue._remove(waiter)
        _wake(waiter.task, _Error(make_error()))


class SendChannelBase:
    """The engine half of ``MemorySendChannel``."""

    __slots__ = ("__weakref__", "_closed", "_state")

    def __init__(self, state: ChannelState) -> None:
        self._state = state
        self._closed = False
        state.open_send_channels += 1

    @enable_ki_protection
    def send_nowait(self, value: Any) -> None:
        """Send *value* without blocking: hand it to a waiting receiver or buffer it.

        Raises WouldBlock if the buffer is full, ClosedResourceError if this handle is
        closed, BrokenResourceError if every receive handle is closed.
        """
        if self._closed:
            raise _closed_send()
        state = self._state
        if not state.open_receive_channels:
            raise _broken()
        if not state._offer(value):
            raise WouldBlock

    @enable_ki_protection
    async def send(self, value: Any) -> None:
        """Send *value*, waiting while the buffer is full (and, with a zero-size buffer,
        until a receiver takes it). A checkpoint; Cancelled means nothing was sent.

        Raises ClosedResourceError if this handle is (or gets) closed,
        BrokenResourceError if every receive handle is (or gets) closed.
        """
        task = _current_task()
        while not _passed_cancel_point(task):
            await checkpoint()
            task = _current_task()
        if self._closed:
            raise _closed_send()
        state = self._state
        if not state.open_receive_channels:
            raise _broken()
        if state._offer(value):
            await cancel_shielded_checkpoint()
            return
        waiter = _Waiter(task, self, value)
        state._senders._append(waiter)
        task.custom_sleep_data = self
        try:
            await wait_task_rescheduled(waiter.abort)
        except BaseException:
            waiter.abandon()
            raise

    @enable_ki_protection
    def close(self) -> None:
        """Close this handle (idempotent, not a checkpoint). Tasks blocked in ``send``
        on it get ClosedResourceError; when the last send handle closes, blocked
        receivers get EndOfChannel."""
        if self._closed:
            return
        state = self._state
        mine = _mine(state._senders, self)
        _refuse_foreign_close(
            state._senders, mine, state.open_send_channels == 1, state._receivers
        )
        self._closed = True
        _wake_mine(state._senders, mine, _closed_send)
        state.open_send_channels -= 1
        if state.open_send_channels == 0:
            receivers = state._receivers
            while receivers._waiters:
                _wake(receivers._popleft().task, _Error(EndOfChannel()))


class ReceiveChannelBase:
    """The engine half of ``MemoryReceiveChannel``."""

    __slots__ = ("__weakref__", "_closed", "_state")

    def __init__(self, state: ChannelState) -> None:
        self._state = state
        self._closed = False
        state.open_receive_channels += 1

    @enable_ki_protection
    def receive_nowait(self) -> Any:
        """Take the next item without blocking.

        Raises WouldBlock if there is none yet, EndOfChannel if there never will be
        (every send handle closed, buffer empty), ClosedResourceError if this handle
        is closed.
        """
        if self._closed:
            raise _closed_receive()
        state = self._state
        ok, value = state._take()
        if ok:
            return value
        if not state.open_send_channels:
            raise EndOfChannel
        raise WouldBlock

    @enable_ki_protection
    async def receive(self) -> Any:
        """Take the next item, waiting for one if needed. A checkpoint; Cancelled means
        nothing was taken. Clones share the items: each item goes to one receiver.

        Raises EndOfChannel once every send handle is closed and the buffer is empty,
        ClosedResourceError if this handle is (or gets) closed.
        """
        task = _current_task()
        while not _passed_cancel_point(task):
            await checkpoint()
            task = _current_task()
        if self._closed:
            raise _closed_receive()
        state = self._state
        ok, value = state._take()
        if ok:
            await cancel_shielded_checkpoint()
            return value
        if not state.open_send_channels:
            raise EndOfChannel
        waiter = _Waiter(task, self)
        state._receivers._append(waiter)
        task.custom_sleep_data = self
        try:
            await wait_task_rescheduled(waiter.abort)
        except BaseException:
            waiter.abandon()
            raise
        return waiter.value

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None

    @enable_ki_protection
    def close(self) -> None:
        """Close this handle (idempotent, not a checkpoint). Tasks blocked in
        ``receive`` on it get ClosedResourceError; when the last receive handle closes,
        blocked senders get BrokenResourceError and buffered items are dropped."""
        if self._closed:
            return
        state = self._state
        mine = _mine(state._receivers, self)
        _refuse_foreign_close(
            state._receivers, mine, state.open_receive_channels == 1, state._senders
        )
        self._closed = True
        _wake_mine(state._receivers, mine, _closed_receive)
        state.open_receive_channels -= 1
        if state.open_receive_channels == 0:
            senders = state._senders
            while senders._waiters:
                _wake(senders._popleft().task, _Error(_broken()))
            state._data.clear()
