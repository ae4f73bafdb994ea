"""The core surface: the only module the API layer imports from ``vivace._core``."""

import select as _select
import sys as _sys

from ._abc import Clock as Clock, Instrument as Instrument
from ._cancel import CancelScope as CancelScope
from ._deprecate import (
    TrioDeprecationWarning as TrioDeprecationWarning,
    warn_deprecated as warn_deprecated,
)
from ._entry_queue import TrioToken as TrioToken
from ._exceptions import (
    BrokenResourceError as BrokenResourceError,
    BusyResourceError as BusyResourceError,
    Cancelled as Cancelled,
    ClosedResourceError as ClosedResourceError,
    EndOfChannel as EndOfChannel,
    RunFinishedError as RunFinishedError,
    TrioInternalError as TrioInternalError,
    WouldBlock as WouldBlock,
)
from ._impl import (
    ENGINE as ENGINE,
    BusyGuard as BusyGuard,
    ChannelState as ChannelState,
    EventBase as EventBase,
    LockBase as LockBase,
    ReceiveChannelBase as ReceiveChannelBase,
    SendChannelBase as SendChannelBase,
    cancel_shielded_checkpoint as cancel_shielded_checkpoint,
    checkpoint as checkpoint,
    park_until as park_until,
    sock_call as sock_call,
    sock_recv as sock_recv,
    sock_send as sock_send,
    sock_send_all as sock_send_all,
    stream_recv as stream_recv,
    stream_send_all as stream_send_all,
    wait_task_rescheduled as wait_task_rescheduled,
)
from ._ki import (
    currently_ki_protected as currently_ki_protected,
    disable_ki_protection as disable_ki_protection,
    enable_ki_protection as enable_ki_protection,
)
from ._local import RunVar as RunVar, RunVarToken as RunVarToken
from ._mock_clock import MockClock as MockClock
from ._nursery import (
    TASK_STATUS_IGNORED as TASK_STATUS_IGNORED,
    Nursery as Nursery,
    TaskStatus as TaskStatus,
    open_nursery as open_nursery,
)
from ._parking_lot import (
    ParkingLot as ParkingLot,
    ParkingLotStatistics as ParkingLotStatistics,
    add_parking_lot_breaker as add_parking_lot_breaker,
    remove_parking_lot_breaker as remove_parking_lot_breaker,
)
from ._run import (
    add_instrument as add_instrument,
    checkpoint_if_cancelled as checkpoint_if_cancelled,
    current_clock as current_clock,
    current_effective_deadline as current_effective_deadline,
    current_root_task as current_root_task,
    current_statistics as current_statistics,
    current_task as current_task,
    current_time as current_time,
    current_trio_token as current_trio_token,
    in_trio_run as in_trio_run,
    in_trio_task as in_trio_task,
    notify_closing as notify_closing,
    remove_instrument as remove_instrument,
    reschedule as reschedule,
    run as run,
    spawn_system_task as spawn_system_task,
    start_guest_run as start_guest_run,
    wait_all_tasks_blocked as wait_all_tasks_blocked,
    wait_readable as wait_readable,
    wait_writable as wait_writable,
)
from ._runner import RunStatistics as RunStatistics
from ._task import Task as Task
from ._thread_cache import start_thread_soon as start_thread_soon
from ._timers import sleep_until as sleep_until
from ._traps import (
    Abort as Abort,
    RaiseCancelT as RaiseCancelT,
    permanently_detach_coroutine_object as permanently_detach_coroutine_object,
    reattach_detached_coroutine_object as reattach_detached_coroutine_object,
    temporarily_detach_coroutine_object as temporarily_detach_coroutine_object,
)
from ._unbounded_queue import (
    UnboundedQueue as UnboundedQueue,
    UnboundedQueueStatistics as UnboundedQueueStatistics,
)
from ._util import NoPublicConstructor as NoPublicConstructor, final as final

__all__ = [
    "ENGINE",
    "TASK_STATUS_IGNORED",
    "Abort",
    "BrokenResourceError",
    "BusyGuard",
    "BusyResourceError",
    "CancelScope",
    "Cancelled",
    "Clock",
    "ClosedResourceError",
    "EndOfChannel",
    "Instrument",
    "MockClock",
    "NoPublicConstructor",
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
    "TrioDeprecationWarning",
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
    "final",
    "in_trio_run",
    "in_trio_task",
    "notify_closing",
    "open_nursery",
    "permanently_detach_coroutine_object",
    "reattach_detached_coroutine_object",
    "remove_instrument",
    "remove_parking_lot_breaker",
    "park_until",
    "reschedule",
    "run",
    "spawn_system_task",
    "start_guest_run",
    "sleep_until",
    "sock_call",
    "sock_recv",
    "sock_send",
    "sock_send_all",
    "start_thread_soon",
    "stream_recv",
    "stream_send_all",
    "temporarily_detach_coroutine_object",
    "wait_all_tasks_blocked",
    "wait_readable",
    "wait_task_rescheduled",
    "wait_writable",
    "warn_deprecated",
]

# trio's kqueue API, where trio has it: macOS and the BSDs (never Linux, whose kqueue is
# only the tests' emulation).
if _sys.platform not in ("linux", "win32", "android") and hasattr(_select, "kqueue"):
    from ._io_kqueue import (
        current_kqueue as current_kqueue,
        monitor_kevent as monitor_kevent,
        wait_kevent as wait_kevent,
    )

    __all__ += ["current_kqueue", "monitor_kevent", "wait_kevent"]

if _sys.platform == "win32":
    # trio's Windows-only lowlevel names (the IOCP backend's); absent elsewhere, as in trio.
    from ._io_windows import (
        WaitForSingleObject as WaitForSingleObject,
        current_iocp as current_iocp,
        monitor_completion_key as monitor_completion_key,
        readinto_overlapped as readinto_overlapped,
        register_with_iocp as register_with_iocp,
        wait_overlapped as wait_overlapped,
        write_overlapped as write_overlapped,
    )

    __all__ += [
        "WaitForSingleObject",
        "current_iocp",
        "monitor_completion_key",
        "readinto_overlapped",
        "register_with_iocp",
        "wait_overlapped",
        "write_overlapped",
    ]
del _select, _sys
