"""Abstract base classes (trio.abc's names)."""

from ._abc import (
    AsyncResource as AsyncResource,
    Channel as Channel,
    Clock as Clock,
    HalfCloseableStream as HalfCloseableStream,
    HostnameResolver as HostnameResolver,
    Instrument as Instrument,
    Listener as Listener,
    ReceiveChannel as ReceiveChannel,
    ReceiveStream as ReceiveStream,
    SendChannel as SendChannel,
    SendStream as SendStream,
    SocketFactory as SocketFactory,
    Stream as Stream,
)
from ._util import fixup_module_metadata as _fixup

_fixup(__name__, globals())
del _fixup
