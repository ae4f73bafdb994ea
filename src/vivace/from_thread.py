"""Call back into a run from a worker or foreign thread (trio.from_thread's names)."""

from ._threads import (
    from_thread_check_cancelled as check_cancelled,
    from_thread_run as run,
    from_thread_run_sync as run_sync,
)
from ._util import fixup_module_metadata as _fixup

__all__ = ["check_cancelled", "run", "run_sync"]

_fixup(__name__, globals())
del _fixup
