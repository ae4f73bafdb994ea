"""Test helpers (trio.testing's names)."""

from .._core import MockClock, wait_all_tasks_blocked
from .._threads import (
    active_thread_count,
    wait_all_threads_completed,
)
from .._util import fixup_module_metadata as _fixup
from ._check_streams import (
    check_half_closeable_stream,
    check_one_way_stream,
    check_two_way_stream,
)
from ._checkpoints import (
    assert_checkpoints,
    assert_no_checkpoints,
)
from ._memory_streams import (
    MemoryReceiveStream,
    MemorySendStream,
    lockstep_stream_one_way_pair,
    lockstep_stream_pair,
    memory_stream_one_way_pair,
    memory_stream_pair,
    memory_stream_pump,
)
from ._network import open_stream_to_socket_listener
from ._sequencer import Sequencer
from ._trio_test import trio_test

_fixup(__name__, globals())
del _fixup
