"""Synchronization primitives: Event, Lock, StrictFIFOLock, Semaphore, Condition and
CapacityLimiter.

Design notes
------------
Every blocking primitive here waits in a ``lowlevel.ParkingLot`` (or, for Event, a wait
queue of its own) and is released by *hand-off*: whoever frees the resource picks the oldest
waiter, gives it the resource on the spot (lock owner, semaphore unit, limiter token)
and reschedules it. The woken task therefore never re-checks or competes for the
resource; that is what makes the primitives FIFO-fair and immune to barging, and it is
why ``Lock._lot`` / ``Semaphore._lot`` may be parked on directly by other libraries
(anyio does): being unparked from them *means* having acquired.

Acquiring follows one shape: cancel point first (``checkpoint_if_cancelled``), then try
without blocking; on success a cancel-shielded schedule point (the acquire already
happened, so it must not be undone by a Cancelled), on failure park. A cancelled park
removes the task from the lot before the resource could be handed to it, so Cancelled
always means "not acquired".

A Lock registers its owner as a breaker of its lot: if the owner task exits while still
holding the lock, the lot breaks and every present and future waiter gets
BrokenResourceError instead of hanging forever.

The hot halves of Event and Lock (wait/set, acquire/release, ``async with``) are the
engine's ``EventBase`` / ``LockBase``, C awaitables in the compiled engine; the classes
here add statistics and reprs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from ._core import (
    CancelScope,
    EventBase,
    LockBase,
    ParkingLot,
    ParkingLotStatistics,
    WouldBlock,
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    current_task,
    enable_ki_protection,
    final,
)

if TYPE_CHECKING:
    from types import TracebackType

    from ._core import Task


@dataclass(frozen=True, slots=True)
class EventStatistics:
    """``tasks_waiting``: how many tasks are blocked in ``Event.wait``."""

    tasks_waiting: int


@final
class Event(EventBase):
    """A flag that starts false, can be set once, and wakes every waiter when set.

    Events cannot be cleared; make a new one instead. ``wait()`` blocks until the flag
    is set (and is a checkpoint even if it already is); ``set()`` sets it and wakes
    every waiter; ``is_set()`` reads it.
    """

    __slots__ = ()

    def statistics(self) -> EventStatistics:
        """Debugging information: ``tasks_waiting``."""
        return EventStatistics(tasks_waiting=self._tasks_waiting)

    def __bool__(self) -> NoReturn:
        raise NotImplementedError(
            "an Event has no truth value; use event.is_set() to ask whether it was set"
        )


class AsyncContextManagerMixin:
    """``async with x:`` acquires on entry and releases on exit, for any class with
    ``acquire()`` / ``release()``. A plain ``with`` is refused with an explanation."""

    __slots__ = ()

    @enable_ki_protection
    async def __aenter__(self) -> None:
        await self.acquire()  # type: ignore[attr-defined]

    @enable_ki_protection
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()  # type: ignore[attr-defined]

    def __enter__(self) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} must be entered with 'async with', not 'with' "
            "(acquiring it may block)"
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - never entered
        return None


def _public_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------------------------------- CapacityLimiter


@dataclass(frozen=True, slots=True)
class CapacityLimiterStatistics:
    """``borrowed_tokens``: tokens currently lent out; ``total_tokens``: the capacity
    (may be below ``borrowed_tokens`` right after it was lowered); ``borrowers``: who
    holds the tokens (tasks or arbitrary objects); ``tasks_waiting``: tasks blocked in
    ``acquire`` / ``acquire_on_behalf_of``."""

    borrowed_tokens: int
    total_tokens: int | float
    borrowers: list[Any]
    tasks_waiting: int


@final
class CapacityLimiter(AsyncContextManagerMixin):
    """Lets at most ``total_tokens`` borrowers hold a token at the same time.

    Each borrower (by default the current task; see ``acquire_on_behalf_of``) holds at
    most one token. ``async with limiter:`` borrows a token for the block. Waiters are
    served first come, first served; ``total_tokens`` may be changed at any time
    (raising it wakes waiters at once; lowering it lets current holders finish).
    ``to_thread.run_sync`` uses one of these to bound its worker threads.
    """

    __slots__ = ("__weakref__", "_borrowers", "_lot", "_pending_borrowers", "_total_tokens")

    def __init__(self, total_tokens: int | float) -> None:
        self._lot = ParkingLot()
        # Insertion-ordered, so statistics() lists borrowers oldest first.
        self._borrowers: dict[Any, None] = {}
        # Parked task -> the borrower it is acquiring for; the waker moves the entry to
        # _borrowers when it hands the token over.
        self._pending_borrowers: dict[Any, Any] = {}
        self._total_tokens: int | float = 0
        self.total_tokens = total_tokens

    def __repr__(self) -> str:
        return (
            f"<{_public_name(self)} at {id(self):#x}, "
            f"{len(self._borrowers)}/{self._total_tokens} with {len(self._lot)} waiting>"
        )

    @property
    def total_tokens(self) -> int | float:
        """The capacity: an int >= 0 or ``math.inf``. Assignable."""
        return self._total_tokens

    @total_tokens.setter
    def total_tokens(self, new_total_tokens: int | float) -> None:
        if not isinstance(new_total_tokens, int) and new_total_tokens != math.inf:
            raise TypeError("total_tokens must be an int or math.inf")
        if new_total_tokens < 0:
            raise ValueError("total_tokens must be >= 0")
        self._total_tokens = new_total_tokens
        self._hand_out_tokens()

    def _hand_out_tokens(self) -> None:
        free = self._total_tokens - len(self._borrowers)
        if free > 0 and self._lot:
            for task in self._lot.unpark(count=free):
                self._borrowers[self._pending_borrowers.pop(task)] = None

    @property
    def borrowed_tokens(self) -> int:
        """How many tokens are lent out right now."""
        return len(self._borrowers)

    @property
    def available_tokens(self) -> int | float:
        """``total_tokens - borrowed_tokens`` (negative right after lowering the total)."""
        return self._total_tokens - len(self._borrowers)

    @enable_ki_protection
    def acquire_nowait(self) -> None:
        """Borrow a token for the current task without blocking.

        Raises WouldBlock if none is free (or others are already waiting), RuntimeError
        if this task already holds one.
        """
        self.acquire_on_behalf_of_nowait(current_task())

    @enable_ki_protection
    def acquire_on_behalf_of_nowait(self, borrower: Task | object) -> None:
        """Borrow a token for *borrower* (any hashable object; ``to_thread`` uses it to
        let threads hold tokens) without blocking.

        Raises WouldBlock if none is free (or others are already waiting), RuntimeError
        if *borrower* already holds one.
        """
        if borrower in self._borrowers:
            raise RuntimeError(
                "this borrower is already holding one of this CapacityLimiter's tokens"
            )
        if len(self._borrowers) < self._total_tokens and not self._lot:
            self._borrowers[borrower] = None
        else:
            raise WouldBlock

    @enable_ki_protection
    async def acquire(self) -> None:
        """Borrow a token for the current task, waiting for one if needed (a
        checkpoint). RuntimeError if this task already holds one."""
        await self.acquire_on_behalf_of(current_task())

    @enable_ki_protection
    async def acquire_on_behalf_of(self, borrower: Task | object) -> None:
        """Borrow a token for *borrower*, waiting for one if needed (a checkpoint).
        RuntimeError if *borrower* already holds one."""
        await checkpoint_if_cancelled()
        try:
            self.acquire_on_behalf_of_nowait(borrower)
        except WouldBlock:
            task = current_task()
            self._pending_borrowers[task] = borrower
            try:
                await self._lot.park()
            except BaseException:
                # Not handed a token (a hand-off removes the entry before waking us).
                self._pending_borrowers.pop(task, None)
                raise
        else:
            await cancel_shielded_checkpoint()

    @enable_ki_protection
    def release(self) -> None:
        """Return the current task's token. RuntimeError if it holds none."""
        self.release_on_behalf_of(current_task())

    @enable_ki_protection
    def release_on_behalf_of(self, borrower: Task | object) -> None:
        """Return *borrower*'s token, handing it to the oldest waiter if there is one.
        RuntimeError if *borrower* holds none."""
        try:
            del self._borrowers[borrower]
        except KeyError:
            raise RuntimeError(
                "this borrower isn't holding any of this CapacityLimiter's tokens"
            ) from None
        self._hand_out_tokens()

    def statistics(self) -> CapacityLimiterStatistics:
        """Debugging information; see ``CapacityLimiterStatistics``."""
        holders = list(self._borrowers)
        return CapacityLimiterStatistics(
            borrowed_tokens=len(holders),
            total_tokens=self._total_tokens,
            borrowers=holders,
            tasks_waiting=len(self._lot),
        )


# ---------------------------------------------------------------- Semaphore


@final
class Semaphore(AsyncContextManagerMixin):
    """A counter that ``acquire`` decrements (waiting while it is zero) and ``release``
    increments; with *max_value*, releasing past it is an error.

    Unlike ``CapacityLimiter`` and ``Lock``, nobody owns a unit: any task may release.
    Waiters are served first come, first served; ``release`` with waiters hands the unit
    straight to the oldest one (the value stays 0).
    """

    __slots__ = ("__weakref__", "_lot", "_max_value", "_value")

    def __init__(self, initial_value: int, *, max_value: int | None = None) -> None:
        if not isinstance(initial_value, int):
            raise TypeError("initial_value must be an int")
        if initial_value < 0:
            raise ValueError("initial value must be >= 0")
        if max_value is None:
            pass  # unbounded
        elif not isinstance(max_value, int):
            raise TypeError("max_value must be None or an int")
        elif max_value < initial_value:
            raise ValueError("max_values must be >= initial_value")
        self._value = initial_value
        self._max_value = max_value
        # Invariant: tasks are parked only while the value is 0.
        self._lot = ParkingLot()

    def __repr__(self) -> str:
        extra = "" if self._max_value is None else f", max_value={self._max_value}"
        return f"<{_public_name(self)}({self._value}{extra}) at {id(self):#x}>"

    @property
    def max_value(self) -> int | None:
        """The upper bound given at construction, or None."""
        return self._max_value

    @property
    def value(self) -> int:
        """The current value."""
        return self._value

    @enable_ki_protection
    def acquire_nowait(self) -> None:
        """Decrement the value without blocking; WouldBlock if it is zero."""
        if not self._value:
            raise WouldBlock
        self._value -= 1

    @enable_ki_protection
    async def acquire(self) -> None:
        """Decrement the value, waiting while it is zero (a checkpoint)."""
        await checkpoint_if_cancelled()
        if self._value > 0:
            self._value -= 1
            await cancel_shielded_checkpoint()
        else:
            await self._lot.park()

    @enable_ki_protection
    def release(self) -> None:
        """Increment the value, or hand the unit to the oldest waiter.

        ValueError if that would exceed ``max_value``.
        """
        if self._lot:
            self._lot.unpark(count=1)
        elif self._max_value is not None and self._value >= self._max_value:
            raise ValueError("semaphore released too many times")
        else:
            self._value += 1

    def statistics(self) -> ParkingLotStatistics:
        """Debugging information: ``tasks_waiting`` (tasks blocked in ``acquire``)."""
        return self._lot.statistics()


# ---------------------------------------------------------------- Lock


@dataclass(frozen=True, slots=True)
class LockStatistics:
    """``locked``: whether the lock is held; ``owner``: the holding Task or None;
    ``tasks_waiting``: tasks blocked in ``acquire``."""

    locked: bool
    owner: Task | None
    tasks_waiting: int


class _LockImpl(LockBase, AsyncContextManagerMixin):
    # acquire/acquire_nowait/release/locked and async with are the engine's LockBase
    # (hand-off to the oldest waiter in _lot, owner registered as the lot's breaker).
    __slots__ = ()

    def __repr__(self) -> str:
        name = type(self).__name__
        if self._owner is None:
            return f"<unlocked {name} object at {id(self):#x}>"
        return f"<locked {name} object at {id(self):#x} with {len(self._lot)} waiters>"

    def statistics(self) -> LockStatistics:
        """Debugging information; see ``LockStatistics``."""
        return LockStatistics(
            locked=self._owner is not None, owner=self._owner, tasks_waiting=len(self._lot)
        )


@final
class Lock(_LockImpl):
    """A mutex: one owner at a time, not re-entrant, released only by its owner.

    ``async with lock:`` holds it for the block (entering may block; leaving does not).
    Waiters get the lock in the order they asked for it.
    """

    __slots__ = ()


@final
class StrictFIFOLock(_LockImpl):
    """A Lock that additionally *promises* strict first-come, first-served hand-off.

    Today every Lock behaves this way; use this class when your code depends on the
    order (for example, sending chunks produced by a shared protocol state machine
    in the order they were produced), so that the dependency is explicit.
    """

    __slots__ = ()


# ---------------------------------------------------------------- Condition


@dataclass(frozen=True, slots=True)
class ConditionStatistics:
    """``tasks_waiting``: tasks blocked in ``wait``; ``lock_statistics``: the
    underlying Lock's ``LockStatistics``."""

    tasks_waiting: int
    lock_statistics: LockStatistics


@final
class Condition(AsyncContextManagerMixin):
    """A condition variable over a ``Lock`` (a new one unless *lock* is given; it must
    be a plain ``Lock``). ``async with cond:`` holds the lock for the block."""

    __slots__ = ("__weakref__", "_lock", "_lot")

    def __init__(self, lock: Lock | None = None) -> None:
        if lock is None:
            lock = Lock()
        if type(lock) is not Lock:
            raise TypeError("lock must be a vivace.Lock")
        self._lock = lock
        self._lot = ParkingLot()

    def locked(self) -> bool:
        """Whether the underlying lock is held."""
        return self._lock.locked()

    def acquire_nowait(self) -> None:
        """Take the underlying lock without blocking (WouldBlock if held)."""
        self._lock.acquire_nowait()

    async def acquire(self) -> None:
        """Take the underlying lock, waiting if needed."""
        await self._lock.acquire()

    def release(self) -> None:
        """Release the underlying lock."""
        self._lock.release()

    @enable_ki_protection
    async def wait(self) -> None:
        """Release the lock, wait for ``notify``/``notify_all``, and re-acquire the lock
        before returning.

        The caller must hold the lock (RuntimeError otherwise). Even when cancelled,
        this re-acquires the lock before raising, so ``async with cond: await
        cond.wait()`` always exits holding the lock it releases.
        """
        if current_task() is not self._lock._owner:
            raise RuntimeError("must hold the lock to wait")
        self.release()
        # We sleep here; notify() moves us into the lock's own lot, and the lock's
        # release() wakes us as its new owner.
        try:
            await self._lot.park()
        except BaseException:
            with CancelScope(shield=True):
                await self.acquire()
            raise

    def notify(self, n: int = 1) -> None:
        """Wake up to *n* waiters (oldest first); each returns once it gets the lock.
        The caller must hold the lock."""
        if current_task() is not self._lock._owner:
            raise RuntimeError("must hold the lock to notify")
        self._lot.repark(self._lock._lot, count=n)

    def notify_all(self) -> None:
        """Wake every waiter. The caller must hold the lock."""
        if current_task() is not self._lock._owner:
            raise RuntimeError("must hold the lock to notify")
        self._lot.repark_all(self._lock._lot)

    def statistics(self) -> ConditionStatistics:
        """Debugging information; see ``ConditionStatistics``."""
        return ConditionStatistics(
            tasks_waiting=len(self._lot), lock_statistics=self._lock.statistics()
        )
