"""Run blocking synchronous code in a worker thread (trio.to_thread's names)."""

from ._threads import (
    current_default_thread_limiter as current_default_thread_limiter,
    to_thread_run_sync as run_sync,
)
from ._util import fixup_module_metadata as _fixup

__all__ = ["current_default_thread_limiter", "run_sync"]

_fixup(__name__, globals())
del _fixup
