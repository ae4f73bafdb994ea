"""Timeouts and sleeping: thin wrappers over CancelScope and the kernel's traps."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from ._core import (
    Abort,
    CancelScope,
    checkpoint,
    current_time,
    park_until,
    wait_task_rescheduled,
)

if TYPE_CHECKING:
    from collections.abc import Generator


def move_on_at(deadline: float, *, shield: bool = False) -> CancelScope:
    """A CancelScope that cancels itself at absolute time *deadline*."""
    return CancelScope(deadline=deadline, shield=shield)


def move_on_after(seconds: float, *, shield: bool = False) -> CancelScope:
    """A CancelScope that cancels itself *seconds* after it is entered."""
    if seconds < 0:
        raise ValueError("`seconds` must be non-negative")
    if math.isnan(seconds):
        raise ValueError("`seconds` must not be NaN")
    return CancelScope(shield=shield, relative_deadline=seconds)


def _abort_sleep(_: Any) -> Abort:
    return Abort.SUCCEEDED


async def sleep_forever() -> NoReturn:
    """Block until cancelled."""
    await wait_task_rescheduled(_abort_sleep)
    raise RuntimeError("Should never have been rescheduled!")


async def sleep(seconds: float) -> None:
    """Block for *seconds* seconds of the run's clock; ``sleep(0)`` is a checkpoint."""
    if seconds < 0:
        raise ValueError("`seconds` must be non-negative")
    if seconds == 0:
        await checkpoint()
    else:
        if math.isnan(seconds):
            raise ValueError("`seconds` must not be NaN")
        # sleep_until's engine half directly: no second coroutine per sleep.
        await park_until(current_time() + seconds)


class TooSlowError(Exception):
    """Raised by ``fail_after`` / ``fail_at`` when their deadline expired."""


@contextmanager
def fail_at(deadline: float, *, shield: bool = False) -> Generator[CancelScope, None, None]:
    """Like ``move_on_at``, but raise TooSlowError if the deadline cancelled the
    block."""
    with move_on_at(deadline, shield=shield) as scope:
        yield scope
    if scope.cancelled_caught:
        raise TooSlowError


@contextmanager
def fail_after(seconds: float, *, shield: bool = False) -> Generator[CancelScope, None, None]:
    """Like ``move_on_after``, but raise TooSlowError if the deadline cancelled the
    block."""
    with move_on_after(seconds, shield=shield) as scope:
        yield scope
    if scope.cancelled_caught:
        raise TooSlowError
