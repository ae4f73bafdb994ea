"""Test helpers (trio.testing's names)."""

from .._core import MockClock as MockClock
from .._core import wait_all_tasks_blocked as wait_all_tasks_blocked
from .._threads import (
    active_thread_count as active_thread_count,
)
from .._threads import (
    wait_all_threads_completed as wait_all_threads_completed,
)
from .._util import fixup_module_metadata as _fixup
from ._checkpoints import (
    assert_checkpoints as assert_checkpoints,
)
from ._checkpoints import (
    assert_no_checkpoints as assert_no_checkpoints,
)
from ._trio_test import trio_test as trio_test

_fixup(__name__, globals())
del _fixup
