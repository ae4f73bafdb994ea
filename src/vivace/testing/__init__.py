"""Test helpers (trio.testing's names)."""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from .._core import MockClock as MockClock, wait_all_tasks_blocked as wait_all_tasks_blocked
from .._threads import (
    active_thread_count as active_thread_count,
    wait_all_threads_completed as wait_all_threads_completed,
)
from .._util import fixup_module_metadata as _fixup
from ._check_streams import (
    check_half_closeable_stream as check_half_closeable_stream,
    check_one_way_stream as check_one_way_stream,
    check_two_way_stream as check_two_way_stream,
)
from ._checkpoints import (
    assert_checkpoints as assert_checkpoints,
    assert_no_checkpoints as assert_no_checkpoints,
)
from ._memory_streams import (
    MemoryReceiveStream as MemoryReceiveStream,
    MemorySendStream as MemorySendStream,
    lockstep_stream_one_way_pair as lockstep_stream_one_way_pair,
    lockstep_stream_pair as lockstep_stream_pair,
    memory_stream_one_way_pair as memory_stream_one_way_pair,
    memory_stream_pair as memory_stream_pair,
    memory_stream_pump as memory_stream_pump,
)
from ._network import open_stream_to_socket_listener as open_stream_to_socket_listener
from ._sequencer import Sequencer as Sequencer
from ._trio_test import trio_test as trio_test

_fixup(__name__, globals())
del _fixup

# trio 0.33 deprecated its own RaisesGroup and Matcher in favour of pytest's (pytest 8.4
# took them over, Matcher renamed RaisesExc). vivace never had its own: the deprecated
# names hand out pytest's classes, with trio's warning, and pytest is imported only then.
_DEPRECATED_FOR_PYTEST = {"RaisesGroup": "RaisesGroup", "Matcher": "RaisesExc"}


def _deprecated_attribute(name: str) -> object:
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


if not _TYPE_CHECKING:
    # Hidden from type checkers, as trio's deprecated names are: a module __getattr__
    # they could see would make every misspelt ``testing.X`` type-check as ``object``.
    __getattr__ = _deprecated_attribute
