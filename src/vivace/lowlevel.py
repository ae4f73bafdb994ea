"""Low-level API for building your own primitives (trio.lowlevel's names)."""

import sys as _sys

from ._core import (
    Abort,
    ParkingLot,
    ParkingLotStatistics,
    RaiseCancelT,
    RunStatistics,
    RunVar,
    RunVarToken,
    Task,
    TrioToken,
    UnboundedQueue,
    UnboundedQueueStatistics,
    add_instrument,
    add_parking_lot_breaker,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    current_clock,
    current_root_task,
    current_statistics,
    current_task,
    current_trio_token,
    currently_ki_protected,
    disable_ki_protection,
    enable_ki_protection,
    in_trio_run,
    in_trio_task,
    notify_closing,
    permanently_detach_coroutine_object,
    reattach_detached_coroutine_object,
    remove_instrument,
    remove_parking_lot_breaker,
    reschedule,
    spawn_system_task,
    start_guest_run,
    start_thread_soon,
    temporarily_detach_coroutine_object,
    wait_readable,
    wait_task_rescheduled,
    wait_writable,
)
from ._socket_resolve import encode_hostname
from ._subprocess import open_process
from ._util import fixup_module_metadata as _fixup

if _sys.platform != "win32":
    from ._unix_pipes import FdStream

_fixup(__name__, globals())
del _fixup
