"""Abstract base classes (trio.abc's names)."""

from ._abc import (
    AsyncResource,
    Channel,
    Clock,
    HalfCloseableStream,
    HostnameResolver,
    Instrument,
    Listener,
    ReceiveChannel,
    ReceiveStream,
    SendChannel,
    SendStream,
    SocketFactory,
    Stream,
)
from ._util import fixup_module_metadata as _fixup

_fixup(__name__, globals())
del _fixup
