"""``lowlevel.Task``: the Python half of a task (the hot half is the kernel's TaskBase)."""

from __future__ import annotations

import functools
import gc
from typing import TYPE_CHECKING, Any

import outcome

from ._exceptions import TrioInternalError
from ._impl import TaskBase, activate_cancel_status
from ._traps import Abort
from ._util import NoPublicConstructor, final

if TYPE_CHECKING:
    import types
    from collections.abc import Callable, Iterator

    from ._nursery import Nursery


def _display_name(source: object) -> str:
    if isinstance(source, functools.partial):
        source = source.func
    if isinstance(source, str):
        return source
    try:
        return f"{source.__module__}.{source.__qualname__}"  # type: ignore[attr-defined]
    except AttributeError:
        return repr(source)


@final
class Task(TaskBase, metaclass=NoPublicConstructor):
    """A running task. Get one from ``current_task()``, ``Nursery.child_tasks`` or the
    instrument hooks; there is no public constructor."""

    # No fields of its own: the task-tree fields (_parent_nursery, _name,
    # _child_nurseries, _eventual_parent_nursery) are TaskBase's, set by its __init__,
    # so the kernel can build tasks without Python-level calls.
    __slots__ = ()

    if TYPE_CHECKING:
        _parent_nursery: Nursery | None
        _name: object
        _child_nurseries: list[Nursery]
        _eventual_parent_nursery: Nursery | None

    def __repr__(self) -> str:
        return f"<Task {self.name!r} at {id(self):#x}>"

    @property
    def name(self) -> str:
        """The task's name: given to ``start_soon``/``start``, else the qualified name
        of the spawned function."""
        name = self._name
        if type(name) is not str:
            name = _display_name(name)
            self._name = name
        return name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    @property
    def parent_nursery(self) -> Nursery | None:
        """The nursery this task runs in (None for the root task)."""
        return self._parent_nursery

    @property
    def eventual_parent_nursery(self) -> Nursery | None:
        """For a task started with ``nursery.start()`` that has not yet called
        ``task_status.started()``: the nursery it will move to. Otherwise None."""
        return self._eventual_parent_nursery

    @property
    def child_nurseries(self) -> list[Nursery]:
        """The nurseries this task has open, outermost first."""
        return list(self._child_nurseries)

    def iter_await_frames(self) -> Iterator[tuple[types.FrameType, int]]:
        """Walk the chain of awaited coroutines from ``coro`` inwards, yielding
        ``(frame, lineno)`` for each (usable with ``traceback.StackSummary.extract``)."""
        coro: Any = self.coro
        while coro is not None:
            if hasattr(coro, "cr_frame"):
                frame = coro.cr_frame
                if frame is not None:
                    yield frame, frame.f_lineno
                coro = coro.cr_await
            elif hasattr(coro, "gi_frame"):
                frame = coro.gi_frame
                if frame is not None:
                    yield frame, frame.f_lineno
                coro = coro.gi_yieldfrom
            elif type(coro).__name__ in ("async_generator_athrow", "async_generator_asend"):
                # These wrappers do not expose their generator; find it via the GC.
                for referent in gc.get_referents(coro):
                    if hasattr(referent, "ag_frame"):
                        frame = referent.ag_frame
                        if frame is not None:
                            yield frame, frame.f_lineno
                        coro = referent.ag_await
                        break
                else:
                    return
            else:
                return

    def _deadline_expired(self) -> None:
        # This task's sleep_until() deadline fired (the heap already dropped the entry).
        # The run loop fires a pass's expired entries in deadline order: if a scope that
        # expired before this entry aborted the sleep, the task already has its Cancelled.
        if self._abort_func is not None:
            self._runner.reschedule(self)

    # -- cancellation plumbing (called by the kernel and the cancel-status tree) -------
    def _activate_cancel_status(self, cancel_status: Any) -> None:
        activate_cancel_status(self, cancel_status)

    def _attempt_abort(self, raise_cancel: Callable[[], Any]) -> None:
        abort_func = self._abort_func
        if abort_func is None:
            raise TrioInternalError("attempted to abort a task that is not parked")
        success = abort_func(raise_cancel)
        if type(success) is not Abort:
            raise TrioInternalError("abort function must return Abort enum")
        # The abort function may have rescheduled us itself (and must then say FAILED).
        self._abort_func = None
        if success is Abort.SUCCEEDED:
            self._runner.reschedule(self, outcome.capture(raise_cancel))

    def _attempt_delivery_of_any_pending_cancel(self) -> None:
        if self._abort_func is None:
            return
        status = self._cancel_status
        if not status.effectively_cancelled:
            return

        def raise_cancel() -> Any:
            raise status._make_cancelled()

        self._attempt_abort(raise_cancel)

    def _attempt_delivery_of_pending_ki(self) -> None:
        if self._abort_func is None:
            return
        runner = self._runner

        def raise_cancel() -> Any:
            runner.ki_pending = False
            raise KeyboardInterrupt

        self._attempt_abort(raise_cancel)
