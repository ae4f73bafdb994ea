"""The core surface: the only module the API layer imports from ``vivace._core``."""

from ._cancel import CancelScope
from ._entry_queue import TrioToken
from ._exceptions import (
    BrokenResourceError,
    BusyResourceError,
    Cancelled,
    ClosedResourceError,
    EndOfChannel,
    RunFinishedError,
    TrioInternalError,
    WouldBlock,
)
from ._impl import ENGINE, cancel_shielded_checkpoint, checkpoint, wait_task_rescheduled
from ._ki import currently_ki_protected, disable_ki_protection, enable_ki_protection
from ._local import RunVar, RunVarToken
from ._mock_clock import MockClock
from ._nursery import TASK_STATUS_IGNORED, Nursery, TaskStatus, open_nursery
from ._parking_lot import (
    ParkingLot,
    ParkingLotStatistics,
    add_parking_lot_breaker,
    remove_parking_lot_breaker,
)
from ._run import (
    add_instrument,
    checkpoint_if_cancelled,
    current_clock,
    current_effective_deadline,
    current_root_task,
    current_statistics,
    current_task,
    current_time,
    current_trio_token,
    in_trio_run,
    in_trio_task,
    notify_closing,
    remove_instrument,
    reschedule,
    run,
    spawn_system_task,
    start_guest_run,
    wait_all_tasks_blocked,
    wait_readable,
    wait_writable,
)
from ._runner import RunStatistics
from ._task import Task
from ._thread_cache import start_thread_soon
from ._timers import sleep_until
from ._traps import (
    Abort,
    RaiseCancelT,
    permanently_detach_coroutine_object,
    reattach_detached_coroutine_object,
    temporarily_detach_coroutine_object,
)
from ._unbounded_queue import UnboundedQueue, UnboundedQueueStatistics

__all__ = [
    "ENGINE",
    "TASK_STATUS_IGNORED",
    "Abort",
    "BrokenResourceError",
    "BusyResourceError",
    "CancelScope",
    "Cancelled",
    "ClosedResourceError",
    "EndOfChannel",
    "MockClock",
    "Nursery",
    "ParkingLot",
    "ParkingLotStatistics",
    "RaiseCancelT",
    "RunFinishedError",
    "RunStatistics",
    "RunVar",
    "RunVarToken",
    "Task",
    "TaskStatus",
    "TrioInternalError",
    "TrioToken",
    "UnboundedQueue",
    "UnboundedQueueStatistics",
    "WouldBlock",
    "add_instrument",
    "add_parking_lot_breaker",
    "cancel_shielded_checkpoint",
    "checkpoint",
    "checkpoint_if_cancelled",
    "current_clock",
    "current_effective_deadline",
    "current_root_task",
    "current_statistics",
    "current_task",
    "current_time",
    "current_trio_token",
    "currently_ki_protected",
    "disable_ki_protection",
    "enable_ki_protection",
    "in_trio_run",
    "in_trio_task",
    "notify_closing",
    "open_nursery",
    "permanently_detach_coroutine_object",
    "reattach_detached_coroutine_object",
    "remove_instrument",
    "remove_parking_lot_breaker",
    "reschedule",
    "run",
    "spawn_system_task",
    "start_guest_run",
    "sleep_until",
    "start_thread_soon",
    "temporarily_detach_coroutine_object",
    "wait_all_tasks_blocked",
    "wait_readable",
    "wait_task_rescheduled",
    "wait_writable",
]
