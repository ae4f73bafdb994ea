"""vivace: structured concurrency with Trio's API and semantics, on a compiled engine.

Use it as a drop-in: ``import vivace as trio``.
"""

from ._channel import MemoryChannelStatistics as MemoryChannelStatistics
from ._channel import MemoryReceiveChannel as MemoryReceiveChannel
from ._channel import MemorySendChannel as MemorySendChannel
from ._channel import as_safe_channel as as_safe_channel
from ._channel import open_memory_channel as open_memory_channel
from ._core import (
    TASK_STATUS_IGNORED as TASK_STATUS_IGNORED,
)
from ._core import (
    BrokenResourceError as BrokenResourceError,
)
from ._core import (
    BusyResourceError as BusyResourceError,
)
from ._core import (
    Cancelled as Cancelled,
)
from ._core import (
    CancelScope as CancelScope,
)
from ._core import (
    ClosedResourceError as ClosedResourceError,
)
from ._core import (
    EndOfChannel as EndOfChannel,
)
from ._core import (
    Nursery as Nursery,
)
from ._core import (
    RunFinishedError as RunFinishedError,
)
from ._core import (
    TaskStatus as TaskStatus,
)
from ._core import (
    TrioInternalError as TrioInternalError,
)
from ._core import (
    WouldBlock as WouldBlock,
)
from ._core import (
    current_effective_deadline as current_effective_deadline,
)
from ._core import (
    current_time as current_time,
)
from ._core import (
    open_nursery as open_nursery,
)
from ._core import (
    run as run,
)
from ._deprecate import TrioDeprecationWarning as TrioDeprecationWarning
from ._highlevel_generic import StapledStream as StapledStream
from ._highlevel_generic import aclose_forcefully as aclose_forcefully
from ._sync import CapacityLimiter as CapacityLimiter
from ._sync import CapacityLimiterStatistics as CapacityLimiterStatistics
from ._sync import Condition as Condition
from ._sync import ConditionStatistics as ConditionStatistics
from ._sync import Event as Event
from ._sync import EventStatistics as EventStatistics
from ._sync import Lock as Lock
from ._sync import LockStatistics as LockStatistics
from ._sync import Semaphore as Semaphore
from ._sync import StrictFIFOLock as StrictFIFOLock
from ._timeouts import (
    TooSlowError as TooSlowError,
)
from ._timeouts import (
    fail_after as fail_after,
)
from ._timeouts import (
    fail_at as fail_at,
)
from ._timeouts import (
    move_on_after as move_on_after,
)
from ._timeouts import (
    move_on_at as move_on_at,
)
from ._timeouts import (
    sleep as sleep,
)
from ._timeouts import (
    sleep_forever as sleep_forever,
)
from ._timeouts import (
    sleep_until as sleep_until,
)
from ._util import fixup_module_metadata as _fixup
from ._version import __version__ as __version__

# Submodules are part of the public namespace, as in trio.
from . import abc, lowlevel, testing  # noqa: E402, F401  isort: skip
from . import from_thread, to_thread  # noqa: E402, F401  isort: skip

_fixup(__name__, globals())
del _fixup
