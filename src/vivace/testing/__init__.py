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

# trio 0.33 deprecated its own RaisesGroup and Matcher in favour of pytest's (pytest 8.4
# took them over, Matcher renamed RaisesExc). vivace never had its own: the deprecated
# names hand out pytest's classes, with trio's warning, and pytest is imported only then.
_DEPRECATED_FOR_PYTEST = {"RaisesGroup": "RaisesGroup", "Matcher": "RaisesExc"}


def __getattr__(name: str) -> object:
    replacement = _DEPRECATED_FOR_PYTEST.get(name)
    if replacement is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .._core import warn_deprecated

    try:
        import pytest
    except ImportError:
        raise AttributeError(
            f"{__name__}.{name} is deprecated since Trio 0.33.0 and is pytest.{replacement} "
            "here, but pytest is not installed: install pytest>=8.4 and use "
            f"pytest.{replacement}"
        ) from None
    warn_deprecated(
        f"{__name__}.{name}", "0.33.0", issue=3326, instead=f"pytest.{replacement}"
    )
    return getattr(pytest, replacement)
