# Included by _kernel.pyx (same module): the trap messages and the trap awaitables.
# Split out only to keep each file readable; see _kernel.pyx for the design notes.

@cython.final
cdef class _ResumeNone:
    """Behaves as ``outcome.Value(None)`` for the trap awaitables, but is shared."""

    def unwrap(self):
        return None

    def send(self, gen):
        return gen.send(None)

    def __repr__(self):
        return "Value(None)"


@cython.final
cdef class _CancelShieldedCheckpointType:
    def __repr__(self):
        return "CancelShieldedCheckpoint"


@cython.final
cdef class _CheckpointType:
    def __repr__(self):
        return "Checkpoint"


cdef _ResumeNone _RESUME_NONE = _ResumeNone()
cdef _CancelShieldedCheckpointType _CSC_MSG = _CancelShieldedCheckpointType()
cdef _CheckpointType _CHECKPOINT_MSG = _CheckpointType()
RESUME_NONE = _RESUME_NONE
CANCEL_SHIELDED_CHECKPOINT = _CSC_MSG
CHECKPOINT = _CHECKPOINT_MSG


cdef class WaitTaskRescheduled:
    cdef public object abort_func

    def __init__(self, abort_func):
        self.abort_func = abort_func

    def __repr__(self):
        return f"WaitTaskRescheduled(abort_func={self.abort_func!r})"


cdef class PermanentlyDetachCoroutineObject:
    cdef public object final_outcome

    def __init__(self, final_outcome):
        self.final_outcome = final_outcome

    def __repr__(self):
        return f"PermanentlyDetachCoroutineObject(final_outcome={self.final_outcome!r})"


# -- trap awaitables ----------------------------------------------------------------------

cdef enum:
    # _TrapAwaitable.state
    _FRESH = 0
    _SUSPENDED = 1
    _DONE = 2
    # _TrapAwaitable.kind, which also fixes what the resuming send returns
    _K_CHECKPOINT = 0            # value.unwrap(), result dropped
    _K_CANCEL_SHIELDED = 1       # value.unwrap(), result dropped
    _K_WAIT_RESCHEDULED = 2      # value.unwrap()
    _K_ASYNC_YIELD = 3           # value itself
    _K_DETACH = 4                # value itself

_TRAP_NAMES = ("checkpoint", "cancel_shielded_checkpoint", "wait_task_rescheduled",
               "async_yield", "permanently_detach_coroutine_object")


@cython.final
@cython.freelist(32)
cdef class _TrapAwaitable:
    """``await`` target of the trap functions: yields its trap message once, then
    returns what the kernel sends back (see the kind table above). ``send`` and
    ``throw`` are installed in C at import (csrc/vv_sendproto.h)."""

    cdef object msg     # the trap message; None once yielded
    cdef int state
    cdef int kind

    def __await__(self):
        # A coroutine refuses a second awaiter while suspended; so do we, rather than
        # take its first send for the first awaiter's resumption.
        if self.state == _SUSPENDED:
            raise RuntimeError("coroutine is being awaited already")
        return self

    def close(self):
        self.state = _DONE
        self.msg = None

    @property
    def __name__(self):
        return _TRAP_NAMES[self.kind]

    def __repr__(self):
        return f"<{_TRAP_NAMES[self.kind]} awaitable at {id(self):#x}>"


cdef PySendResult _trap_am_send(PyObject *op, PyObject *arg, PyObject **presult) noexcept:
    # The am_send slot. Called by CPython with borrowed references; reports errors
    # C-style (indicator set + PYGEN_ERROR) so no Cython traceback entry is added.
    cdef _TrapAwaitable aw = <_TrapAwaitable>op
    cdef PyObject *res
    if aw.state == _SUSPENDED:
        aw.state = _DONE
        if aw.kind >= _K_ASYNC_YIELD:
            vv_incref(arg)  # the caller gets a new reference to the sent value
            presult[0] = arg
            return PYGEN_RETURN
        if arg == <PyObject *>_RESUME_NONE:
            res = <PyObject *>None  # the common resume: no method call
            vv_incref(res)
        else:
            res = PyObject_CallMethodNoArgs(arg, <PyObject *>_s_unwrap)
            if res == NULL:
                return PYGEN_ERROR
        if aw.kind != _K_WAIT_RESCHEDULED:
            vv_decref(res)  # checkpoints discard the unwrapped value, like the reference
            res = <PyObject *>None
            vv_incref(res)
        presult[0] = res
        return PYGEN_RETURN
    if aw.state == _FRESH:
        if arg != <PyObject *>None:
            PyErr_SetString(PyExc_TypeError,
                            b"can't send non-None value to a just-started coroutine")
            return PYGEN_ERROR
        aw.state = _SUSPENDED
        res = <PyObject *>aw.msg
        vv_incref(res)  # new reference for the caller; ours is dropped just below
        presult[0] = res
        aw.msg = None
        return PYGEN_NEXT
    PyErr_SetString(PyExc_RuntimeError, b"cannot reuse already awaited coroutine")
    return PYGEN_ERROR


cdef PyObject *_trap_send_meth(PyObject *op, PyObject *arg) noexcept:
    # `send(value)`: the method form of am_send (the SEND opcode uses it on 3.12+).
    return vv_sp_send(_trap_am_send, op, arg)


cdef int _trap_end(PyObject *op, int bad_exception) noexcept:
    # What throw() does to the awaitable before the exception comes out of the await:
    # it is over, like a coroutine that raised. A finished one says so instead. A bad
    # exception ends only a suspended one (a coroutine raises it at its await point);
    # a fresh one stays fresh, as a generator refuses it before starting.
    cdef _TrapAwaitable aw = <_TrapAwaitable>op
    if bad_exception:
        if aw.state == _SUSPENDED:
            aw.state = _DONE
            aw.msg = None
        return 0
    if aw.state == _DONE:
        PyErr_SetString(PyExc_RuntimeError, b"cannot reuse already awaited coroutine")
        return -1
    aw.state = _DONE
    aw.msg = None  # may run arbitrary code: before the error indicator is set
    return 0


cdef PyObject *_trap_throw_meth(PyObject *op, PyObject *args) noexcept:
    # `throw(exc)`: the exception comes out of the await with no frame of ours on its
    # traceback (hence noexcept + NULL return, C-style).
    return vv_sp_throw(op, args, _trap_end)


vv_sp_install(_TrapAwaitable, _trap_am_send, <PyCFunction>_trap_send_meth,
              <PyCFunction>_trap_throw_meth)
# trio's start_soon insists on a Coroutine; `checkpoint` is passed to it directly.
collections.abc.Coroutine.register(_TrapAwaitable)


cdef inline _TrapAwaitable _new_trap(object msg, int kind):
    # tp_new zeroes the struct (state == _FRESH) and reuses the freelist.
    cdef _TrapAwaitable aw = _TrapAwaitable.__new__(_TrapAwaitable)
    aw.msg = msg
    aw.kind = kind
    return aw


def async_yield(msg):
    """Yield *msg* to the kernel; return whatever the kernel sends back (not unwrapped)."""
    return _new_trap(msg, _K_ASYNC_YIELD)


def cancel_shielded_checkpoint():
    """A schedule point that is not a cancel point."""
    return _new_trap(_CSC_MSG, _K_CANCEL_SHIELDED)


def checkpoint():
    """A schedule point, then a cancel point: raises Cancelled if the task's scope is
    cancelled."""
    return _new_trap(_CHECKPOINT_MSG, _K_CHECKPOINT)


def wait_task_rescheduled(abort_func):
    """Park the task until ``reschedule`` is called on it; see lowlevel docs."""
    return _new_trap(WaitTaskRescheduled(abort_func), _K_WAIT_RESCHEDULED)


def permanently_detach_coroutine_object(final_outcome):
    return _new_trap(PermanentlyDetachCoroutineObject(final_outcome), _K_DETACH)


# -- tasks and the kernel ---------------------------------------------------------------
