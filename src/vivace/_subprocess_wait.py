"""Waiting for a child to exit without reaping it.

Where the kernel has pidfds, the pidfd becomes readable when the child exits and the
engine's I/O manager watches it like any other fd. Elsewhere a worker thread blocks in
``waitid(..., WNOWAIT)``, which reports the exit but leaves the zombie for ``Popen`` to
reap, so ``Popen.returncode`` stays the single source of truth.
"""

from __future__ import annotations

import errno
import math
import os
from typing import TYPE_CHECKING

from ._core import spawn_system_task
from ._sync import CapacityLimiter, Event
from ._threads import to_thread_run_sync as _to_thread_run_sync

if TYPE_CHECKING:
    from ._subprocess import Process

# Waiter threads may block for a child's whole lifetime; they must not take the tokens
# of the default to_thread limiter that user code relies on.
_waitid_limiter = CapacityLimiter(math.inf)


def _block_until_exited(pid: int) -> None:
    while True:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            # SIGCHLD ignored: the kernel reaped the child already; Popen.wait copes.
            return
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            raise
        return


async def _watch_exit(pid: int, exited: Event) -> None:
    try:
        await _to_thread_run_sync(
            _block_until_exited, pid, abandon_on_cancel=True, limiter=_waitid_limiter
        )
    finally:
        # Even if the run is ending, wake whoever waits so they can reap.
        exited.set()


async def wait_child_exiting(process: Process) -> None:
    """Return once *process* has exited (it is not reaped here)."""
    if process._exit_event is None:
        process._exit_event = Event()
        # A system task, so that a cancelled waiter doesn't abandon the thread others
        # share, and so the watch outlives the task that started it.
        spawn_system_task(_watch_exit, process.pid, process._exit_event)
    await process._exit_event.wait()
