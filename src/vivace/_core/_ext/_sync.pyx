# cython: language_level=3, auto_pickle=False
"""Wait queues and the hot operations of the blocking primitives -- compiled twin of
``vivace._core._sync_py`` (read its docstring for the rules: FIFO wait queues, hand-off,
every awaited operation a checkpoint). Same names, behaviour and error messages.

Design notes
------------
* Each awaited operation (park, Event.wait, Lock.acquire, send, receive, ...) is one
  ``_Op``: a small C awaitable that runs the operation on its first ``send``, yields at
  most one trap message to the kernel, and is its own wait-queue node and its own abort
  function. So an operation costs one object from a free list (plus the
  WaitTaskRescheduled message when it blocks) and no Python frame, closure or outcome.
* Wait queues are intrusive doubly linked lists of ``_Op``s (O(1) append, pop-oldest
  and removal). Links are raw pointers; the queue owns one reference per linked op, and
  an op points back to its queue without owning it (a queue that dies with ops still
  linked unlinks them first, see ``_Queue.__dealloc__``). The chain is invisible to the
  cycle collector; an op is linked only while its task is parked, and a run never ends
  with parked tasks.
* State machine of an ``_Op``: FRESH --send(None)--> runs the operation, then either
  RECHECK (a cancel was pending: yielded CHECKPOINT, which raises it; if that
  checkpoint returns normally the operation starts over), FINISH (done: yielded
  CANCEL_SHIELDED_CHECKPOINT, or Event.wait's CHECKPOINT), PARKED (linked; yielded
  WaitTaskRescheduled(self)), or DONE at once (Lock.__aexit__). The next send ends
  it: RESUME_NONE -> the result (a received item sits in ``value``, put there by the
  hand-off); an outcome -> ``unwrap()`` (errors propagate with no frame of ours).
* The am_send slot is a Cython ``except -1`` function (its -1 is PYGEN_ERROR, so a
  raised exception reaches CPython C-style); ``send``/``throw`` are raw C methods
  (csrc/vv_sendproto.h). Waking goes straight to ``KernelBase._reschedule``.
* ``throw``/``close`` from outside the kernel (misuse) leave an op the kernel parked
  the task on linked, as the reference leaves its waiter queued: the task stays
  parked until its wake-up or abort, which then resumes the dead coroutine
  (RuntimeError, as in trio). An op driven by hand is unlinked.
* ``park_until`` (sleep's engine half, ``_sync_sleep.pxi``) is an ``_Op`` too: the
  parked task is the deadline heap's payload, the op its abort function.
* The GIL is held throughout; nothing here blocks.
"""

cimport cython
from cpython.object cimport PyObject
from libc.math cimport isinf
from libc.stdint cimport uint64_t

from vivace._core._ext._capi cimport *
from vivace._core._ext._vvc cimport *
from vivace._core._ext._heap cimport DeadlineHeap
from vivace._core._ext._kernel cimport KernelBase, TaskBase

import collections.abc

import outcome

from vivace._core._abort import Abort
from vivace._core._exceptions import (
    BrokenResourceError,
    ClosedResourceError,
    EndOfChannel,
    WouldBlock,
)
from vivace._core._ext._kernel import (
    CANCEL_SHIELDED_CHECKPOINT,
    CHECKPOINT,
    RESUME_NONE,
    WaitTaskRescheduled,
)
from vivace._core._run_context import FOREIGN_THREAD_WAKE, GLOBAL_RUN_CONTEXT

# _op_send called as the C slot it is: its -1 is PYGEN_ERROR, already reported.
ctypedef int (*_raw_sendfunc)(PyObject *, PyObject *, PyObject **) noexcept

cdef object _GRC = GLOBAL_RUN_CONTEXT
cdef object _FOREIGN_THREAD = FOREIGN_THREAD_WAKE
cdef object _RESUME_NONE = RESUME_NONE
cdef object _CHECKPOINT_MSG = CHECKPOINT
cdef object _CSC_MSG = CANCEL_SHIELDED_CHECKPOINT
cdef object _WaitTaskRescheduled = WaitTaskRescheduled
cdef object _Error = outcome.Error
cdef object _s_unwrap = "unwrap"
cdef object _ABORT_SUCCEEDED = Abort.SUCCEEDED
cdef object _ABORT_FAILED = Abort.FAILED


# -- task helpers ------------------------------------------------------------------------

cdef TaskBase _current_task():
    cdef object runner = getattr(_GRC, "runner", None)
    cdef object task = None
    if runner is not None:
        if isinstance(runner, KernelBase):
            task = (<KernelBase>runner).current_task
        else:
            task = runner.current_task
    if task is None:
        raise RuntimeError("must be called from async context")
    return <TaskBase?>task


cdef inline int _wake(TaskBase task, object next_send) except -1:
    runner = task._runner
    if isinstance(runner, KernelBase):
        (<KernelBase>runner)._reschedule(task, next_send)
    else:
        runner.reschedule(task, next_send)
    return 0


cdef inline object _abort_result(bint succeeded):
    return _ABORT_SUCCEEDED if succeeded else _ABORT_FAILED


cdef Py_ssize_t _count_arg(object count, Py_ssize_t available) except -1:
    # unpark/repark's `count`: an int (clamped to what is there) or an infinite float.
    cdef object n
    if isinstance(count, float):
        if isinf(<double>count):
            return available
        raise ValueError("Cannot pop a non-integer number of tasks.")
    # index() refuses a non-integer count as trio's range() does; compared as a
    # Python int, since a huge negative count (it wakes nobody) fits no Py_ssize_t.
    n = PyNumber_Index(min(count, available))
    return n if n > 0 else 0


# -- wait queues and operations ------------------------------------------------------------

cdef enum:
    # _Op.kind
    _K_PARK = 0
    _K_ACQUIRE = 1
    _K_RELEASE = 2
    _K_EVENT = 3
    _K_SEND = 4
    _K_RECEIVE = 5
    _K_ANEXT = 6
    _K_SLEEP = 7
    # _Op.state
    _S_FRESH = 0
    _S_RECHECK = 1
    _S_FINISH = 2
    _S_PARKED = 3
    _S_DONE = 4


cdef class _Op
cdef class _Queue
cdef class LotBase(_Queue)
cdef class EventBase(_Queue)
cdef class LockBase
cdef class ChannelState
cdef class SendChannelBase
cdef class ReceiveChannelBase


cdef class _Queue:
    """A FIFO of ``_Op``s; owns one reference to each linked op."""

    cdef PyObject *head
    cdef PyObject *tail
    cdef Py_ssize_t count

    def __dealloc__(self):
        # Ops are linked only while parked, and their targets keep the queue alive; but
        # if the cycle collector clears a queue's owner, leave no op pointing here.
        cdef PyObject *p = self.head
        cdef PyObject *nxt
        self.head = self.tail = NULL
        self.count = 0
        while p != NULL:
            nxt = (<_Op>p).next
            (<_Op>p).prev = (<_Op>p).next = (<_Op>p).queue = NULL
            vv_decref(p)  # the reference this queue held
            p = nxt


cdef inline void _q_append(_Queue q, _Op op) noexcept:
    # noexcept: pointer updates and an INCREF, nothing can fail.
    vv_incref(<PyObject *>op)  # the queue's reference
    op.queue = <PyObject *>q
    op.prev = q.tail
    op.next = NULL
    if q.tail == NULL:
        q.head = <PyObject *>op
    else:
        (<_Op>q.tail).next = <PyObject *>op
    q.tail = <PyObject *>op
    q.count += 1


cdef inline void _q_detach(_Queue q, _Op op) noexcept:
    # Unlink `op` from `q`; the caller inherits the queue's reference to it.
    # noexcept: pointer updates only.
    if op.prev == NULL:
        q.head = op.next
    else:
        (<_Op>op.prev).next = op.next
    if op.next == NULL:
        q.tail = op.prev
    else:
        (<_Op>op.next).prev = op.prev
    op.prev = op.next = op.queue = NULL
    q.count -= 1


cdef inline int _q_refuse_foreign_thread(_Queue q) except -1:
    # Waking a run's task from another thread would touch the run's queue from outside
    # it: every wake-up pops here first (Event.set asks before setting its flag), so it
    # is refused before anything changes.
    if q.head == NULL:
        return 0
    cdef TaskBase task = (<_Op>q.head).task
    if task is not None and isinstance(task._runner, KernelBase) and \
            (<KernelBase>task._runner)._thread_ident != PyThread_get_thread_ident():
        raise RuntimeError(_FOREIGN_THREAD)
    return 0


cdef inline _Op _q_popleft(_Queue q):
    # The oldest op (the caller checked q.count); the queue's reference moves to the caller.
    cdef PyObject *p = q.head
    _q_refuse_foreign_thread(q)
    _q_detach(q, <_Op>p)
    return <_Op>vv_steal(p)


@cython.final
@cython.freelist(32)
cdef class _Op:
    """One awaited operation on a sync primitive or channel (see the design notes)."""

    cdef PyObject *prev
    cdef PyObject *next
    cdef PyObject *queue   # the _Queue it is linked in, or NULL
    cdef TaskBase task     # set when it parks
    cdef object target     # the lot, event, lock or channel handle it operates on
    cdef object value      # send: the item offered; receive: the item handed over
    cdef int kind
    cdef int state

    def __await__(self):
        # A coroutine refuses a second awaiter while suspended; so do we.
        if self.state != _S_FRESH and self.state != _S_DONE:
            raise RuntimeError("coroutine is being awaited already")
        return self

    def close(self):
        _op_abandon(self)

    def __call__(self, raise_cancel):
        # The abort function: take this op out of whatever queue holds it now (a
        # sleep: out of the deadline heap).
        if self.kind == _K_SLEEP:
            return _abort_sleep(self)
        cdef PyObject *q = self.queue
        if q == NULL:
            return _abort_result(False)
        _q_detach(<_Queue>q, self)
        vv_decref(<PyObject *>self)  # the queue's reference (our caller holds another)
        return _abort_result(True)

    def __repr__(self):
        return f"<vivace operation ({_OP_NAMES[self.kind]}) at {id(self):#x}>"


_OP_NAMES = ("park", "acquire", "release", "wait", "send", "receive", "anext", "sleep")


cdef inline _Op _new_op(int kind, object target, object value):
    # tp_new zeroes the struct (state FRESH, unlinked) and reuses the free list.
    cdef _Op op = _Op.__new__(_Op)
    op.kind = kind
    op.target = target
    op.value = value
    return op


cdef void _op_abandon(_Op op) noexcept:
    # Closed or thrown into from outside the kernel. If the kernel parked the task on
    # this op (it is the task's abort function), the op stays linked (or in the
    # deadline heap) until its wake-up or abort, as the reference's waiter does:
    # unlinking would strand the task forever. An op driven by hand, which the kernel
    # never saw, is unlinked: nobody else would. noexcept: it only drops references
    # (called from the raw throw method, where no Python error may be pending).
    if op.state == _S_PARKED and op.task is not None and op.task._abort_func is op:
        return
    if op.queue != NULL:
        _q_detach(<_Queue>op.queue, op)
        vv_decref(<PyObject *>op)  # the caller holds another reference
    op.state = _S_DONE
    op.task = None
    op.value = None


cdef int _op_send(PyObject *selfp, PyObject *arg, PyObject **presult) except -1:
    # The am_send slot; returns a PySendResult (PYGEN_ERROR == -1, error set).
    cdef _Op op = <_Op>selfp
    cdef int state = op.state
    cdef PyObject *res
    cdef object msg
    if state == _S_FRESH or state == _S_RECHECK:
        op.state = _S_DONE  # until it suspends again
        if state == _S_FRESH:
            if arg != <PyObject *>None:
                raise TypeError("can't send non-None value to a just-started coroutine")
        elif arg != <PyObject *>_RESUME_NONE:
            res = PyObject_CallMethodNoArgs(arg, <PyObject *>_s_unwrap)
            if res == NULL:
                return PYGEN_ERROR
            vv_decref(res)  # a resumed cancel check has no result to keep
        msg = _op_start(op)
        if msg is None:  # finished without a schedule point (Lock.__aexit__)
            vv_incref(<PyObject *>None)  # *presult is a new reference
            presult[0] = <PyObject *>None
            return PYGEN_RETURN
        vv_incref(<PyObject *>msg)  # *presult is a new reference; `msg` drops its own
        presult[0] = <PyObject *>msg
        return PYGEN_NEXT
    if state == _S_FINISH or state == _S_PARKED:
        op.state = _S_DONE
        if arg != <PyObject *>_RESUME_NONE:
            res = PyObject_CallMethodNoArgs(arg, <PyObject *>_s_unwrap)
            if res == NULL:
                if op.kind == _K_ACQUIRE or op.kind == _K_ANEXT:
                    _op_convert_error(op)
                return PYGEN_ERROR
            vv_decref(res)  # like the reference: the result is ours, not what was sent
        if op.kind == _K_SLEEP:
            # After any normal resume, RESUME_NONE or an outcome.Value (a hand-made
            # reschedule): the reference checks once its await returns.
            try:
                _sleep_woke(op)
            finally:
                op.task = None
                op.value = None
        if op.kind == _K_RECEIVE or op.kind == _K_ANEXT:
            res = <PyObject *>op.value
        else:
            res = <PyObject *>None
        vv_incref(res)  # *presult is a new reference
        presult[0] = res
        op.value = None
        op.task = None
        return PYGEN_RETURN
    raise RuntimeError("cannot reuse already awaited coroutine")


cdef int _op_convert_error(_Op op) except -1:
    # A resume delivered an error (set): a lock reports its broken owner, and
    # __anext__ turns the end of the channel into the end of the iteration. Anything
    # else stays set as it is (returns 0).
    if op.kind == _K_ACQUIRE and PyErr_ExceptionMatches(<PyObject *>BrokenResourceError):
        PyErr_Clear()
        raise BrokenResourceError(
            f"Owner of this lock exited without releasing: {(<LockBase>op.target)._owner}"
        ) from None
    if op.kind == _K_ANEXT and PyErr_ExceptionMatches(<PyObject *>EndOfChannel):
        PyErr_Clear()
        raise StopAsyncIteration
    return 0


cdef PyObject *_op_send_meth(PyObject *selfp, PyObject *arg) noexcept:
    # `send(value)`: am_send in method form (the SEND opcode calls it on 3.12+).
    return vv_sp_send(<sendfunc>_op_send, selfp, arg)


cdef int _op_end(PyObject *selfp, int bad_exception) noexcept:
    # throw(): the op ends before the exception comes out of the await.
    if not bad_exception:  # a refused throw() leaves the op as it was
        _op_abandon(<_Op>selfp)
    return 0


cdef PyObject *_op_throw_meth(PyObject *selfp, PyObject *args) noexcept:
    # `throw(exc)`: the exception comes out of the await as it is.
    return vv_sp_throw(selfp, args, _op_end)


vv_sp_install(_Op, <sendfunc>_op_send, <PyCFunction>_op_send_meth,
              <PyCFunction>_op_throw_meth)
# trio's start_soon insists on a Coroutine (nursery.start_soon(lot.park) is legal).
collections.abc.Coroutine.register(_Op)


cdef inline object _park(_Op op, _Queue q, TaskBase task, object sleep_data):
    _q_append(q, op)
    op.task = task
    if sleep_data is not None:
        task.custom_sleep_data = sleep_data
    op.state = _S_PARKED
    return _WaitTaskRescheduled(op)


cdef inline bint _deliver_pending_cancel(_Op op, TaskBase task) except -1:
    # The cancel point every channel/lock operation starts with; True: yield CHECKPOINT.
    if task.cancel_pending():
        op.state = _S_RECHECK
        return True
    task.count_cancel_point()
    return False


cdef object _op_start(_Op op):
    # Run the operation; return the trap message to yield, or None if it is complete.
    cdef int kind = op.kind
    cdef TaskBase task
    if kind == _K_SEND or kind == _K_RECEIVE or kind == _K_ANEXT or kind == _K_ACQUIRE:
        # Channel and lock operations open with a cancel point.
        task = _current_task()
        if _deliver_pending_cancel(op, task):
            return _CHECKPOINT_MSG
        if kind == _K_SEND:
            return _start_send(op, task)
        if kind == _K_ACQUIRE:
            return _start_acquire(op, task)
        return _start_receive(op, task)
    if kind == _K_EVENT:
        return _start_event_wait(op)
    if kind == _K_PARK:
        return _start_park(op)
    if kind == _K_SLEEP:
        return _start_sleep(op)
    (<LockBase>op.target)._release()
    return None


# -- ParkingLot ----------------------------------------------------------------------------

cdef object _lot_class = None  # what LockBase creates: ParkingLot, once it is registered


def set_lot_class(cls):
    """Make ``LockBase`` create its ``_lot`` as an instance of *cls* (the API layer's
    ``ParkingLot``, a subclass of ``LotBase``)."""
    global _lot_class
    if not (isinstance(cls, type) and issubclass(cls, LotBase)):
        raise TypeError("the lot class must be a subclass of LotBase")
    _lot_class = cls


cdef class LotBase(_Queue):
    """The engine half of ``lowlevel.ParkingLot``: a FIFO of parked tasks."""

    cdef object __weakref__
    cdef public list broken_by

    def __cinit__(self):
        self.broken_by = []

    def __init__(self):
        # Present so that extra constructor arguments are refused, as by the reference.
        pass

    def __len__(self):
        return self.count

    def __bool__(self):
        return self.count != 0

    def park(self):
        """Block until ``unpark``/``unpark_all`` wakes this task (or it is cancelled).
        BrokenResourceError if the lot is or becomes broken."""
        return _new_op(_K_PARK, self, None)

    def unpark(self, *, count=1):
        """Wake up to *count* parked tasks (oldest first); return them."""
        cdef Py_ssize_t n = _count_arg(count, self.count)
        cdef list tasks = []
        cdef _Op op
        while n > 0 and self.count:
            op = _q_popleft(self)
            tasks.append(op.task)
            _wake(op.task, _RESUME_NONE)
            n -= 1
        return tasks

    def unpark_all(self):
        """Wake every parked task; return them."""
        return self.unpark(count=self.count)

    def repark(self, new_lot, *, count=1):
        """Move up to *count* parked tasks (oldest first) to the back of *new_lot*,
        without waking them."""
        cdef Py_ssize_t n
        cdef _Op op
        if not isinstance(new_lot, LotBase):
            raise TypeError("new_lot must be a ParkingLot")
        n = _count_arg(count, self.count)
        while n > 0 and self.count:
            op = _q_popleft(self)
            _q_append(<LotBase>new_lot, op)
            op.task.custom_sleep_data = new_lot
            n -= 1

    def repark_all(self, new_lot):
        """Move every parked task to *new_lot*."""
        return self.repark(new_lot, count=self.count)

    def break_lot(self, task=None):
        """Break the lot (noting *task*, default the current task, in ``broken_by``):
        parked tasks and all later ``park`` calls raise BrokenResourceError."""
        cdef _Op op
        if task is None:
            task = _current_task()
        already = bool(self.broken_by)
        if not already:
            # it wakes the parked tasks: refused from another thread before the lot
            # is marked broken (a half-done break would strand them)
            _q_refuse_foreign_thread(self)
        self.broken_by.append(task)
        if already:
            return
        while self.count:
            op = _q_popleft(self)
            _wake(op.task, _Error(BrokenResourceError(f"Parking lot broken by {task}")))


cdef object _start_park(_Op op):
    cdef LotBase lot = <LotBase>op.target
    if lot.broken_by:
        raise BrokenResourceError(f"Attempted to park in parking lot broken by {lot.broken_by}")
    return _park(op, lot, _current_task(), lot)


_lot_class = LotBase


# -- Event ---------------------------------------------------------------------------------

cdef class EventBase(_Queue):
    """The engine half of ``Event``."""

    cdef object __weakref__
    cdef readonly bint _flag

    def __init__(self):
        # Present so that extra constructor arguments are refused, as by the reference.
        pass

    def __dealloc__(self):
        # Empty, but it must exist: without a __dealloc__ of its own, Cython gives this
        # class _Queue's tp_dealloc, which does not clear weak references (_Queue has
        # no __weakref__), and a dead Event's weakref would point at freed memory.
        pass

    @property
    def _tasks_waiting(self):
        return self.count

    def is_set(self):
        """Whether ``set()`` has been called."""
        return self._flag

    def set(self):
        """Set the flag and wake every waiting task."""
        cdef _Op op
        if not self._flag:
            _q_refuse_foreign_thread(self)
            self._flag = True
            while self.count:
                op = _q_popleft(self)
                _wake(op.task, _RESUME_NONE)

    def wait(self):
        """Block until the flag is set (a checkpoint even if it already is)."""
        return _new_op(_K_EVENT, self, None)


cdef object _start_event_wait(_Op op):
    cdef EventBase event = <EventBase>op.target
    if event._flag:
        op.state = _S_FINISH
        return _CHECKPOINT_MSG  # a full checkpoint: Cancelled if cancelled
    return _park(op, event, _current_task(), None)


include "_sync_lock.pxi"
include "_sync_channel.pxi"
include "_sync_sleep.pxi"


# The engine exports, as the reference twin (vivace._core._sync_py) declares them; _impl
# binds these names, and tests/test_twins_parity.py checks the two lists are equal.
__all__ = [
    "ChannelState",
    "EventBase",
    "LockBase",
    "LotBase",
    "ReceiveChannelBase",
    "SendChannelBase",
    "set_lot_class",
    "park_until",
]
