"""Low-level API for building your own primitives (trio.lowlevel's names)."""

from ._core import (
    Abort as Abort,
)
from ._core import (
    ParkingLot as ParkingLot,
)
from ._core import (
    ParkingLotStatistics as ParkingLotStatistics,
)
from ._core import (
    RaiseCancelT as RaiseCancelT,
)
from ._core import (
    RunStatistics as RunStatistics,
)
from ._core import (
    RunVar as RunVar,
)
from ._core import (
    RunVarToken as RunVarToken,
)
from ._core import (
    Task as Task,
)
from ._core import (
    TrioToken as TrioToken,
)
from ._core import (
    add_instrument as add_instrument,
)
from ._core import (
    add_parking_lot_breaker as add_parking_lot_breaker,
)
from ._core import (
    cancel_shielded_checkpoint as cancel_shielded_checkpoint,
)
from ._core import (
    checkpoint as checkpoint,
)
from ._core import (
    checkpoint_if_cancelled as checkpoint_if_cancelled,
)
from ._core import (
    current_clock as current_clock,
)
from ._core import (
    current_root_task as current_root_task,
)
from ._core import (
    current_statistics as current_statistics,
)
from ._core import (
    current_task as current_task,
)
from ._core import (
    current_trio_token as current_trio_token,
)
from ._core import (
    currently_ki_protected as currently_ki_protected,
)
from ._core import (
    disable_ki_protection as disable_ki_protection,
)
from ._core import (
    enable_ki_protection as enable_ki_protection,
)
from ._core import (
    in_trio_run as in_trio_run,
)
from ._core import (
    in_trio_task as in_trio_task,
)
from ._core import (
    notify_closing as notify_closing,
)
from ._core import (
    permanently_detach_coroutine_object as permanently_detach_coroutine_object,
)
from ._core import (
    reattach_detached_coroutine_object as reattach_detached_coroutine_object,
)
from ._core import (
    remove_instrument as remove_instrument,
)
from ._core import (
    remove_parking_lot_breaker as remove_parking_lot_breaker,
)
from ._core import (
    reschedule as reschedule,
)
from ._core import (
    spawn_system_task as spawn_system_task,
)
from ._core import (
    start_guest_run as start_guest_run,
)
from ._core import (
    start_thread_soon as start_thread_soon,
)
from ._core import (
    temporarily_detach_coroutine_object as temporarily_detach_coroutine_object,
)
from ._core import (
    UnboundedQueue as UnboundedQueue,
)
from ._core import (
    UnboundedQueueStatistics as UnboundedQueueStatistics,
)
from ._core import (
    wait_readable as wait_readable,
)
from ._core import (
    wait_task_rescheduled as wait_task_rescheduled,
)
from ._core import (
    wait_writable as wait_writable,
)
from ._util import fixup_module_metadata as _fixup

_fixup(__name__, globals())
del _fixup
