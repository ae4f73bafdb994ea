"""Abstract base classes (trio.abc's names)."""

from ._abc import (
    AsyncResource,
    Channel,
    HalfCloseableStream,
    HostnameResolver,
    Listener,
    ReceiveChannel,
    ReceiveStream,
    SendChannel,
    SendStream,
    SocketFactory,
    Stream,
)
from ._core import Clock, Instrument
from ._util import fixup_module_metadata as _fixup

_fixup(__name__, globals())
del _fixup
