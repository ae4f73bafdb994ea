"""``open_signal_receiver``: receive Unix signals as an async stream of numbers.

Design notes
------------
The Python-level signal handler may run between any two bytecodes of the main thread,
so it touches nothing of ours directly: it only calls the thread- and signal-safe
``TrioToken.run_sync_soon`` (idempotently, so a burst of one signal queues one
callback), and the callback -- running in the run's system task -- records the signal.
Pending signals form an ordered set: each signal is reported once however often it
arrived, and distinct signals are reported in arrival order, so a signal that keeps
arriving cannot starve another. When the ``with`` block exits, the previous handlers
are restored first, then signals that arrived but were never read are raised again so
those handlers see them.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._core import BusyResourceError, ParkingLot, checkpoint, current_trio_token

if TYPE_CHECKING:
    from collections.abc import Generator


class _SignalReceiver:
    __slots__ = ("_closed", "_in_use", "_lot", "_pending")

    def __init__(self) -> None:
        self._pending: dict[int, None] = {}
        self._lot = ParkingLot()
        self._closed = False
        self._in_use = False

    def _record(self, signum: int) -> None:
        # Runs in the run's system task, never inside the signal handler itself.
        if self._closed:
            signal.raise_signal(signum)
            return
        self._pending[signum] = None
        self._lot.unpark()

    def _close(self) -> None:
        self._closed = True
        self._lot.unpark_all()
        leftovers = list(self._pending)
        self._pending.clear()
        for signum in leftovers:
            signal.raise_signal(signum)

    def __aiter__(self) -> _SignalReceiver:
        return self

    async def __anext__(self) -> int:
        if self._closed:
            raise RuntimeError("open_signal_receiver block already exited")
        if self._in_use:
            raise BusyResourceError("another task is already waiting for signals here")
        self._in_use = True
        try:
            if self._pending:
                await checkpoint()
            else:
                await self._lot.park()
            if not self._pending:
                raise RuntimeError("open_signal_receiver block already exited")
            signum = next(iter(self._pending))
            del self._pending[signum]
            return signum
        finally:
            self._in_use = False


@contextmanager
def open_signal_receiver(*signals: signal.Signals | int) -> Generator[Any, None, None]:
    """Context manager: while inside it, the given signals are caught and reported by
    the yielded async iterator (``async for signum in receiver``) instead of running
    their usual handlers. Main thread only; at least one signal is required. On exit
    the old handlers come back, and signals that arrived but were not read are raised
    again for them."""
    if not signals:
        raise TypeError("No signals were provided")
    if threading.get_ident() != threading.main_thread().ident:
        raise RuntimeError(
            "Sorry, open_signal_receiver is only possible when running in Python "
            "interpreter's main thread"
        )
    token = current_trio_token()
    receiver = _SignalReceiver()

    def handler(signum: int, frame: object) -> None:
        token.run_sync_soon(receiver._record, signum, idempotent=True)

    previous: dict[int, Any] = {}
    try:
        for signum in signals:
            if signum not in previous:
                previous[signum] = signal.signal(signum, handler)
        yield receiver
    finally:
        for signum, old in reversed(previous.items()):
            signal.signal(signum, old)
        receiver._close()
