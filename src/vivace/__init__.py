"""vivace: structured concurrency with Trio's API and semantics, on a compiled engine.

Use it as a drop-in: ``import vivace as trio``.
"""

from ._channel import (
    MemoryChannelStatistics,
    MemoryReceiveChannel,
    MemorySendChannel,
    as_safe_channel,
    open_memory_channel,
)
from ._core import (
    TASK_STATUS_IGNORED,
    BrokenResourceError,
    BusyResourceError,
    Cancelled,
    CancelScope,
    ClosedResourceError,
    EndOfChannel,
    Nursery,
    RunFinishedError,
    TaskStatus,
    TrioDeprecationWarning,
    TrioInternalError,
    WouldBlock,
    current_effective_deadline,
    current_time,
    open_nursery,
    run,
    sleep_until,
)
from ._dtls import DTLSChannel, DTLSChannelStatistics, DTLSEndpoint
from ._file_io import open_file, wrap_file
from ._highlevel_generic import (
    StapledStream,
    aclose_forcefully,
)
from ._highlevel_open_tcp_listeners import (
    open_tcp_listeners,
    serve_tcp,
)
from ._highlevel_open_tcp_stream import open_tcp_stream
from ._highlevel_open_unix_stream import open_unix_socket
from ._highlevel_serve_listeners import serve_listeners
from ._highlevel_socket import (
    SocketListener,
    SocketStream,
)
from ._highlevel_ssl_helpers import (
    open_ssl_over_tcp_listeners,
    open_ssl_over_tcp_stream,
    serve_ssl_over_tcp,
)
from ._install import _register_anyio_hint, install, uninstall
from ._path import Path, PosixPath, WindowsPath
from ._signals import open_signal_receiver
from ._ssl import (
    NeedHandshakeError,
    SSLListener,
    SSLStream,
)
from ._subprocess import Process, run_process
from ._sync import (
    CapacityLimiter,
    CapacityLimiterStatistics,
    Condition,
    ConditionStatistics,
    Event,
    EventStatistics,
    Lock,
    LockStatistics,
    Semaphore,
    StrictFIFOLock,
)
from ._timeouts import (
    TooSlowError,
    fail_after,
    fail_at,
    move_on_after,
    move_on_at,
    sleep,
    sleep_forever,
)
from ._util import fixup_module_metadata as _fixup
from ._version import __version__

# Submodules are part of the public namespace, as in trio.
from . import abc, lowlevel, testing  # noqa: E402, F401  isort: skip
from . import from_thread, to_thread  # noqa: E402, F401  isort: skip
from . import socket  # noqa: E402, F401  isort: skip

_fixup(__name__, globals())
del _fixup
_register_anyio_hint()
del _register_anyio_hint
