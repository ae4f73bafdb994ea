"""Wait queues and the hot operations of the blocking primitives (ParkingLot, Event,
Lock, memory channels) -- reference twin of ``_ext/_sync.pyx``. The API layer subclasses
these bases (``lowlevel.ParkingLot``, ``Event``, ``Lock``, ``MemorySendChannel``, ...)
and adds the cold parts: statistics, reprs, cloning.

Design notes
------------
* Every blocked operation is a *waiter* (task, the object it waits on, a value slot)
  sitting in a FIFO wait queue. Queues are insertion-ordered (an OrderedDict here, an
  intrusive doubly linked list in the compiled twin): append at the back, pop the
  oldest, and remove an arbitrary waiter when its wait is aborted, each O(1).
* A waiter's abort function removes it from whatever queue holds it *now*
  (``ParkingLot.repark`` moves waiters between lots), so ``Abort.SUCCEEDED`` -- and
  with it ``Cancelled`` -- always means "not woken, nothing handed over".
* Hand-off: whoever completes a waiter's operation does it on the waiter's behalf
  before waking it -- the Lock is already owned, the item already in ``value`` -- and
  resumes it with ``RESUME_NONE``: no outcome object, and the woken task never
  competes again (FIFO, no barging). Errors (lot broken, channel closed) are delivered
  as ``outcome.Error``.
* Every awaited operation is a checkpoint: a cancel point first (a pending cancel is
  delivered by a real checkpoint; should that checkpoint return normally after all,
  the operation starts over), then either the operation and a cancel-shielded
  schedule point (it happened, so it must not be undone), or parking (the kernel's
  WaitTaskRescheduled, itself a cancel point). ``ParkingLot.park`` and ``Event.wait``
  keep trio's shape: they park at once.
* A waiter the kernel parked its task on stays queued until it is woken or its abort
  succeeds, whatever happens to the coroutine meanwhile: a ``throw()``/``close()``
  from outside the kernel (misuse) leaves it queued, so the kernel's view -- the task
  is parked -- stays true; the later wake-up or cancellation resumes the dead
  coroutine, and the task ends with RuntimeError, as in trio. Discarding it would
  strand the task forever. A waiter driven by hand (no kernel) is discarded.
* The lock-owner breaker registry is the runner's ``_lot_breakers`` dict (the same
  object as ``_parking_lot.GLOBAL_PARKING_LOT_BREAKER``).
"""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from threading import get_ident as _get_ident
from typing import TYPE_CHECKING, Any

import outcome

from ._abort import Abort
from ._exceptions import BrokenResourceError, WouldBlock
from ._kernel_py import RESUME_NONE, cancel_shielded_checkpoint, checkpoint, wait_task_rescheduled
from ._ki import enable_ki_protection
from ._run_context import FOREIGN_THREAD_WAKE, GLOBAL_RUN_CONTEXT

if TYPE_CHECKING:
    from collections.abc import Callable

_Error = outcome.Error


def _current_task() -> Any:
    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    task = runner.current_task if runner is not None else None
    if task is None:
        raise RuntimeError("must be called from async context")
    return task


def _cancel_pending(task: Any) -> bool:
    runner = task._runner
    return bool(
        task._cancel_status.effectively_cancelled
        or (runner.ki_pending and task is runner.main_task)
    )


def _wake(task: Any, next_send: Any = RESUME_NONE) -> None:
    task._runner.reschedule(task, next_send)


def _passed_cancel_point(task: Any) -> bool:
    """checkpoint_if_cancelled()'s test, without the checkpoint: count a cancel point
    and return True, unless a cancel (or a KeyboardInterrupt for the main task) is
    pending -- then the caller delivers it with ``await checkpoint()``, and, should
    that return normally after all, starts over."""
    if _cancel_pending(task):
        return False
    task._cancel_points += 1
    return True


class _Waiter:
    __slots__ = ("queue", "target", "task", "value")

    def __init__(self, task: Any, target: Any, value: Any = None) -> None:
        self.task = task
        self.target = target
        self.value = value
        self.queue: _WaitQueue | None = None

    def abort(self, raise_cancel: Callable[[], Any]) -> Any:
        queue = self.queue
        if queue is None:
            return Abort.FAILED
        queue._remove(self)
        return Abort.SUCCEEDED

    def abandon(self) -> None:
        # The wait ended without the kernel (a successful abort already removed it):
        # thrown into or closed from outside. See the design notes for why a waiter
        # the kernel parked its task on stays queued.
        if self.queue is not None and self.task._abort_func != self.abort:
            self.queue._remove(self)



class _WaitQueue:
    """FIFO of waiters with O(1) removal."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: OrderedDict[_Waiter, None] = OrderedDict()

    def _append(self, waiter: _Waiter) -> None:
        self._waiters[waiter] = None
        waiter.queue = self

    def _refuse_foreign_thread(self) -> None:
        # Waking a run's task from another thread would touch the run's queue from
        # outside it: every wake-up pops here first (Event.set asks before setting its
        # flag), so it is refused before anything changes.
        if self._waiters:
            runner = getattr(next(iter(self._waiters)).task, "_runner", None)
            if runner is not None and runner._thread_ident != _get_ident():
                raise RuntimeError(FOREIGN_THREAD_WAKE)

    def _popleft(self) -> _Waiter:
        self._refuse_foreign_thread()
        waiter = next(iter(self._waiters))
        del self._waiters[waiter]
        waiter.queue = None
        return waiter

    def _remove(self, waiter: _Waiter) -> None:
        del self._waiters[waiter]
        waiter.queue = None

    def _count(self) -> int:
        return len(self._waiters)


def _count_arg(count: Any, available: int) -> int:
    if isinstance(count, float):
        if math.isinf(count):
            return available
        raise ValueError("Cannot pop a non-integer number of tasks.")
    # index() refuses a non-integer count as trio's range() does (a negative one
    # merely wakes nobody), before the clamp could turn it into a harmless 0.
    return max(0, operator.index(min(count, available)))


# ---------------------------------------------------------------- ParkingLot


class LotBase(_WaitQueue):
    """The engine half of ``lowlevel.ParkingLot``: a FIFO of parked tasks."""

    __slots__ = ("__weakref__", "broken_by")

    def __init__(self) -> None:
        super().__init__()
        self.broken_by: list[Any] = []

    def __len__(self) -> int:
        return len(self._waiters)

    def __bool__(self) -> bool:
        return bool(self._waiters)

    @enable_ki_protection
    async def park(self) -> None:
        """Block until ``unpark``/``unpark_all`` wakes this task (or it is cancelled).
        BrokenResourceError if the lot is or becomes broken."""
        if self.broken_by:
            raise BrokenResourceError(
                f"Attempted to park in parking lot broken by {self.broken_by}"
            )
        task = _current_task()
        waiter = _Waiter(task, self)
        self._append(waiter)
        task.custom_sleep_data = self
        try:
            await wait_task_rescheduled(waiter.abort)
        except BaseException:
            waiter.abandon()
            raise

    @enable_ki_protection
    def unpark(self, *, count: int | float = 1) -> list[Any]:
        """Wake up to *count* parked tasks (oldest first); return them."""
        tasks = []
        for _ in range(_count_arg(count, len(self._waiters))):
            if not self._waiters:
                break
            task = self._popleft().task
            tasks.append(task)
            _wake(task)
        return tasks

    def unpark_all(self) -> list[Any]:
        """Wake every parked task; return them."""
        return self.unpark(count=len(self._waiters))

    @enable_ki_protection
    def repark(self, new_lot: LotBase, *, count: int | float = 1) -> None:
        """Move up to *count* parked tasks (oldest first) to the back of *new_lot*,
        without waking them."""
        if not isinstance(new_lot, LotBase):
            raise TypeError("new_lot must be a ParkingLot")
        for _ in range(_count_arg(count, len(self._waiters))):
            if not self._waiters:
                break
            waiter = self._popleft()
            new_lot._append(waiter)
            waiter.task.custom_sleep_data = new_lot

    def repark_all(self, new_lot: LotBase) -> None:
        """Move every parked task to *new_lot*."""
        return self.repark(new_lot, count=len(self._waiters))

    @enable_ki_protection
    def break_lot(self, task: Any = None) -> None:
        """Break the lot (noting *task*, default the current task, in ``broken_by``):
        parked tasks and all later ``park`` calls raise BrokenResourceError."""
        if task is None:
            task = _current_task()
        already = bool(self.broken_by)
        if not already:
            # it wakes the parked tasks: refused from another thread before the lot
            # is marked broken (a half-done break would strand them)
            self._refuse_foreign_thread()
        self.broken_by.append(task)
        if already:
            return
        while self._waiters:
            parked = self._popleft().task
            _wake(parked, _Error(BrokenResourceError(f"Parking lot broken by {task}")))


# ---------------------------------------------------------------- Event


class EventBase(_WaitQueue):
    """The engine half of ``Event``."""

    __slots__ = ("__weakref__", "_flag")

    def __init__(self) -> None:
        # set() drains every waiter at once and nothing pops single waiters from the
        # front, so a plain (cheaper) dict keeps the FIFO order well enough here.
        self._waiters = {}  # type: ignore[assignment]
        self._flag = False

    @property
    def _tasks_waiting(self) -> int:
        return len(self._waiters)

    def is_set(self) -> bool:
        """Whether ``set()`` has been called."""
        return self._flag

    @enable_ki_protection
    def set(self) -> None:
        """Set the flag and wake every waiting task."""
        if not self._flag:
            self._refuse_foreign_thread()
            self._flag = True
            waiters = self._waiters
            self._waiters = {}  # type: ignore[assignment]
            for waiter in waiters:
                waiter.queue = None
                _wake(waiter.task)

    @enable_ki_protection
    async def wait(self) -> None:
        """Block until the flag is set (a checkpoint even if it already is)."""
        if self._flag:
            await checkpoint()
            return
        waiter = _Waiter(_current_task(), self)
        self._append(waiter)
        try:
            await wait_task_rescheduled(waiter.abort)
        except BaseException:
            waiter.abandon()
            raise


# ---------------------------------------------------------------- Lock


def _add_breaker(task: Any, lot: LotBase) -> None:
    registry = task._runner._lot_breakers
    lots = registry.get(task)
    if lots is None:
        registry[task] = [lot]
    else:
        lots.append(lot)


def _remove_breaker(task: Any, lot: LotBase) -> None:
    registry = task._runner._lot_breakers
    lots = registry.get(task)
    try:
        if lots is None:
            raise ValueError
        lots.remove(lot)
    except ValueError:
        raise RuntimeError(
            "Attempted to remove task as breaker for a lot it is not registered for"
        ) from None
    if not lots:
        del registry[task]


_LOT_CLASS: list[type[LotBase]] = [LotBase]  # what LockBase creates (see set_lot_class)


def set_lot_class(cls: type[LotBase]) -> None:
    """Make ``LockBase`` create its ``_lot`` as an instance of *cls* (the API layer's
    ``ParkingLot``, a subclass of ``LotBase``)."""
    if not (isinstance(cls, type) and issubclass(cls, LotBase)):
        raise TypeError("the lot class must be a subclass of LotBase")
    _LOT_CLASS[0] = cls


class LockBase:
    """The engine half of ``Lock``/``StrictFIFOLock``: the owner and the waiters' lot.
    Releasing hands the lock to the oldest waiter, which is woken as the owner."""

    __slots__ = ("__weakref__", "_lot", "_owner")

    def __init__(self) -> None:
        self._lot = _LOT_CLASS[0]()
        self._owner: Any = None

    def locked(self) -> bool:
        """Whether some task holds the lock."""
        return self._owner is not None

    def _take(self, task: Any) -> None:
        self._owner = task
        _add_breaker(task, self._lot)

    @enable_ki_protection
    def acquire_nowait(self) -> None:
        """Take the lock without blocking.

        Raises WouldBlock if another task holds it (or is already waiting for it),
        RuntimeError if the current task holds it already.
        """
        task = _current_task()
        owner = self._owner
        if owner is None and not self._lot._waiters:
            self._take(task)
        elif owner is task:
            raise RuntimeError("attempt to re-acquire an already held Lock")
        else:
            raise WouldBlock

    @enable_ki_protection
    async def acquire(self) -> None:
        """Take the lock, waiting for it if needed (a checkpoint).

        Raises RuntimeError if the current task holds it already, BrokenResourceError
        if the holder exits without releasing it.
        """
        task = _current_task()
        while not _passed_cancel_point(task):
            await checkpoint()
            task = _current_task()
        owner = self._owner
        lot = self._lot
        if owner is None and not lot._waiters:
            self._take(task)
            await cancel_shielded_checkpoint()
            return
        if owner is task:
            raise RuntimeError("attempt to re-acquire an already held Lock")
        # Waiting is nothing but parking in _lot: release() makes the oldest parked
        # task the owner, whoever parked it (Condition and anyio park there directly).
        try:
            if lot.broken_by:
                raise BrokenResourceError
            waiter = _Waiter(task, lot)
            lot._append(waiter)
            task.custom_sleep_data = lot
            try:
                await wait_task_rescheduled(waiter.abort)
            except BaseException:
                waiter.abandon()
                raise
        except BrokenResourceError:
            raise BrokenResourceError(
                f"Owner of this lock exited without releasing: {self._owner}"
            ) from None

    @enable_ki_protection
    def release(self) -> None:
        """Release the lock; the oldest waiter, if any, becomes the owner at once.

        RuntimeError if the current task does not hold it.
        """
        task = _current_task()
        if task is not self._owner:
            raise RuntimeError("can't release a Lock you don't own")
        lot = self._lot
        _remove_breaker(task, lot)
        if lot._waiters:
            new_owner = lot._popleft().task
            _wake(new_owner)
            self._take(new_owner)
        else:
            self._owner = None

    @enable_ki_protection
    async def __aenter__(self) -> None:
        await self.acquire()

    @enable_ki_protection
    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


# ---------------------------------------------------------------- memory channels

# The channel bases live in _sync_channel_py, which builds on the helpers above; they are
# exported from here (the compiled twin is one module) and fetched on first use, so that
# importing either module first works.
_CHANNEL_NAMES = ("ChannelState", "ReceiveChannelBase", "SendChannelBase")

if TYPE_CHECKING:
    from ._sync_channel_py import ChannelState, ReceiveChannelBase, SendChannelBase


def __getattr__(name: str) -> Any:
    if name in _CHANNEL_NAMES:
        from . import _sync_channel_py

        return getattr(_sync_channel_py, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ChannelState",
    "EventBase",
    "LockBase",
    "LotBase",
    "ReceiveChannelBase",
    "SendChannelBase",
    "set_lot_class",
    "park_until",
]


# ---------------------------------------------------------------- sleeping


def _abort_due_sleep(_: Any) -> Any:
    return Abort.SUCCEEDED


async def park_until(deadline: float) -> None:
    """Park the current task until the run's clock reaches *deadline*: a cancel point
    and a schedule point even if it already has. The caller checks for NaN.

    The parked task itself is the deadline heap's payload (the run loop calls
    ``task._deadline_expired()`` when it fires); the abort function removes the entry.
    Exactly one of the two happens: rescheduling clears the abort function, and a
    successful abort removes the entry first."""
    task = _current_task()
    runner = task._runner
    if deadline <= runner.clock.current_time():
        # Already due: trio's sleep scope is cancelled on entry, so the task parks and
        # its abort succeeds at once -- ONE schedule point, after which the sleep's own
        # Cancelled is swallowed unless an enclosing cancellation is visible (checked
        # below, at resume). A pending cancel or KeyboardInterrupt is delivered by that
        # same park (not by CHECKPOINT, which would take a second schedule point).
        if _cancel_pending(task):
            await wait_task_rescheduled(_abort_due_sleep)
        else:
            task._cancel_points += 1  # as the park would have counted it
            await cancel_shielded_checkpoint()
    else:
        heap = runner.deadlines
        if runner.is_guest:
            before = heap.peek_deadline()
        handle = heap.push(deadline, task)
        if runner.is_guest and heap.peek_deadline() != before:
            runner.force_guest_tick_asap()

        def abort(_: Any) -> Any:
            # discard, not remove: an enclosing scope whose deadline expired in the same
            # pass of the run loop aborts us after that pass already popped our entry.
            heap.discard(handle)
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)
    # The deadline has passed (fired, or was due at once). In trio the sleep is a scope
    # that the deadline cancelled, and a scope lets Cancelled through when an enclosing
    # cancellation is visible: if an enclosing scope is cancelled by the time this task
    # resumes, the sleep raises.
    status = task._cancel_status
    if status.effectively_cancelled:
        raise status._make_cancelled()
