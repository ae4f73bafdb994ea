"""The low-level trap API built on the kernel's trap awaitables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeAlias

import outcome

from . import _impl
from ._abort import Abort

RaiseCancelT: TypeAlias = Callable[[], NoReturn]

wait_task_rescheduled = _impl.wait_task_rescheduled
cancel_shielded_checkpoint = _impl.cancel_shielded_checkpoint


async def permanently_detach_coroutine_object(final_outcome: outcome.Outcome[Any]) -> Any:
    """Detach the calling coroutine from the run for good; the task ends with
    *final_outcome* as if it had returned or raised it."""
    from ._run import current_task

    if current_task().child_nurseries:
        raise RuntimeError("can't permanently detach a coroutine object with open nurseries")
    return await _impl.permanently_detach_coroutine_object(final_outcome)


async def temporarily_detach_coroutine_object(
    abort_func: Callable[[Callable[[], Any]], Abort],
) -> Any:
    """Detach the calling coroutine so another coroutine runner can drive it; it comes
    back with ``reattach_detached_coroutine_object``. *abort_func* must return
    ``Abort.FAILED``."""
    return await _impl.async_yield(_impl.WaitTaskRescheduled(abort_func))


_REATTACHING = "reattaching"


async def reattach_detached_coroutine_object(task: Any, yield_value: object) -> None:
    """Hand a detached coroutine back to *task*: yields *yield_value* to the foreign
    runner, after which the kernel drives the coroutine again."""
    if not task.coro.cr_running:
        raise RuntimeError("given task does not match calling coroutine")
    task._runner.reschedule(task, outcome.Value(_REATTACHING))
    value = await _impl.async_yield(yield_value)
    if value != outcome.Value(_REATTACHING):
        raise RuntimeError(f"reattach got an unexpected value {value!r}")
