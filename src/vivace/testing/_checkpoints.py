"""``assert_checkpoints`` / ``assert_no_checkpoints``: count the current task's
checkpoints across a block."""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from .._core import current_task

if TYPE_CHECKING:
    from collections.abc import Generator


@contextmanager
def _checkpoint_counter(expect_checkpoint: bool) -> Generator[None, None, None]:
    __tracebackhide__ = True
    task = current_task()
    cancel_before = task._cancel_points
    schedule_before = task._schedule_points
    try:
        yield
        if expect_checkpoint and (
            task._cancel_points == cancel_before or task._schedule_points == schedule_before
        ):
            raise AssertionError("assert_checkpoints block did not yield!")
    finally:
        if not expect_checkpoint and (
            task._cancel_points != cancel_before or task._schedule_points != schedule_before
        ):
            raise AssertionError("assert_no_checkpoints block yielded!")


def assert_checkpoints() -> AbstractContextManager[None]:
    """Context manager: fail with AssertionError unless the block raised or executed at
    least one checkpoint (a cancel point and a schedule point)."""
    __tracebackhide__ = True
    return _checkpoint_counter(True)


def assert_no_checkpoints() -> AbstractContextManager[None]:
    """Context manager: fail with AssertionError if the block executed any cancel point
    or schedule point."""
    __tracebackhide__ = True
    return _checkpoint_counter(False)
