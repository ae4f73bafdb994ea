"""Abstract base classes (trio.abc's names)."""

from ._abc import (
    AsyncResource as AsyncResource,
    Channel as Channel,
    HalfCloseableStream as HalfCloseableStream,
    HostnameResolver as HostnameResolver,
    Listener as Listener,
    ReceiveChannel as ReceiveChannel,
    ReceiveStream as ReceiveStream,
    SendChannel as SendChannel,
    SendStream as SendStream,
    SocketFactory as SocketFactory,
    Stream as Stream,
)
from ._core import Clock as Clock, Instrument as Instrument
from ._util import fixup_module_metadata as _fixup

_fixup(__name__, globals())
del _fixup
