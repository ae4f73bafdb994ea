"""Nurseries: the only way to spawn tasks, and the guarantee that none outlives its block.

Design notes
------------
* A nursery is "closed" once its body has finished, it has no children, and no
  ``start()`` is pending; only then may ``__aexit__`` return. The parent parks in
  ``__aexit__`` with an abort function that *refuses* to abort (Abort.FAILED): a
  cancellation there only cancels the children via the nursery's scope, and the parent
  is woken by the last child to leave.
* Errors from children and from the body are collected and raised as one
  BaseExceptionGroup (strict mode), after the nursery's own cancel scope had a chance to
  catch the Cancelled exceptions it caused.
* ``start()`` runs the new task in a private nursery until it calls
  ``task_status.started()``; then the task (and its cancel-status subtree) is moved under
  the target nursery.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar

import outcome

from ._cancel import NONSTRICT_EXCEPTIONGROUP_NOTE, CancelReason, CancelScope
from ._exceptions import Cancelled, TrioInternalError
from ._impl import cancel_shielded_checkpoint, check_nursery_closed, wait_task_rescheduled
from ._run_context import GLOBAL_RUN_CONTEXT
from ._traps import Abort
from ._util import NoPublicConstructor, final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

StatusT = TypeVar("StatusT")
StatusT_contra = TypeVar("StatusT_contra", contravariant=True)


class TaskStatus(Protocol[StatusT_contra]):
    """What ``Nursery.start`` passes as ``task_status``: call ``started()`` once the task
    is ready."""

    def started(self, value: StatusT_contra | None = None) -> None:
        """Report that the task has started, handing *value* to ``start()``'s caller."""


class _NoStatus:
    pass


class _TaskStatus(Generic[StatusT]):
    __slots__ = ("_new_nursery", "_old_nursery", "_value")

    def __init__(self, old_nursery: Nursery, new_nursery: Nursery) -> None:
        self._old_nursery = old_nursery
        self._new_nursery = new_nursery
        self._value: Any = _NoStatus

    def __repr__(self) -> str:
        return f"<Task status object at {id(self):#x}>"

    def started(self, value: Any = None) -> None:
        if self._value is not _NoStatus:
            raise RuntimeError("called 'started' twice on the same task status")
        self._value = value
        old = self._old_nursery
        # If start() itself was cancelled, the task stays in the private nursery and is
        # cancelled along with it.
        if old._cancel_status.effectively_cancelled:
            return
        new = self._new_nursery
        if new._closed:
            raise TrioInternalError("nursery closed while a start() into it was pending")
        tasks = old._children
        old._children = set()
        for task in tasks:
            task._parent_nursery = new
            task._eventual_parent_nursery = None
            new._children.add(task)
        # Move the cancel-status subtree that hung under the private nursery's scope.
        old_status = old._cancel_status
        status_children = list(old_status._children or ())
        status_tasks = set(old_status._tasks)
        status_tasks.discard(old._parent_task)
        for status in status_children:
            status.parent = None
        for task in status_tasks:
            task._activate_cancel_status(None)
        for status in status_children:
            status.parent = new._cancel_status
        for task in status_tasks:
            task._activate_cancel_status(new._cancel_status)
        old._check_nursery_closed()


class _TaskStatusIgnored:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TASK_STATUS_IGNORED"

    def started(self, value: object = None) -> None:
        pass


TASK_STATUS_IGNORED: TaskStatus[Any] = _TaskStatusIgnored()


def _reraise_keeping_context(exc: BaseException) -> NoReturn:
    old_context = exc.__context__
    try:
        raise exc
    finally:
        value = sys.exc_info()[1]
        if value is not None:
            value.__context__ = old_context
        del value, exc


class NurseryManager:
    """The async context manager returned by ``open_nursery``."""

    __slots__ = ("_nursery", "_scope", "strict_exception_groups")

    def __init__(self, strict_exception_groups: bool) -> None:
        self.strict_exception_groups: bool = strict_exception_groups

    async def __aenter__(self) -> Nursery:
        from ._run import current_task

        self._scope = CancelScope()
        self._scope.__enter__()
        self._nursery = Nursery._create(current_task(), self._scope, self.strict_exception_groups)
        return self._nursery

    async def __aexit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        new_exc = await self._nursery._nested_child_finished(exc)
        combined = self._scope._close(new_exc)
        if combined is None:
            return True
        if combined is exc:
            return False
        try:
            _reraise_keeping_context(combined)
        finally:
            del combined, new_exc, exc

    def __enter__(self) -> NoReturn:
        raise RuntimeError("use 'async with open_nursery(...)', not 'with open_nursery(...)'")

    def __exit__(self, *args: object) -> NoReturn:  # pragma: no cover
        raise AssertionError("never called")


# Declared as the abstract manager, as trio declares it: type checkers then take the
# code after ``async with open_nursery()`` as reached only when the body completed.
def open_nursery(
    strict_exception_groups: bool | None = None,
) -> AbstractAsyncContextManager[Nursery]:
    """Return an async context manager that opens a ``Nursery``.

    Entering does not block; exiting waits for every child. If no child is running at
    exit, exiting is a schedule point but not a cancel point. With
    ``strict_exception_groups`` (the default, from ``run``), errors always arrive
    wrapped in an ExceptionGroup.
    """
    if strict_exception_groups is not None and not strict_exception_groups:
        from ._deprecate import warn_deprecated

        warn_deprecated(
            "open_nursery(strict_exception_groups=False)",
            "0.25.0",
            issue=2929,
            instead=(
                "the default value of True and rewrite exception handlers to handle "
                "ExceptionGroups"
            ),
        )
    if strict_exception_groups is None:
        try:
            runner = GLOBAL_RUN_CONTEXT.runner
        except AttributeError:
            raise RuntimeError("must be called from async context") from None
        strict_exception_groups = runner.strict_exception_groups
    return NurseryManager(strict_exception_groups)


@final
class Nursery(metaclass=NoPublicConstructor):
    """Holds child tasks; obtained from ``async with open_nursery() as nursery``.

    ``cancel_scope`` is the nursery's own scope: cancelling it cancels the body and
    every child. It is cancelled automatically when a child or the body raises.
    """

    def __init__(
        self, parent_task: Any, cancel_scope: CancelScope, strict_exception_groups: bool
    ) -> None:
        self._parent_task = parent_task
        self._strict_exception_groups = strict_exception_groups
        # Spawned tasks start with a shared empty stand-in (no allocation): the first
        # nursery gives them a list.
        if parent_task._child_nurseries:
            parent_task._child_nurseries.append(self)
        else:
            parent_task._child_nurseries = [self]
        # The parent's status is the nursery scope's status right after __enter__.
        self._cancel_status = parent_task._cancel_status
        self.cancel_scope = cancel_scope
        self._children: set[Any] = set()
        self._pending_excs: list[BaseException] = []
        self._nested_child_running = True
        self._parent_waiting_in_aexit = False
        self._pending_starts = 0
        self._closed = False

    @property
    def child_tasks(self) -> frozenset[Any]:
        """The child tasks still running."""
        return frozenset(self._children)

    @property
    def parent_task(self) -> Any:
        """The task that opened this nursery."""
        return self._parent_task

    def _add_exc(self, exc: BaseException, reason: CancelReason | None) -> None:
        self._pending_excs.append(exc)
        self.cancel_scope._cancel(reason)

    def _check_nursery_closed(self) -> None:
        check_nursery_closed(self)

    def _child_finished(self, task: Any, result: outcome.Outcome[Any]) -> None:
        self._children.remove(task)
        if self._closed and not hasattr(self, "_pending_excs"):
            # Abandoned by a misnested exit that already reported; nothing to collect.
            return
        if type(result) is not outcome.Value and isinstance(result, outcome.Error):
            self._add_exc(
                result.error,
                CancelReason(
                    source="nursery",
                    source_task=repr(task),
                    reason=f"child task raised exception {result.error!r}",
                ),
            )
        self._check_nursery_closed()

    async def _nested_child_finished(
        self, nested_child_exc: BaseException | None
    ) -> BaseException | None:
        if nested_child_exc is not None:
            self._add_exc(
                nested_child_exc,
                CancelReason(
                    source="nursery",
                    source_task=repr(self._parent_task),
                    reason=(
                        "Code block inside nursery contextmanager raised exception "
                        f"{nested_child_exc!r}"
                    ),
                ),
            )
        self._nested_child_running = False
        self._check_nursery_closed()

        if self._closed:
            # Nothing to wait for, but leaving is still a schedule point.
            try:
                await cancel_shielded_checkpoint()
            except BaseException as exc:
                self._add_exc(exc, reason=None)
        else:
            self._parent_waiting_in_aexit = True
            await wait_task_rescheduled(self._refuse_abort)

        if self._parent_task._child_nurseries.pop() is not self:
            # trio reports this as an AssertionError; keep the type users see.
            raise AssertionError("Nursery misnesting detected!")
        errors = self._pending_excs
        # Dropping the list breaks the cycle frame -> nursery -> errors -> traceback.
        del self._pending_excs
        if not errors:
            return None
        if self._strict_exception_groups:
            return BaseExceptionGroup("Exceptions from Trio nursery", errors)
        if len(errors) == 1:
            return errors[0]
        loose = BaseExceptionGroup("Exceptions from Trio nursery", errors)
        loose.add_note(NONSTRICT_EXCEPTIONGROUP_NOTE)
        return loose

    def _refuse_abort(self, raise_cancel: Callable[[], Any]) -> Abort:
        # The parent waits in __aexit__ until the last child leaves; a cancellation
        # reaches the children through the nursery's scope, so the wait itself is never
        # aborted. A KeyboardInterrupt delivered here must still not be lost.
        error = outcome.capture(raise_cancel).error
        if not isinstance(error, Cancelled):
            self._add_exc(
                error,
                CancelReason(source="KeyboardInterrupt", source_task=repr(self._parent_task)),
            )
        del error
        return Abort.FAILED

    def start_soon(
        self, async_fn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> None:
        """Spawn ``async_fn(*args)`` as a child task and return at once (no checkpoint)."""
        try:
            runner = GLOBAL_RUN_CONTEXT.runner
        except AttributeError:
            if self._closed:
                raise RuntimeError("Nursery is closed to new arrivals") from None
            raise RuntimeError(
                "start_soon() must be called from the thread of the nursery's run (from "
                "another thread, use vivace.from_thread.run_sync(nursery.start_soon, ...))"
            ) from None
        runner.spawn_child(async_fn, args, self, name)

    async def start(
        self, async_fn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> Any:
        """Spawn ``async_fn(*args, task_status=...)`` and wait until it calls
        ``task_status.started(value)``; return *value*. Until then the child runs under
        this call: its errors are raised here and cancelling this call cancels it."""
        if self._closed:
            raise RuntimeError("Nursery is closed to new arrivals")
        runner = GLOBAL_RUN_CONTEXT.runner
        try:
            self._pending_starts += 1
            try:
                async with open_nursery(strict_exception_groups=True) as old_nursery:
                    task_status: _TaskStatus[Any] = _TaskStatus(old_nursery, self)
                    thunk = functools.partial(async_fn, task_status=task_status)
                    task = runner.spawn_impl(thunk, args, old_nursery, name)
                    task._eventual_parent_nursery = self
            except BaseExceptionGroup as exc:
                if len(exc.exceptions) == 1:
                    _reraise_keeping_context(exc.exceptions[0])
                raise TrioInternalError(
                    "the private nursery of start() ended up with several tasks; was "
                    "the task_status object used to reach it and spawn more tasks?"
                ) from exc
            if task_status._value is _NoStatus:
                raise RuntimeError("child exited without calling task_status.started()")
            return task_status._value
        finally:
            self._pending_starts -= 1
            self._check_nursery_closed()
