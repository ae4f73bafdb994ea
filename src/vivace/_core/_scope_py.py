"""The hot half of cancel scopes: entering and leaving a ``with`` block.

Reference twin of ``_ext/_scope.pyx``. ``_cancel.py`` builds ``CancelStatus`` and
``CancelScope`` on top of these two bases and keeps everything that is not run on
every ``with`` block (cancelling, recalculation, deadlines changed while entered,
misnesting, catching ``Cancelled``).

Design notes
------------
* The fields of both classes live here so the compiled twin can reach them in C; the
  subclasses add no fields (``__slots__ = ()``).
* ``__enter__`` and ``__exit__`` do the common case themselves -- the current task,
  properly nested, nothing to catch, no misnesting, not a guest run -- and hand
  anything else to the subclass's ``_exit_slow`` before any state has changed, so the
  slow path sees exactly what it would have seen had it been called first.
* The subclass supplies the callbacks used here: ``CancelStatus.recalculate``,
  ``CancelStatus._close_abandoned``, ``CancelScope._cancel_at_entry``,
  ``CancelScope._update_deadline_registration`` and ``CancelScope._exit_slow``;
  ``_cancel.py`` registers the status class with ``set_status_class``.
"""

from __future__ import annotations

from math import inf, isnan
from typing import TYPE_CHECKING, Any

from ._kernel_py import activate_cancel_status
from ._run_context import GLOBAL_RUN_CONTEXT

# The engine exports: what ``_impl`` binds from this module or from ``_ext/_scope``.
__all__ = ["CancelScopeBase", "CancelStatusBase", "set_status_class"]

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

_status_class: Any = None
_NO_STATUS_CLASS = "no cancel-status class registered; call set_status_class() first"


def set_status_class(cls: type) -> None:
    """Tell ``CancelScopeBase.__enter__`` which class to instantiate for a status."""
    global _status_class
    if not isinstance(cls, type) or not issubclass(cls, CancelStatusBase):
        raise TypeError("the status class must be a CancelStatusBase subclass")
    # The compiled twin makes statuses with the class's tp_new and its own C init,
    # so an override of either would run on one engine only.
    if cls.__init__ is not CancelStatusBase.__init__ or cls.__new__ is not CancelStatusBase.__new__:
        raise TypeError("the status class must not override __init__ or __new__")
    _status_class = cls


class CancelStatusBase:
    __slots__ = (
        "_children",
        "_parent",
        "_scope",
        "_tasks",
        "abandoned_by_misnesting",
        "effectively_cancelled",
    )

    def __init__(self, scope: Any, parent: Any) -> None:
        self._scope = scope
        self.effectively_cancelled = False
        self._parent: Any = None
        # Created on first use: most statuses (one per entered scope) never get a child,
        # and a set per scope is a GC-tracked allocation on the hot path.
        self._children: set[Any] | None = None
        self._tasks: set[Any] = set()
        self.abandoned_by_misnesting = False
        if parent is not None:
            # A fresh status has no old parent, and only needs recalculating if it
            # starts out cancelled.
            self._parent = parent
            siblings = parent._children
            if siblings is None:
                parent._children = siblings = set()
            siblings.add(self)
            if scope._cancel_called or (parent.effectively_cancelled and not scope._shield):
                self.recalculate()  # type: ignore[attr-defined]

    @property
    def parent_cancellation_is_visible_to_us(self) -> bool:
        parent = self._parent
        return parent is not None and not self._scope._shield and parent.effectively_cancelled

    def close(self) -> None:
        parent = self._parent
        if parent is not None:
            if parent._children:
                parent._children.discard(self)
            self._parent = None
        if self._tasks or self._children:
            self._close_abandoned()  # type: ignore[attr-defined]


class CancelScopeBase:
    __slots__ = (
        "__weakref__",
        "_cancel_called",
        "_cancel_reason",
        "_cancel_status",
        "_deadline",
        "_has_been_entered",
        "_heap_handle",
        "_relative_deadline",
        "_runner",
        "_shield",
        "cancelled_caught",
    )

    def __init__(
        self,
        *,
        deadline: float = inf,
        relative_deadline: float = inf,
        shield: bool = False,
    ) -> None:
        # The defaults need no checking (NaN != inf, so NaN still gets checked).
        if deadline != inf:
            if isnan(deadline):
                raise ValueError("deadline must not be NaN")
            deadline = float(deadline)
        if relative_deadline != inf:
            if isnan(relative_deadline):
                raise ValueError("relative deadline must not be NaN")
            if relative_deadline < 0:
                raise ValueError("timeout must be non-negative")
            if deadline != inf:
                raise ValueError("Cannot specify both a deadline and a relative deadline")
            relative_deadline = float(relative_deadline)
        if shield is not False and shield is not True:
            raise TypeError("shield must be a bool")
        self._deadline = deadline
        self._relative_deadline = relative_deadline
        self._shield = shield
        self._cancel_status: Any = None
        self._has_been_entered = False
        self._cancel_called = False
        self._cancel_reason: Any = None
        self._heap_handle: int | None = None
        self._runner: Any = None
        self.cancelled_caught: bool = False

    def __enter__(self) -> Self:
        runner: Any = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        task = runner.current_task if runner is not None else None
        if task is None:
            raise RuntimeError("must be called from async context")
        if _status_class is None:
            # Internal misuse (this engine's _cancel.py was never imported): refuse
            # before anything changes, so the scope is still unentered.
            raise RuntimeError(_NO_STATUS_CLASS)
        if self._has_been_entered:
            raise RuntimeError("Each CancelScope may only be used for a single 'with' block")
        self._has_been_entered = True
        self._runner = runner
        deadline = self._deadline
        relative = self._relative_deadline
        if relative != inf or deadline != inf:
            now = runner.clock.current_time()
            if relative != inf:
                # A relative deadline becomes absolute at entry.
                deadline = self._deadline = now + relative
                self._relative_deadline = inf
            if now >= deadline:
                self._cancel_at_entry()  # type: ignore[attr-defined]
        parent = task._cancel_status
        status = _status_class(self, parent)
        self._cancel_status = status
        activate_cancel_status(task, status)  # the task moves into the new status
        if self._deadline != inf and not self._cancel_called:
            if runner.is_guest:
                self._update_deadline_registration()  # type: ignore[attr-defined]
            else:
                # The common case: a fresh entry in the heap.
                self._heap_handle = runner.deadlines.push(self._deadline, self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        status = self._cancel_status
        runner = self._runner
        task = runner.current_task if runner is not None else None
        if (
            status is None
            or task is None
            or runner.is_guest
            or task._cancel_status is not status
            or (
                exc_value is not None
                and status.effectively_cancelled
                and not status.parent_cancellation_is_visible_to_us
            )
            or status._children
            or len(status._tasks) != 1
        ):
            return self._exit_slow(exc_type, exc_value, traceback)  # type: ignore[attr-defined]
        # Properly nested, nothing to catch, nothing left inside: the task moves back
        # out, the status closes, the deadline goes.
        outer = status._parent
        activate_cancel_status(task, outer)  # the task moves back out
        if outer is not None:
            if outer._children:
                outer._children.discard(status)
            status._parent = None
        self._cancel_status = None
        handle = self._heap_handle
        if handle is not None:
            self._heap_handle = None
            runner.deadlines.remove(handle)
        # False lets an exception we do not catch propagate unchanged.
        return exc_value is None
