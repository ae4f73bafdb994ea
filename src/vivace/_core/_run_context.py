"""Per-thread run state shared by both engines.

``GLOBAL_RUN_CONTEXT.runner`` is set while a run is active in this thread (from setup
to close, including between guest-mode ticks). The current task is held by the runner
(``runner.current_task``), which the kernel sets around each task step; keeping it on
the runner instead of the thread-local saves a dict write per step.
"""

from __future__ import annotations

import sys
import threading


class _RunContext(threading.local):
    pass


GLOBAL_RUN_CONTEXT = _RunContext()

# Both engines' wait queues refuse to wake a run's task from another thread.
FOREIGN_THREAD_WAKE = (
    "must be called from async context: this would wake a task of a vivace run, which "
    "only that run's thread may do (from another thread, use "
    "vivace.from_thread.run_sync)"
)

# What sniffio reports while this library runs. vivace.install() (a later issue) switches
# it to "trio" so that libraries that dispatch on sniffio take their trio code path.
_LIBRARY_NAME = ["vivace"]


def library_name() -> str:
    """The name sniffio should report for the run starting now.

    "vivace", unless the module this process knows as ``trio`` *is* vivace (installed
    with ``vivace.install()`` or re-exported by a shim): code that imported "trio" and
    asks sniffio which library runs must then hear "trio", or it would not recognize
    its own library.
    """
    name = _LIBRARY_NAME[0]
    if name == "vivace":
        trio_module = sys.modules.get("trio")
        if trio_module is not None:
            run = getattr(trio_module, "run", None)
            if getattr(run, "__module__", None) == "vivace":
                return "trio"
    return name


def set_library_name(name: str) -> None:
    _LIBRARY_NAME[0] = name
