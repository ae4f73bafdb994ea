"""``lowlevel.ParkingLot``: the fair wait queue every blocking primitive is built on.

Design notes
------------
Parked tasks sit in an OrderedDict (task -> None): FIFO wake-ups with O(1) pops from
the front, O(1) removal when a parked task is cancelled. While parked, ``task.custom_sleep_data`` is the
lot the task is in, so ``repark`` can move a task between lots and its abort function
still removes it from the right one. The kernel clears ``custom_sleep_data`` when the
task is rescheduled. A lot can be *broken* (by a task that exits while registered as its
breaker, or explicitly): parked and future parkers get BrokenResourceError.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import outcome

from .._util import final
from ._exceptions import BrokenResourceError
from ._impl import wait_task_rescheduled
from ._ki import enable_ki_protection
from ._traps import Abort

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._task import Task

GLOBAL_PARKING_LOT_BREAKER: dict[Any, list[ParkingLot]] = {}


def add_parking_lot_breaker(task: Task, lot: ParkingLot) -> None:
    """Register *task* as a breaker of *lot*: when the task exits, the lot breaks.
    BrokenResourceError if the task has already exited."""
    if inspect.getcoroutinestate(task.coro) == inspect.CORO_CLOSED:
        raise BrokenResourceError("Attempted to add already exited task as lot breaker.")
    GLOBAL_PARKING_LOT_BREAKER.setdefault(task, []).append(lot)


def remove_parking_lot_breaker(task: Task, lot: ParkingLot) -> None:
    """Undo ``add_parking_lot_breaker``; RuntimeError if it was not registered."""
    try:
        GLOBAL_PARKING_LOT_BREAKER[task].remove(lot)
    except (KeyError, ValueError):
        raise RuntimeError(
            "Attempted to remove task as breaker for a lot it is not registered for"
        ) from None
    if not GLOBAL_PARKING_LOT_BREAKER[task]:
        del GLOBAL_PARKING_LOT_BREAKER[task]


def break_lots_of(task: Any) -> None:
    lots = GLOBAL_PARKING_LOT_BREAKER.pop(task, None)
    if lots:
        for lot in lots:
            lot.break_lot(task)


@final
@dataclasses.dataclass(frozen=True, slots=True)
class ParkingLotStatistics:
    """``tasks_waiting``: how many tasks are parked in the lot."""

    tasks_waiting: int


@final
class ParkingLot:
    """A fair (FIFO) queue of parked tasks, with cancellation and re-queuing.

    ``len(lot)`` is the number of parked tasks; ``bool(lot)`` whether there are any.
    """

    __slots__ = ("__weakref__", "_parked", "broken_by")

    def __init__(self) -> None:
        # OrderedDict, not dict: popping the oldest of a plain dict scans the deleted
        # slots left at its front, which turns a long FIFO drain quadratic.
        self._parked: OrderedDict[Any, None] = OrderedDict()
        self.broken_by: list[Any] = []

    def __len__(self) -> int:
        return len(self._parked)

    def __bool__(self) -> bool:
        return bool(self._parked)

    @enable_ki_protection
    async def park(self) -> None:
        """Block until ``unpark``/``unpark_all`` wakes this task (or it is cancelled).
        BrokenResourceError if the lot is or becomes broken."""
        if self.broken_by:
            raise BrokenResourceError(
                f"Attempted to park in parking lot broken by {self.broken_by}"
            )
        from ._run import current_task

        task = current_task()
        self._parked[task] = None
        task.custom_sleep_data = self

        def abort_fn(_: Any) -> Abort:
            del task.custom_sleep_data._parked[task]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort_fn)

    def _pop_several(self, count: int | float) -> Iterator[Any]:
        if isinstance(count, float):
            if math.isinf(count):
                count = len(self._parked)
            else:
                raise ValueError("Cannot pop a non-integer number of tasks.")
        else:
            count = min(count, len(self._parked))
        popitem = self._parked.popitem
        for _ in range(count):
            yield popitem(last=False)[0]

    @enable_ki_protection
    def unpark(self, *, count: int | float = 1) -> list[Any]:
        """Wake up to *count* parked tasks (oldest first); return them."""
        tasks = list(self._pop_several(count))
        for task in tasks:
            task._runner.reschedule(task)
        return tasks

    def unpark_all(self) -> list[Any]:
        """Wake every parked task; return them."""
        return self.unpark(count=len(self))

    @enable_ki_protection
    def repark(self, new_lot: ParkingLot, *, count: int | float = 1) -> None:
        """Move up to *count* parked tasks (oldest first) to the back of *new_lot*,
        without waking them."""
        if not isinstance(new_lot, ParkingLot):
            raise TypeError("new_lot must be a ParkingLot")
        for task in self._pop_several(count):
            new_lot._parked[task] = None
            task.custom_sleep_data = new_lot

    def repark_all(self, new_lot: ParkingLot) -> None:
        """Move every parked task to *new_lot*."""
        return self.repark(new_lot, count=len(self))

    def break_lot(self, task: Any = None) -> None:
        """Break the lot (noting *task*, default the current task, in ``broken_by``):
        parked tasks and all later ``park`` calls raise BrokenResourceError."""
        if task is None:
            from ._run import current_task

            task = current_task()
        if self.broken_by:
            self.broken_by.append(task)
            return
        self.broken_by.append(task)
        for parked in self._parked:
            parked._runner.reschedule(
                parked, outcome.Error(BrokenResourceError(f"Parking lot broken by {task}"))
            )
        self._parked.clear()

    def statistics(self) -> ParkingLotStatistics:
        """Debugging information: ``tasks_waiting``."""
        return ParkingLotStatistics(tasks_waiting=len(self._parked))
