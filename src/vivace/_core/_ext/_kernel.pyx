# cython: language_level=3, auto_pickle=False
"""The kernel, compiled twin of ``vivace._core._kernel_py`` (read that module's
docstring for the contract: trap messages, send modes, batches, RESUME_NONE).

Design notes
------------
* Same names, attributes, error messages and order of side effects as the
  reference. Where the reference is a Python frame (``_step``), this is C: a task
  step is ``PyContext_Enter``, ``PyIter_Send`` (or the coroutine's ``throw``),
  ``PyContext_Exit`` and nothing else, so a finished coroutine costs no
  StopIteration and a failed one's traceback starts at the coroutine's frame
  (the reference trims its own frame to the same effect).
* Errors from the coroutine are fetched in the same C function that made the
  call, so no Cython traceback entry is ever added to a task's exception. Errors
  from our own bookkeeping and from the Python-layer callbacks propagate normally
  (the run loop turns them into TrioInternalError).
* ``task_exited`` is called outside any exception handler (as trio does), so
  exceptions raised while the Python layer processes the exit do not get the
  task's exception as an implicit ``__context__``.
* Callbacks into the Python layer (``task_exited``, ``force_guest_tick_asap``,
  ``_call_instrument``, ``task._attempt_delivery_*``, ``task._cancel_status``) are
  ordinary attribute lookups, so subclass overrides work; hot-path scheduling
  (``reschedule`` from a trap) is a direct C call.
* Trap awaitables are one small final type, ``_TrapAwaitable``: fresh -> yields
  its message once -> the next send ends it. Its ``am_send`` slot (used by the
  SEND opcode through ``PyIter_Send``) and its ``send``/``throw`` methods are C
  functions installed at import, so resuming a checkpoint with RESUME_NONE
  allocates nothing and raises nothing. Invariant: the message is released as
  soon as it has been yielded, so a parked awaitable owns no references.
* A cancelled (or KeyboardInterrupted) checkpoint does not resume the coroutine:
  that step only counts a schedule point and reschedules the task to have the
  exception thrown in at the next batch, as the reference (and trio) time it.
* ``run_busy`` runs further batches without returning to the Python run loop; it
  reads the compiled DeadlineHeap in C and calls everything else through Python.
* A SIGINT that arrives while this C loop runs must be deferred (the loop is
  KI-protected); pending signal handlers are therefore run between task steps,
  where the innermost Python frame is the protected run loop, not user code.
* The common paths of spawning and of a normal exit (``spawn_child``, ``_exit_fast``)
  are in ``_kernel_spawn.pxi``, included at the end of this module.
* The GIL is held throughout: every step calls into Python, so there is no nogil
  section to gain from.
"""

cimport cython
from cpython.object cimport PyObject

from vivace._core._ext._capi cimport *
from vivace._core._ext._vvc cimport *

from vivace._core._ext._heap cimport DeadlineHeap

import collections.abc
import itertools
import random as _random
import sys
from time import perf_counter as _perf_counter

# time.perf_counter is CLOCK_MONOTONIC on Linux; elsewhere run_busy uses clock_now.
_HAVE_MONOTONIC = sys.platform.startswith("linux")

import outcome

from vivace._core._empty import NO_CHILD_NURSERIES
from vivace._core._exceptions import TrioInternalError

cdef enum:
    _IDLE = 0
    _SEND = 1
    _THROW = 2
    _CHECKPOINT_RESUME = 3

IDLE = _IDLE
SEND = _SEND
THROW = _THROW
CHECKPOINT_RESUME = _CHECKPOINT_RESUME

cdef object _Value = outcome.Value
cdef object _Error = outcome.Error
# Interned names for the raw C-API method calls below.
cdef object _s_throw = "throw"
cdef object _s_unwrap = "unwrap"


# -- trap messages ----------------------------------------------------------------------

include "_kernel_traps.pxi"


cdef class SystemClock:
    """The default clock: ``time.perf_counter`` plus a random offset, so that code cannot
    rely on the clock's epoch. (Registered as a ``vivace.abc.Clock`` by the run module.)"""

    cdef public double offset

    def __init__(self):
        self.offset = _random.uniform(10000, 200000)

    def start_clock(self):
        pass

    cpdef double current_time(self) except? -1.0:
        # CLOCK_MONOTONIC is what time.perf_counter reads on Linux: same values, no
        # Python call. Elsewhere, ask perf_counter.
        if _HAVE_MONOTONIC:
            return self.offset + vv_monotonic()
        return self.offset + _perf_counter()

    def deadline_to_sleep_time(self, double deadline):
        return deadline - self.current_time()


# Debug build only (see csrc/vv_debug.h): TaskBase and KernelBase objects alive.
cdef Py_ssize_t _debug_live_tasks = 0
cdef Py_ssize_t _debug_live_kernels = 0


def debug_counters():
    """``{"tasks": n, "kernels": m}`` in a VIVACE_DEBUG build, else None."""
    if VV_DEBUG_BUILD:
        return {"tasks": _debug_live_tasks, "kernels": _debug_live_kernels}
    return None


cdef class TaskBase:
    """The hot half of ``lowlevel.Task``; the Python layer subclasses it."""

    def __cinit__(self):
        global _debug_live_tasks
        if VV_DEBUG_BUILD:
            _debug_live_tasks += 1

    def __init__(self, coro, context, runner, counter, ki_protected, parent_nursery=None,
                 name=None):
        # The task-tree fields (used by the Python layer's Task) live here too, so
        # the kernel's spawn path sets them in C.
        self._parent_nursery = parent_nursery
        self._name = name
        self._child_nurseries = NO_CHILD_NURSERIES  # a list once it opens a nursery
        self._eventual_parent_nursery = None
        self.coro = coro
        self.context = context
        self._runner = runner
        self._counter = counter
        self._ki_protected = ki_protected
        self._send_mode = _IDLE
        self._next_send = None
        self._abort_func = None
        self._cancel_status = None
        self.custom_sleep_data = None
        self._cancel_points = 0
        self._schedule_points = 0

    @property
    def coro(self):
        return self._coro

    @coro.setter
    def coro(self, value):
        # As for the context: the old coroutine may be freed right here.
        _gc_retrack(self)
        self._coro = value

    @property
    def context(self):
        return self._context

    @context.setter
    def context(self, value):
        # The old context may be freed right here: hand it back to the collector
        # first (CPython's Context dealloc assumes it is tracked).
        _gc_retrack(self)
        self._context = value

    def _gc_retrack(self):
        """Put this task (and its context) back under the cyclic GC; idempotent."""
        _gc_retrack(self)

    def __dealloc__(self):
        global _debug_live_tasks
        if VV_DEBUG_BUILD:
            _debug_live_tasks -= 1
        # Runs before Cython clears the fields, so the coroutine and the context are
        # tracked again before their last references can go. Not the task itself: Cython has already
        # untracked it for the dealloc, and re-linking a dying object into the GC's
        # list would leave a dangling node there.
        _gc_retrack_fields(self)

    # The counters are read and written from Python like the reference's plain
    # attributes (trio's tests store a str to make the kernel fail): any value is kept,
    # but an ordinary count lives unboxed, so counting never allocates.
    cdef int count_cancel_point(self) except -1:
        return _count_cancel_point(self)

    cdef bint cancel_pending(self) except -1:
        if self._cancel_status.effectively_cancelled:
            return True
        runner = self._runner
        if isinstance(runner, KernelBase):
            return (<KernelBase>runner).ki_pending and self is (<KernelBase>runner).main_task
        return bool(runner.ki_pending and self is runner.main_task)

    @property
    def _schedule_points(self):
        return self._sp_n if self._sp_box is None else self._sp_box[0]

    @_schedule_points.setter
    def _schedule_points(self, value):
        if _is_ssize(value):
            self._sp_n = value
            self._sp_box = None
        else:
            self._sp_box = (value,)

    @property
    def _cancel_points(self):
        return self._cp_n if self._cp_box is None else self._cp_box[0]

    @_cancel_points.setter
    def _cancel_points(self, value):
        if _is_ssize(value):
            self._cp_n = value
            self._cp_box = None
        else:
            self._cp_box = (value,)


cdef object _SSIZE_MAX = sys.maxsize
cdef object _SSIZE_MIN = -sys.maxsize - 1


cdef bint _is_ssize(object value) except -1:
    return type(value) is int and _SSIZE_MIN <= value <= _SSIZE_MAX


cdef inline int _count_schedule_point(TaskBase task) except -1:
    if task._sp_box is None and task._sp_n != PY_SSIZE_T_MAX:
        task._sp_n += 1
    else:  # whatever was stored: `+ 1` fails or grows exactly as in the reference
        task._sp_box = (task._schedule_points + 1,)
    return 0


cdef inline int _count_cancel_point(TaskBase task) except -1:
    if task._cp_box is None and task._cp_n != PY_SSIZE_T_MAX:
        task._cp_n += 1
    else:
        task._cp_box = (task._cancel_points + 1,)
    return 0


cdef PySendResult _resume(object coro, object ctx, object value, bint throw,
                          PyObject **presult) noexcept:
    # One step of a coroutine inside its context. NEXT/RETURN: *presult is the
    # yielded/returned value; ERROR: *presult is the exception (traceback from the
    # coroutine's frame), already fetched. Always a new reference. noexcept: the
    # error is data here, and letting Cython see it would add our frame to it.
    cdef PyObject *res = NULL
    cdef PySendResult r
    if PyContext_Enter(<PyObject *>ctx) < 0:
        presult[0] = vv_fetch_exception()
        return PYGEN_ERROR
    if throw:
        # Through the coroutine's own throw(), so the exception lands at its await.
        res = PyObject_CallMethodOneArg(<PyObject *>coro, <PyObject *>_s_throw,
                                        <PyObject *>value)
        if res != NULL:
            r = PYGEN_NEXT
        else:
            r = PYGEN_RETURN if PyErr_ExceptionMatches(PyExc_StopIteration) else PYGEN_ERROR
            res = vv_fetch_exception()
    else:
        r = PyIter_Send(<PyObject *>coro, <PyObject *>value, &res)
        if r == PYGEN_ERROR:
            res = vv_fetch_exception()
    if PyContext_Exit(<PyObject *>ctx) < 0:
        # Only if the coroutine left a different context entered; context.run
        # reports that error instead of the step's result, and so do we.
        vv_xdecref(res)  # the step's result is replaced by the error
        presult[0] = vv_fetch_exception()
        return PYGEN_ERROR
    presult[0] = res
    return r


cdef class KernelBase:
    """The run queue and the task-step loop; ``Runner`` (Python) subclasses it."""

    def __cinit__(self):
        global _debug_live_kernels
        if VV_DEBUG_BUILD:
            _debug_live_kernels += 1

    def __dealloc__(self):
        global _debug_live_kernels
        if VV_DEBUG_BUILD:
            _debug_live_kernels -= 1

    def __init__(self):
        self.runq = []
        self.current_task = None
        self.main_task = None
        self.ki_pending = False
        self.is_guest = False
        self._instr_before_step = False
        self._instr_after_step = False
        self._instr_scheduled = False
        # Spawn/exit state, owned by the Python layer (the Runner fills it in).
        self._fast_paths = False
        self._instr_spawned = False
        self._instr_exited = False
        self.tasks = set()
        self.init_task = None
        self._task_class = None
        self._task_counter = itertools.count()
        self._lot_breakers = {}
        self._thread_ident = PyThread_get_thread_ident()

    # -- hooks the Python layer provides -------------------------------------------
    def task_exited(self, task, result):
        raise NotImplementedError

    def spawn_impl(self, async_fn, args, nursery, name):
        raise NotImplementedError

    def force_guest_tick_asap(self):
        raise NotImplementedError

    def _call_instrument(self, hook, *args):
        raise NotImplementedError

    # -- scheduling ------------------------------------------------------------------
    def reschedule(self, task, next_send=RESUME_NONE):
        self._reschedule(_as_task(task), next_send)

    def _schedule_throw(self, task, exc):
        cdef TaskBase t = _as_task(task)
        self._reschedule(t, exc)
        t._send_mode = _THROW

    def _schedule_checkpoint(self, task):
        cdef TaskBase t = _as_task(task)
        self._reschedule(t, _RESUME_NONE)
        t._send_mode = _CHECKPOINT_RESUME

    cdef int _reschedule(self, TaskBase task, object next_send) except -1:
        if task._send_mode != _IDLE:
            raise TrioInternalError(
                f"attempted to reschedule {task!r}, which is already scheduled"
            )
        task._send_mode = _SEND
        task._next_send = next_send
        task._abort_func = None
        task.custom_sleep_data = None
        if self.is_guest and not self.runq:
            self.force_guest_tick_asap()
        self.runq.append(task)
        if self._instr_scheduled:
            self._call_instrument("task_scheduled", task)
        return 0

    # -- spawning and exiting (common paths; see _kernel_spawn.pxi) -------------------
    def spawn_child(self, async_fn, args, nursery, name):
        """Spawn ``async_fn(*args)`` into *nursery* (``Nursery.start_soon``)."""
        return _spawn_child(self, async_fn, args, nursery, name)

    def _exit_fast(self, task):
        """Finish *task*, which returned normally, if nothing rare is involved (else
        return False: the caller uses ``task_exited``)."""
        return self._exit_fast_c(_as_task(task)) == 1

    cdef int _exit_fast_c(self, TaskBase task) except -1:
        return _exit_fast(self, task)

    # -- stepping --------------------------------------------------------------------
    def run_batch(self, list batch not None):
        """Step every task in *batch*, from the end of the list to the front."""
        self._run_batch_c(batch)

    cdef int _run_batch_c(self, list batch) except -1:
        while batch:
            # Run signal handlers here, where the innermost Python frame is the
            # (KI-protected) run loop, rather than at the first bytecode of a task.
            if PyErr_CheckSignals() < 0:
                return -1
            self._step_c(_as_task(batch.pop()))
        return 0

    def run_busy(self, rng_random, clock_now, clock_offset, deadlines, queue,
                 idempotent_queue, double until, Py_ssize_t max_batches):
        """Run further batches back to back while tasks stay runnable, skipping the
        run loop's I/O poll in between; return how many ran. Stop conditions as in
        the reference twin."""
        cdef Py_ssize_t ran = 0
        cdef double now, due, offset = 0.0
        cdef list batch
        cdef bint c_heap = type(deadlines) is DeadlineHeap
        # SystemClock is offset + CLOCK_MONOTONIC (what time.perf_counter reads on
        # Linux); reading it here saves a Python call per batch.
        cdef bint c_clock = clock_offset is not None and _HAVE_MONOTONIC
        if c_clock:
            offset = clock_offset
        while self.runq and ran < max_batches:
            now = offset + vv_monotonic() if c_clock else clock_now()
            if now >= until:
                break
            # The compiled heap (always paired with this kernel) is read in C.
            due = ((<DeadlineHeap>deadlines).c_peek_deadline() if c_heap
                   else deadlines.peek_deadline())
            # Truth tests of a deque and a dict are C slot calls, no Python frame.
            if due <= now or queue or idempotent_queue:
                break
            batch = self.runq
            self.runq = []
            if rng_random() < 0.5:
                batch.reverse()
            self._run_batch_c(batch)  # direct: the Python layer does not override it
            ran += 1
        return ran

    def _step(self, task):
        self._step_c(_as_task(task))

    def _deliver_later(self, task, exc):
        self._deliver_later_c(_as_task(task), exc)

    def _dispatch(self, task, msg):
        self._dispatch_c(_as_task(task), msg)

    cdef int _step_c(self, TaskBase task) except -1:
        cdef int mode = task._send_mode
        cdef object value = task._next_send
        cdef object coro, ctx, result
        cdef PyObject *res = NULL
        cdef PySendResult r
        task._send_mode = _IDLE
        task._next_send = None
        if mode == _CHECKPOINT_RESUME:
            _count_cancel_point(task)
            if self.ki_pending and task is self.main_task:
                self.ki_pending = False
                return self._deliver_later_c(task, KeyboardInterrupt())
            if task._cancel_status.effectively_cancelled:
                return self._deliver_later_c(task, task._cancel_status._make_cancelled())
            mode = _SEND
        self.current_task = task
        if self._instr_before_step:
            self._call_instrument("before_task_step", task)
        coro = task._coro
        ctx = task._context
        r = _resume(coro, ctx, value, mode == _THROW, &res)
        if res == NULL:  # only if an error vanished without being raised
            raise SystemError("vivace kernel: a task step produced no result")
        result = vv_steal(res)
        # Drop what we sent (say, a Cancelled) before the Python layer runs again.
        value = None
        coro = ctx = None
        if r == PYGEN_NEXT:
            self._dispatch_c(task, result)
        elif r == PYGEN_RETURN:
            _gc_retrack(task)
            # The common exit needs no outcome object; anything rare -> task_exited.
            if not (self._fast_paths and _exit_fast(self, task)):
                if mode == _THROW:  # throw() ended the coroutine: `result` is StopIteration
                    result = result.value
                self.task_exited(task, _Value(result))
        else:
            _gc_retrack(task)
            self.task_exited(task, _Error(result))
        result = None
        if self._instr_after_step:
            self._call_instrument("after_task_step", task)
        self.current_task = None
        return 0

    cdef int _deliver_later_c(self, TaskBase task, object exc) except -1:
        # A cancelled checkpoint raises one batch later, as in trio (the task parks
        # and its abort succeeds at once); this step is its schedule point.
        self.current_task = task
        if self._instr_before_step:
            self._call_instrument("before_task_step", task)
        _count_schedule_point(task)
        self._reschedule(task, exc)
        task._send_mode = _THROW
        if self._instr_after_step:
            self._call_instrument("after_task_step", task)
        self.current_task = None
        return 0

    cdef int _dispatch_c(self, TaskBase task, object msg) except -1:
        _count_schedule_point(task)
        if msg is _CHECKPOINT_MSG:
            self._reschedule(task, _RESUME_NONE)
            task._send_mode = _CHECKPOINT_RESUME
        elif msg is _CSC_MSG:
            self._reschedule(task, _RESUME_NONE)
        elif type(msg) is WaitTaskRescheduled:
            _count_cancel_point(task)
            task._abort_func = (<WaitTaskRescheduled>msg).abort_func
            if self.ki_pending and task is self.main_task:
                task._attempt_delivery_of_pending_ki()
            task._attempt_delivery_of_any_pending_cancel()
        elif type(msg) is PermanentlyDetachCoroutineObject:
            _gc_retrack(task)
            self.task_exited(task, (<PermanentlyDetachCoroutineObject>msg).final_outcome)
        else:
            exc = TypeError(
                f"vivace received unrecognized yield message {msg!r}. Are you trying "
                "to use a library written for some other framework like asyncio? "
                "That won't work without some kind of compatibility shim."
            )
            self._reschedule(task, exc)
            task._send_mode = _THROW
        return 0


cdef TaskBase _as_task(object task):
    # Tasks are TaskBase instances; for anything else fail the way the reference's
    # attribute access would, so the error reads the same.
    if isinstance(task, TaskBase):
        return <TaskBase>task
    task._send_mode
    raise TypeError(f"expected a vivace task, not {type(task).__name__}")


include "_kernel_status.pxi"
include "_kernel_spawn.pxi"


# The engine exports, as the reference twin (vivace._core._kernel_py) declares them; _impl
# binds these names, and tests/test_twins_parity.py checks the two lists are equal.
__all__ = [
    "CANCEL_SHIELDED_CHECKPOINT",
    "CHECKPOINT",
    "RESUME_NONE",
    "KernelBase",
    "PermanentlyDetachCoroutineObject",
    "SystemClock",
    "TaskBase",
    "WaitTaskRescheduled",
    "activate_cancel_status",
    "async_yield",
    "cancel_shielded_checkpoint",
    "check_nursery_closed",
    "checkpoint",
    "permanently_detach_coroutine_object",
    "wait_task_rescheduled",
]
