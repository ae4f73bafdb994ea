# cython: language_level=3, auto_pickle=False
"""Compiled twin of ``vivace._core._scope_py``: the hot half of cancel scopes.

Design notes
------------
* Same fields, same checks, same error messages and the same order of side effects
  as the reference (read its notes for the split with ``_cancel.py``). Every case
  the reference sends to ``_exit_slow`` goes there here too, before anything has
  changed.
* The fields are C slots: the kernel and ``_cancel.py`` read them as attributes,
  and ``__enter__``/``__exit__`` reach the task's and the runner's fields in C
  (``TaskBase``, ``KernelBase``) and the deadline heap without Python calls when
  the heap is the compiled ``DeadlineHeap``.
* Statuses are made through the registered class's ``tp_new`` plus a C init, as
  ``CancelStatusBase.__init__`` would do it: the subclass has no ``__init__`` of
  its own (``set_status_class`` checks that it subclasses the base).
* The GIL is held throughout: every path touches Python objects.
"""

from libc.stdint cimport uint64_t

from vivace._core._ext._heap cimport DeadlineHeap
from vivace._core._ext._kernel cimport (
    CancelStatusBase,
    KernelBase,
    TaskBase,
    activate_status,
)
from vivace._core._ext._vvc cimport vv_new_instance, vv_set_add, vv_set_discard

from math import isnan

from vivace._core._run_context import GLOBAL_RUN_CONTEXT

cdef double _INF = float("inf")
cdef object _INF_O = float("inf")  # for comparisons with arguments (no float per call)
cdef object _status_class = None


def set_status_class(cls):
    """Tell ``CancelScopeBase.__enter__`` which class to instantiate for a status."""
    global _status_class
    if not isinstance(cls, type) or not issubclass(cls, CancelStatusBase):
        raise TypeError("the status class must be a CancelStatusBase subclass")
    # Statuses are made by tp_new plus a C init: an override would run on one twin only.
    if cls.__init__ is not CancelStatusBase.__init__ or cls.__new__ is not CancelStatusBase.__new__:
        raise TypeError("the status class must not override __init__ or __new__")
    _status_class = cls


cdef class CancelScopeBase:
    cdef object __weakref__
    cdef public bint _cancel_called
    cdef public object _cancel_reason
    cdef public object _cancel_status
    cdef public double _deadline
    cdef public bint _has_been_entered
    cdef public object _heap_handle
    cdef public double _relative_deadline
    cdef public object _runner
    cdef public bint _shield
    cdef public object cancelled_caught  # stores what is assigned, as trio does

    def __init__(self, *, deadline=_INF_O, relative_deadline=_INF_O, shield=False):
        # The defaults need no checking (NaN != inf, so NaN still gets checked).
        if deadline != _INF_O:
            if isnan(deadline):
                raise ValueError("deadline must not be NaN")
            deadline = float(deadline)
        if relative_deadline != _INF_O:
            if isnan(relative_deadline):
                raise ValueError("relative deadline must not be NaN")
            if relative_deadline < 0:
                raise ValueError("timeout must be non-negative")
            if deadline != _INF_O:
                raise ValueError("Cannot specify both a deadline and a relative deadline")
            relative_deadline = float(relative_deadline)
        if shield is not False and shield is not True:
            raise TypeError("shield must be a bool")
        self._deadline = deadline
        self._relative_deadline = relative_deadline
        self._shield = shield
        self._cancel_status = None
        self._has_been_entered = False
        self._cancel_called = False
        self._cancel_reason = None
        self._heap_handle = None
        self._runner = None
        self.cancelled_caught = False

    def __enter__(self):
        cdef KernelBase kernel
        cdef TaskBase task
        cdef CancelStatusBase status
        cdef double deadline, relative, now
        runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        current = runner.current_task if runner is not None else None
        if current is None:
            raise RuntimeError("must be called from async context")
        if _status_class is None:  # set_status_class() never called: internal misuse
            raise RuntimeError("no cancel-status class registered; call set_status_class() first")
        if self._has_been_entered:
            raise RuntimeError("Each CancelScope may only be used for a single 'with' block")
        kernel = <KernelBase?>runner
        task = <TaskBase?>current
        self._has_been_entered = True
        self._runner = runner
        deadline = self._deadline
        relative = self._relative_deadline
        if relative != _INF or deadline != _INF:
            now = runner.clock.current_time()
            if relative != _INF:
                # A relative deadline becomes absolute at entry.
                deadline = now + relative
                self._deadline = deadline
                self._relative_deadline = _INF
            if now >= deadline:
                self._cancel_at_entry()
        parent_obj = task._cancel_status
        status = <CancelStatusBase>vv_new_instance(_status_class, CancelStatusBase)
        status._init(self, parent_obj)
        self._cancel_status = status
        activate_status(task, status)  # the task moves into the new status
        if self._deadline != _INF and not self._cancel_called:
            if kernel.is_guest:
                self._update_deadline_registration()
            else:
                heap = runner.deadlines
                if type(heap) is DeadlineHeap:
                    self._heap_handle = (<DeadlineHeap>heap).c_push(self._deadline, self)
                else:
                    self._heap_handle = heap.push(self._deadline, self)
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        cdef CancelStatusBase status, outer
        cdef TaskBase task
        status_obj = self._cancel_status
        runner = self._runner
        if status_obj is None or runner is None:
            return self._exit_slow(exc_type, exc_value, traceback)
        status = <CancelStatusBase?>status_obj
        current = (<KernelBase?>runner).current_task
        if (
            current is None
            or (<KernelBase>runner).is_guest
            or (<TaskBase?>current)._cancel_status is not status
            or (
                exc_value is not None
                and status.effectively_cancelled
                and not status.parent_visible()
            )
            or status._children
            or len(status._tasks) != 1
        ):
            return self._exit_slow(exc_type, exc_value, traceback)
        task = <TaskBase>current
        # Properly nested, nothing to catch, nothing left inside: the task moves back
        # out, the status closes, the deadline goes.
        outer_obj = status._parent
        activate_status(task, outer_obj)  # the task moves back out
        if outer_obj is not None:
            outer = <CancelStatusBase?>outer_obj
            if outer._children:
                vv_set_discard(outer._children, status)
            status._parent = None
        self._cancel_status = None
        handle = self._heap_handle
        if handle is not None:
            self._heap_handle = None
            heap = runner.deadlines
            if type(heap) is DeadlineHeap:
                (<DeadlineHeap>heap).c_remove(<uint64_t>handle)
            else:
                heap.remove(handle)
        # False lets an exception we do not catch propagate unchanged.
        return exc_value is None


# CancelStatusBase is defined with the kernel, which reaches its fields in C (see
# _kernel.pxd); it is exported from here too, where the reference twin has it.
globals()["CancelStatusBase"] = CancelStatusBase


# The engine exports, as the reference twin (vivace._core._scope_py) declares them; _impl
# binds these names, and tests/test_twins_parity.py checks the two lists are equal.
__all__ = [
    "CancelScopeBase",
    "CancelStatusBase",
    "set_status_class",
]
