"""``lowlevel.ParkingLot``: the fair wait queue every blocking primitive is built on,
and the registry of lot breakers.

Design notes
------------
The queue itself and its hot operations (park, unpark, repark, break_lot) are the
engine's ``LotBase`` (``_sync_py`` / ``_ext/_sync.pyx``): an insertion-ordered queue of
parked tasks with O(1) append, pop-oldest and removal of a cancelled waiter. A parked
task's ``custom_sleep_data`` is the lot it is in (``repark`` updates it), and its abort
function removes it from whichever lot holds it by then. A lot can be *broken* (by a
task that exits while registered as its breaker, or explicitly): parked and future
parkers get BrokenResourceError. Lock registers its owner as a breaker of its lot.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import TYPE_CHECKING, Any

from ._exceptions import BrokenResourceError
from ._impl import LotBase, set_lot_class
from ._util import final

if TYPE_CHECKING:
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
class ParkingLot(LotBase):
    """A fair (FIFO) queue of parked tasks, with cancellation and re-queuing.

    ``len(lot)`` is the number of parked tasks; ``bool(lot)`` whether there are any.
    ``park()`` blocks the calling task; ``unpark(count=n)`` / ``unpark_all()`` wake the
    oldest ones and return them; ``repark(other, count=n)`` moves them to another lot
    without waking them; ``break_lot()`` makes every parked and future parker raise
    BrokenResourceError.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        # The engine's methods, with the task type they hand out spelled out.
        def unpark(self, *, count: int | float = 1) -> list[Task]: ...
        def unpark_all(self) -> list[Task]: ...
        def break_lot(self, task: Task | None = None) -> None: ...

    def statistics(self) -> ParkingLotStatistics:
        """Debugging information: ``tasks_waiting``."""
        return ParkingLotStatistics(tasks_waiting=len(self))


set_lot_class(ParkingLot)
