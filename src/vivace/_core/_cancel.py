"""Cancel scopes and the cancel-status tree.

Design notes
------------
* A ``CancelScope`` is what users hold; a ``CancelStatus`` is created each time a scope
  is entered and forms a tree that mirrors the lexical nesting of ``with`` blocks (a
  nursery's scope may have several children: one per child task's innermost status).
  Each task points at exactly one status, its innermost; the kernel reads
  ``task._cancel_status.effectively_cancelled`` at checkpoints, so that flag must always
  be current: it is recomputed eagerly (``recalculate``) whenever a scope is cancelled,
  its shield changes, or the tree is re-parented -- never lazily at the checkpoint.
* A status is effectively cancelled iff its scope was cancelled, or its parent is and
  the scope is not shielded. Propagation is an explicit stack walk (no recursion limit).
* A scope with a finite deadline is registered in the runner's deadline heap only while
  it is entered and not yet cancelled; ``_update_deadline_registration`` is called after
  every change that could alter that, and keeps exactly one heap entry (re-keyed in place).
* Cancelled exceptions carry the scope's ``CancelReason`` (source, task repr, text);
  a status inheriting cancellation from its parent inherits the parent's reason.
"""

from __future__ import annotations

import sys
import types
from math import inf, isnan
from typing import TYPE_CHECKING, Any

from ._exceptions import Cancelled, CancelReasonLiteral
from ._impl import CancelScopeBase, CancelStatusBase, activate_cancel_status, set_status_class
from ._run_context import GLOBAL_RUN_CONTEXT
from ._util import final

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self


NONSTRICT_EXCEPTIONGROUP_NOTE = (
    'This is a "loose" ExceptionGroup, and may be collapsed by vivace if it only '
    "contains one exception - typically after `Cancelled` has been stripped from it. "
    "Note this has consequences for exception handling, and strict_exception_groups=True "
    "is recommended."
)


class CancelReason:
    __slots__ = ("reason", "source", "source_task")

    def __init__(
        self,
        *,
        source: CancelReasonLiteral,
        source_task: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.source = source
        self.source_task = source_task
        self.reason = reason

    def __repr__(self) -> str:
        return (
            f"CancelReason(source={self.source!r}, source_task={self.source_task!r}, "
            f"reason={self.reason!r})"
        )


MISNESTING_ADVICE = """
This is probably a bug in your code that has corrupted vivace's internal state. It will
try to recover, but from now on nothing is guaranteed.

Typical causes:
  - yielding inside a generator or async generator that opened a cancel scope or a
    nursery (unless it is a @contextmanager or @asynccontextmanager);
  - calling __enter__/__exit__ of a CancelScope, or __aenter__/__aexit__ of
    open_nursery(), by hand (use @[async]contextmanager or [Async]ExitStack instead);
  - using [Async]ExitStack to interleave entries and exits of cancel scopes or nurseries
    in a way no nesting of 'with' blocks could produce;
  - driving an async function's coroutine object by hand so that parts of it run in
    different cancel scopes or nurseries.
"""


class CancelStatus(CancelStatusBase):
    """Cancellation state for one entered extent of a cancel scope (see module notes).

    Its fields, ``__init__`` and ``close`` are ``CancelStatusBase``'s (``_scope.pyx``)."""

    __slots__ = ()

    if TYPE_CHECKING:
        _scope: CancelScope
        _parent: CancelStatus | None
        _children: set[CancelStatus] | None
        _tasks: set[Any]
        effectively_cancelled: bool
        abandoned_by_misnesting: bool

    @property
    def parent(self) -> CancelStatus | None:
        return self._parent

    @parent.setter
    def parent(self, new_parent: CancelStatus | None) -> None:
        old_parent, self._parent = self._parent, new_parent
        if old_parent is not None:
            if old_parent._children:
                old_parent._children.discard(self)
        if new_parent is None:
            return
        if new_parent._children is None:
            new_parent._children = set()
        new_parent._children.add(self)
        self.recalculate()

    @property
    def children(self) -> frozenset[CancelStatus]:
        return frozenset(self._children or ())

    @property
    def tasks(self) -> frozenset[Any]:
        return frozenset(self._tasks)

    def encloses(self, other: CancelStatus | None) -> bool:
        while other is not None:
            if other is self:
                return True
            other = other._parent
        return False

    def _close_abandoned(self) -> None:
        # Called by close() when the status is exited while tasks or nested scopes
        # still point here: misnesting. Cancel everything below so the damage
        # surfaces instead of hanging.
        self._mark_abandoned()
        self.effectively_cancelled = True
        for task in list(self._tasks):
            task._attempt_delivery_of_any_pending_cancel()
        for child in list(self._children or ()):
            child.recalculate()

    def recalculate(self) -> None:
        todo = [self]
        while todo:
            status = todo.pop()
            scope = status._scope
            inherited = status.parent_cancellation_is_visible_to_us
            # The property, not the field: a scope whose deadline has passed but not
            # yet been processed by the run loop is cancelled now, as in trio.
            new_state = scope.cancel_called or inherited
            if new_state != status.effectively_cancelled:
                if scope._cancel_reason is None and inherited:
                    scope._cancel_reason = status._parent._scope._cancel_reason  # type: ignore[union-attr]
                status.effectively_cancelled = new_state
                if new_state:
                    for task in list(status._tasks):
                        task._attempt_delivery_of_any_pending_cancel()
                if status._children:
                    todo.extend(status._children)

    def _mark_abandoned(self) -> None:
        todo = [self]
        while todo:
            status = todo.pop()
            status.abandoned_by_misnesting = True
            if status._children:
                todo.extend(status._children)

    def effective_deadline(self) -> float:
        if self.effectively_cancelled:
            return -inf
        deadline = inf
        status: CancelStatus | None = self
        while status is not None:
            scope = status._scope
            if scope._deadline < deadline:
                deadline = scope._deadline
            if scope._shield:
                break
            status = status._parent
        return deadline

    def _make_cancelled(self) -> Cancelled:
        reason = self._scope._cancel_reason
        if reason is None:
            return Cancelled._create(source="unknown", reason="misnesting")
        return Cancelled._create(
            source=reason.source, source_task=reason.source_task, reason=reason.reason
        )


def _current_task() -> Any:
    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    task = runner.current_task if runner is not None else None
    if task is None:
        raise RuntimeError("must be called from async context")
    return task


def _reraise_with_context(exc: BaseException) -> None:
    """Raise *exc* from an __exit__ without the raise clobbering its __context__."""
    old_context = exc.__context__
    try:
        raise exc
    finally:
        value = sys.exc_info()[1]
        if value is not None:
            value.__context__ = old_context
        del value, exc


_NO_ABSOLUTE = "Unentered relative cancel scope does not have an absolute deadline."
_NO_RELATIVE = "Unentered non-relative cancel scope does not have a relative deadline"


@final
class CancelScope(CancelScopeBase):
    """A cancellation scope: cancelling it (explicitly or by its deadline) makes every
    checkpoint inside its ``with`` block raise Cancelled, which the block then catches.

    Scopes are single-use; ``deadline``, ``relative_deadline`` and ``shield`` may be
    changed at any time, before or after entering, and take effect at once.
    """

    # The fields, __init__ (argument checks), __enter__ and the common case of
    # __exit__ are CancelScopeBase's (_scope.pyx); the rest is here.
    __slots__ = ()

    if TYPE_CHECKING:
        _cancel_called: bool
        _cancel_reason: CancelReason | None
        _cancel_status: CancelStatus | None
        _deadline: float
        _has_been_entered: bool
        _heap_handle: int | None
        _relative_deadline: float
        _runner: Any
        _shield: bool
        cancelled_caught: bool

        def __init__(
            self,
            *,
            deadline: float = inf,
            relative_deadline: float = inf,
            shield: bool = False,
        ) -> None: ...

        def __enter__(self) -> Self: ...

    def _cancel_at_entry(self) -> None:
        # __enter__ found the deadline already past.
        self._cancel(CancelReason(source="deadline"))

    def _close(self, exc: BaseException | None) -> BaseException | None:
        status = self._cancel_status
        if status is None:
            new_exc = RuntimeError(
                f"Cancel scope stack corrupted: attempted to exit {self!r} "
                "which had already been exited"
            )
            new_exc.__context__ = exc
            return new_exc
        # The scope's own run knows the current task; fall back to the full lookup
        # (which raises outside a task) if it has none.
        task = self._runner.current_task or _current_task()
        if task._cancel_status is not status:
            if status.abandoned_by_misnesting:
                # An inner scope was already closed out of order and reported it.
                pass
            elif not status.encloses(task._cancel_status):
                new_exc = RuntimeError(
                    f"Cancel scope stack corrupted: attempted to exit {self!r} "
                    f"from unrelated {task!r}\n{MISNESTING_ADVICE}"
                )
                new_exc.__context__ = exc
                return new_exc
            else:
                new_exc = RuntimeError(
                    f"Cancel scope stack corrupted: attempted to exit {self!r} "
                    f"in {task!r} that's still within its child "
                    f"{task._cancel_status._scope!r}\n{MISNESTING_ADVICE}"
                )
                new_exc.__context__ = exc
                exc = new_exc
                task._activate_cancel_status(status._parent)
        else:
            activate_cancel_status(task, status._parent)
        if (
            exc is not None
            and status.effectively_cancelled
            and not status.parent_cancellation_is_visible_to_us
        ) or (task._cancel_status is not status and status.abandoned_by_misnesting):
            if isinstance(exc, Cancelled):
                self.cancelled_caught = True
                exc = None
            elif isinstance(exc, BaseExceptionGroup):
                matched, rest = exc.split(Cancelled)
                if matched:
                    self.cancelled_caught = True
                exc = _collapse(rest) if rest is not None else None
        status.close()
        self._cancel_status = None
        handle = self._heap_handle
        if handle is not None:
            if self._runner.is_guest:
                self._update_deadline_registration()
            else:
                self._heap_handle = None
                self._runner.deadlines.remove(handle)
        return exc

    def _exit_slow(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        # Everything __exit__'s common case does not cover (see _scope_py.py).
        leftover = self._close(exc_value)
        if leftover is None:
            return True  # nothing raised, or only our own Cancelled: swallow it
        if leftover is not exc_value:
            try:
                _reraise_with_context(leftover)
            finally:
                # This frame ends up in leftover's traceback: dropping our references
                # avoids a frame -> exception -> traceback -> frame cycle.
                del leftover, exc_value
        return False

    def __repr__(self) -> str:
        if self._cancel_status is not None:
            where = "active"
        else:
            where = "exited" if self._has_been_entered else "unbound"
        detail = ""
        if self._cancel_called:
            detail = ", cancelled"
        elif self._deadline != inf:
            runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
            if runner is not None:
                delta = self._deadline - runner.clock.current_time()
                relation = "from now" if delta >= 0 else "ago"
                detail = f", deadline is {abs(delta):.2f} seconds {relation}"
        return f"<trio.CancelScope at {id(self):#x}, {where}{detail}>"

    # -- deadline bookkeeping --------------------------------------------------------
    def _update_deadline_registration(self) -> None:
        if self._cancel_status is None or self._cancel_called:
            wanted = inf
        else:
            wanted = self._deadline
        runner = self._runner
        if runner is None:
            return
        heap = runner.deadlines
        handle = self._heap_handle
        if runner.is_guest:
            before = heap.peek_deadline()
        if handle is not None:
            if wanted == inf:
                heap.remove(handle)
                self._heap_handle = None
            elif heap.deadline_of(handle) != wanted:
                heap.update(handle, wanted)
        elif wanted != inf:
            self._heap_handle = heap.push(wanted, self)
        if runner.is_guest and heap.peek_deadline() != before:
            runner.force_guest_tick_asap()

    def _deadline_expired(self) -> None:
        # Called by the run loop after the heap already dropped our entry.
        self._heap_handle = None
        self._cancel(CancelReason(source="deadline"))

    # -- public attributes -----------------------------------------------------------
    @property
    def deadline(self) -> float:
        """Absolute time (on the run's clock) at which the scope cancels itself."""
        if self._relative_deadline == inf:
            return self._deadline
        raise RuntimeError(_NO_ABSOLUTE)

    @deadline.setter
    def deadline(self, new_deadline: float) -> None:
        value = float(new_deadline)
        if isnan(value):
            raise ValueError("deadline must not be NaN")
        if self._relative_deadline != inf:
            raise RuntimeError(_NO_ABSOLUTE)
        self._deadline = value
        if self._cancel_status is not None:
            self._update_deadline_registration()

    @property
    def relative_deadline(self) -> float:
        """Deadline relative to now (after entering) or to the moment of entering."""
        if not self._has_been_entered:
            if self._deadline == inf:
                return self._relative_deadline
            raise RuntimeError(_NO_RELATIVE)
        return self._deadline - self._runner.clock.current_time()

    @relative_deadline.setter
    def relative_deadline(self, new_relative_deadline: float) -> None:
        seconds = float(new_relative_deadline)
        if isnan(seconds):
            raise ValueError("relative deadline must not be NaN")
        if seconds < 0:
            raise ValueError("relative deadline must be non-negative")
        if not self._has_been_entered:
            if self._deadline != inf:
                raise RuntimeError(_NO_RELATIVE)
            self._relative_deadline = seconds
            return
        self._deadline = self._runner.clock.current_time() + seconds
        if self._cancel_status is not None:
            self._update_deadline_registration()

    @property
    def is_relative(self) -> bool | None:
        """None once entered; otherwise whether the deadline was given relatively."""
        if self._has_been_entered:
            return None
        return self._relative_deadline != inf

    @property
    def shield(self) -> bool:
        """While True, cancellation of enclosing scopes does not reach inside."""
        return self._shield

    @shield.setter
    def shield(self, new_value: bool) -> None:
        if not isinstance(new_value, bool):
            raise TypeError("shield must be a bool")
        self._shield = new_value
        if self._cancel_status is not None:
            self._cancel_status.recalculate()

    def _cancel(self, reason: CancelReason | None) -> None:
        if self._cancel_called:
            return
        if self._cancel_reason is None:
            self._cancel_reason = reason
        self._cancel_called = True
        if self._heap_handle is not None:
            self._update_deadline_registration()
        if self._cancel_status is not None:
            self._cancel_status.recalculate()

    def cancel(self, reason: str | None = None) -> None:
        """Cancel this scope now; idempotent. *reason* shows in the Cancelled message."""
        if self._cancel_called:
            return
        runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        task = runner.current_task if runner is not None else None
        self._cancel(
            CancelReason(
                source="explicit",
                reason=reason,
                source_task=repr(task) if task is not None else None,
            )
        )

    @property
    def cancel_called(self) -> bool:
        """Whether the scope was cancelled, by ``cancel()`` or an expired deadline."""
        if self._cancel_status is not None or not self._has_been_entered:
            # Keep the answer current even if the deadline passed but the run loop has
            # not processed it yet.
            if not self._cancel_called and self._deadline != inf:
                runner = self._runner or getattr(GLOBAL_RUN_CONTEXT, "runner", None)
                if runner is not None and runner.clock.current_time() >= self._deadline:
                    self._cancel(CancelReason(source="deadline"))
        return self._cancel_called


def _collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """Replace loose (non-strict) single-member groups, at any depth, by their member."""
    members = [
        _collapse(member) if isinstance(member, BaseExceptionGroup) else member
        for member in group.exceptions
    ]
    loose = NONSTRICT_EXCEPTIONGROUP_NOTE in getattr(group, "__notes__", ())
    if loose and len(members) == 1:
        (only,) = members
        only.__traceback__ = _concat_tb(group.__traceback__, only.__traceback__)
        return only
    if any(new is not old for new, old in zip(members, group.exceptions)):
        return group.derive(members)
    return group


def _concat_tb(head: Any, tail: Any) -> Any:
    """Return a traceback that is *head*'s entries followed by *tail*'s."""
    entries = []
    while head is not None:
        entries.append(head)
        head = head.tb_next
    result = tail
    for tb in reversed(entries):
        result = types.TracebackType(result, tb.tb_frame, tb.tb_lasti, tb.tb_lineno)
    return result


set_status_class(CancelStatus)
