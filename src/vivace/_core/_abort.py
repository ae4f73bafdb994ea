"""``Abort``: what an abort function answers the kernel.

A leaf module (it imports nothing of vivace) so that every engine module, compiled or
reference, can name ``Abort`` at import time: ``_traps`` imports the engine switch,
which imports the engine modules, so they cannot import it from there.
"""

from __future__ import annotations

import enum


class Abort(enum.Enum):
    """What an abort function tells the kernel (see ``wait_task_rescheduled``).

    SUCCEEDED: the operation was cancelled; the kernel reschedules the task with the
    cancellation. FAILED: the operation could not be stopped at once; whoever completes
    it will call ``reschedule``.
    """

    SUCCEEDED = 1
    FAILED = 2
