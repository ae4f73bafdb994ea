"""The engine switch: the one place that decides compiled vs reference engine.

* ``VIVACE_NO_EXTENSIONS=1``      -> the pure-Python reference engine.
* default                          -> the compiled engine if it was built, else the
                                      reference (silently: pure-Python installs work).
* ``VIVACE_REQUIRE_EXTENSIONS=1`` -> a missing or broken compiled engine is an
                                      ImportError instead of a fallback.

``ENGINE`` says which one loaded; the test suite's guard test checks it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

_NO_EXT = os.environ.get("VIVACE_NO_EXTENSIONS", "") not in ("", "0")
_REQUIRE_EXT = os.environ.get("VIVACE_REQUIRE_EXTENSIONS", "") not in ("", "0")

if _NO_EXT and _REQUIRE_EXT:
    raise ImportError(
        "VIVACE_NO_EXTENSIONS and VIVACE_REQUIRE_EXTENSIONS are both set; unset one of them"
    )

ENGINE: str
IMPORT_ERROR: BaseException | None = None

# The compiled engine first (type checkers skip this block and see the reference
# below); the reference when it is asked for or (without REQUIRE) missing.
_use_reference = _NO_EXT
if not TYPE_CHECKING and not _NO_EXT:
    try:
        if sys.platform == "linux":  # setup.py builds _epoll* only there
            from ._ext._epoll import EpollPoller
            from ._ext._epoll_sockio import (
                BusyGuard,
                sock_call,
                sock_recv,
                sock_send,
                sock_send_all,
                stream_recv,
                stream_send_all,
                wait_fd,
            )
        else:
            from ._epoll_py import EpollPoller
            from ._sockio_py import (
                BusyGuard,
                sock_call,
                sock_recv,
                sock_send,
                sock_send_all,
                stream_recv,
                stream_send_all,
                wait_fd,
            )
        from ._ext._heap import DeadlineHeap
        from ._ext._kernel import (
            CANCEL_SHIELDED_CHECKPOINT,
            CHECKPOINT,
            RESUME_NONE,
            KernelBase,
            PermanentlyDetachCoroutineObject,
            SystemClock,
            TaskBase,
            WaitTaskRescheduled,
            async_yield,
            cancel_shielded_checkpoint,
            checkpoint,
            permanently_detach_coroutine_object,
            wait_task_rescheduled,
        )
        from ._ext._scope import CancelScopeBase, CancelStatusBase, set_status_class
        from ._ext._sync import (
            ChannelState,
            EventBase,
            LockBase,
            LotBase,
            ReceiveChannelBase,
            SendChannelBase,
            park_until,
            set_lot_class,
        )

        ENGINE = "compiled"
    except ImportError as exc:
        if _REQUIRE_EXT:
            raise ImportError(
                "VIVACE_REQUIRE_EXTENSIONS=1 but the compiled engine could not be "
                f"imported ({exc}); build it with 'pip install -e .' (needs a C compiler "
                "and Cython) or unset VIVACE_REQUIRE_EXTENSIONS"
            ) from exc
        IMPORT_ERROR = exc
        _use_reference = True

if TYPE_CHECKING or _use_reference:
    from ._epoll_py import EpollPoller  # importable anywhere; usable on Linux only
    from ._heap_py import DeadlineHeap
    from ._kernel_py import (
        CANCEL_SHIELDED_CHECKPOINT,
        CHECKPOINT,
        RESUME_NONE,
        KernelBase,
        PermanentlyDetachCoroutineObject,
        SystemClock,
        TaskBase,
        WaitTaskRescheduled,
        async_yield,
        cancel_shielded_checkpoint,
        checkpoint,
        permanently_detach_coroutine_object,
        wait_task_rescheduled,
    )
    from ._scope_py import CancelScopeBase, CancelStatusBase, set_status_class
    from ._sockio_py import (
        BusyGuard,
        sock_call,
        sock_recv,
        sock_send,
        sock_send_all,
        stream_recv,
        stream_send_all,
        wait_fd,
    )
    from ._sync_py import (
        ChannelState,
        EventBase,
        LockBase,
        LotBase,
        ReceiveChannelBase,
        SendChannelBase,
        park_until,
        set_lot_class,
    )

    ENGINE = "reference"


def debug_counters() -> dict[str, int] | None:
    """Live-object counts of a VIVACE_DEBUG build of the compiled engine (tasks,
    kernels, deadline heaps); None for a release build or the reference engine."""
    if ENGINE != "compiled":
        return None
    from ._ext import _heap, _kernel  # type: ignore[attr-defined]

    kernel_counts = _kernel.debug_counters()
    heap_counts = _heap.debug_counters()
    if kernel_counts is None or heap_counts is None:
        return None
    return {**kernel_counts, **heap_counts}


__all__ = [
    "CANCEL_SHIELDED_CHECKPOINT",
    "CHECKPOINT",
    "ENGINE",
    "CancelScopeBase",
    "CancelStatusBase",
    "RESUME_NONE",
    "BusyGuard",
    "ChannelState",
    "DeadlineHeap",
    "EpollPoller",
    "EventBase",
    "KernelBase",
    "LockBase",
    "LotBase",
    "PermanentlyDetachCoroutineObject",
    "ReceiveChannelBase",
    "SendChannelBase",
    "SystemClock",
    "TaskBase",
    "WaitTaskRescheduled",
    "async_yield",
    "cancel_shielded_checkpoint",
    "checkpoint",
    "debug_counters",
    "permanently_detach_coroutine_object",
    "sock_call",
    "sock_recv",
    "sock_send",
    "sock_send_all",
    "stream_recv",
    "stream_send_all",
    "wait_fd",
    "set_status_class",
    "park_until",
    "set_lot_class",
    "wait_task_rescheduled",
]
