"""Sleeping without a cancel scope.

Design notes
------------
``sleep_until(d)`` behaves exactly like ``with move_on_at(d): await sleep_forever()`` --
a schedule point, a cancel point for enclosing scopes, and a silent wake-up at the
deadline -- but costs one deadline-heap entry instead of a CancelScope, a CancelStatus
and their bookkeeping. The parked task itself is the heap payload: when the deadline
fires the run loop calls ``task._deadline_expired()``, which reschedules it. Enclosing
cancellation reaches the task through the normal abort path, whose abort function
removes the heap entry. Exactly one of the two wins: rescheduling clears the abort
function, and a successful abort removes the entry before it can fire. That engine
half is ``park_until`` (``_sync_py.py``, compiled in ``_ext/_sync_sleep.pxi``: one
C operation object instead of a coroutine and a closure per sleep).
"""

from __future__ import annotations

from math import isnan

from ._impl import park_until


async def sleep_until(deadline: float) -> None:
    """Block until the run's clock reaches *deadline* (a checkpoint even if it already
    has)."""
    if isnan(deadline):
        raise ValueError("deadline must not be NaN")
    await park_until(deadline)
