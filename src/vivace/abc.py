"""Abstract base classes (trio.abc's names)."""

from ._abc import (
    AsyncResource as AsyncResource,
)
from ._abc import (
    Channel as Channel,
)
from ._abc import Clock as Clock
from ._abc import (
    HalfCloseableStream as HalfCloseableStream,
)
from ._abc import (
    HostnameResolver as HostnameResolver,
)
from ._abc import Instrument as Instrument
from ._abc import (
    Listener as Listener,
)
from ._abc import (
    ReceiveChannel as ReceiveChannel,
)
from ._abc import (
    ReceiveStream as ReceiveStream,
)
from ._abc import (
    SendChannel as SendChannel,
)
from ._abc import (
    SendStream as SendStream,
)
from ._abc import (
    SocketFactory as SocketFactory,
)
from ._abc import (
    Stream as Stream,
)
from ._util import fixup_module_metadata as _fixup

_fixup(__name__, globals())
del _fixup
