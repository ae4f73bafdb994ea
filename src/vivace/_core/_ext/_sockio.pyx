# cython: language_level=3, auto_pickle=False
"""Compiled socket operations: the twin of ``vivace._core._sockio_py`` (every POSIX
system, every readiness backend).

Design notes
------------
* What it is for. ``sock_recv``/``sock_send``/``sock_send_all`` are the non-blocking
  core of vivace's socket methods, ``stream_recv``/``stream_send_all`` that of
  ``SocketStream``: a cancel check, the syscall, then either a cancel-shielded schedule
  point (it worked, or failed for real) or a park in the poller until the fd is ready
  (EAGAIN) and a retry. The reference twin is that sequence in Python; here it is one
  C awaitable (``_SockOp``) per call, so a receive or a send costs no Python frame, no
  async context manager and no closure.

* Every completed call was a checkpoint, as in the reference: the cancel check is a
  cancel point (if cancelled it yields CHECKPOINT, whose resumption raises Cancelled,
  before any syscall), and the call then either yields CANCEL_SHIELDED_CHECKPOINT or
  parks, which is both. Cancelled while parked means the waiter was removed (the op is
  its own abort function) and no syscall happened after the wait.

* State machine. FRESH -> (AT_CHECKPOINT | AT_CSC | PARKED) -> ... -> DONE; each
  resumption (am_send) advances it. ``send_all`` loops: after a partial send it starts
  the next send with a new cancel check, exactly as a loop of ``send`` calls would.
  Whatever ends the op (return, error, throw, close, dealloc) releases the data buffer
  and every reference it holds -- except that a throw or close from outside the
  kernel leaves a parked op's wait in place until its wake-up or abort (see _abandon).

* Syscalls are made on the stdlib socket's fd with MSG_DONTWAIT and the GIL held: they
  never block, and releasing the GIL would cost more than the copy. recv lands in a
  64 KiB scratch buffer (the GIL serializes its users) and is copied into an exact-size
  bytes object; larger requests get their own buffer, shrunk afterwards.

* Errors look as the stdlib's do (``OSError(errno, strerror)`` picks the subclass).
  Exceptions that merely pass through (Cancelled, ClosedResourceError delivered via
  ``unwrap``) are propagated C-style, so no frame of ours is added to them; the send
  protocol (am_send, send, throw) is installed in C with csrc/vv_sendproto.h.

* The stream variants translate an OSError leaving the op (whether from the syscall or
  delivered by the poller) into ClosedResourceError (EBADF/ENOTSOCK, ``from None``) or
  BrokenResourceError (``from`` the OSError), as SocketStream's generic path does, and
  ``stream_send_all`` holds a ``BusyGuard`` from its first step to its end.

* Parking uses the poller's C interface (``ReadinessTable.c_add``/``c_remove``, shared
  by every readiness backend) with the stdlib socket as owner, so re-waiting on the
  same socket costs no epoll_ctl (or whatever the backend's arm costs).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from cpython.object cimport PyObject
from libc.errno cimport EAGAIN, EBADF, EINTR, ENOTSOCK, errno

from vivace._core._ext._capi cimport *
from vivace._core._ext._io_readiness cimport IO_READ, IO_WRITE, ReadinessTable, _os_error
from vivace._core._ext._kernel cimport KernelBase, TaskBase
from vivace._core._ext._vvc cimport *

import collections.abc

from vivace._core._abort import Abort
from vivace._core._exceptions import (
    BrokenResourceError,
    BusyResourceError,
    ClosedResourceError,
)
from vivace._core._ext._kernel import (
    CANCEL_SHIELDED_CHECKPOINT as _CSC_MSG,
    CHECKPOINT as _CHECKPOINT_MSG,
    RESUME_NONE as _RESUME_NONE,
    WaitTaskRescheduled as _WaitTaskRescheduled,
)
from vivace._core._run_context import GLOBAL_RUN_CONTEXT as _RUN_CONTEXT

cdef extern from "<sys/socket.h>" nogil:
    ssize_t c_recv "recv"(int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send"(int fd, const void *buf, size_t n, int flags)
    enum:
        MSG_DONTWAIT

cdef enum:
    # _SockOp.kind
    _RECV = 0
    _SEND = 1
    _SEND_ALL = 2
    _CALL = 3        # a Python-level call on the socket; BlockingIOError means EAGAIN
    _WAIT = 4        # wait_readable/wait_writable: park at once, return None when woken
    # _SockOp.state
    _FRESH = 0
    _AT_CHECKPOINT = 1   # yielded CHECKPOINT: cancelled before the syscall
    _AT_CSC = 2          # yielded CANCEL_SHIELDED_CHECKPOINT after the syscall
    _PARKED = 3          # yielded WaitTaskRescheduled: waiting for readiness
    _DONE = 4
    # _syscall's "would block" when it comes as BlockingIOError from a Python call
    _WOULD_BLOCK = -3

cdef enum:
    _SCRATCH_SIZE = 65536

# The GIL serializes every user of this buffer: nothing between recv() and the copy
# out of it can release the GIL.
cdef char _scratch[_SCRATCH_SIZE]

cdef object _s_runner = "runner"
cdef object _s_fileno = "fileno"
cdef object _s_unwrap = "unwrap"
cdef object _s_io_manager = "io_manager"
cdef object _s_poller = "_poller"
cdef object _ABORT_SUCCEEDED = Abort.SUCCEEDED

_BUSY_READ = "another task is already reading from this fd"
_BUSY_WRITE = "another task is already writing to this fd"
_NAMES = ("recv", "send", "send_all", "call", "wait")
_CLOSED_STREAM = "this socket was already closed"


@cython.final
cdef class BusyGuard:
    """``with guard:`` raises BusyResourceError(*message*) if another task is already
    inside (it never waits: concurrent use is the caller's bug). ``stream_send_all``
    holds it for its whole duration."""

    cdef object message
    cdef bint busy

    def __init__(self, message):
        self.message = message
        self.busy = False

    def __enter__(self):
        if self.busy:
            raise BusyResourceError(self.message)
        self.busy = True

    def __exit__(self, *exc_info):
        self.busy = False


cdef inline int _yield(PyObject **out, object msg) except -1:
    vv_incref(<PyObject *>msg)  # the caller owns the yielded reference
    out[0] = <PyObject *>msg
    return 0


@cython.final
@cython.freelist(16)
cdef class _SockOp:
    """The awaitable of one ``sock_recv``/``sock_send``/``sock_send_all`` call."""

    cdef object sock        # the stdlib socket.socket
    cdef object data        # the object to send (send: buffer taken per attempt)
    cdef object name        # call: the socket method's name and its arguments
    cdef tuple args
    cdef object error       # raised after the schedule point that follows a failed call
    cdef object result
    cdef object runner      # while parked: the run (to park again), the poller, the task
    cdef object poller
    cdef object task
    cdef BusyGuard guard    # stream_send_all: taken on the first step, released at the end
    cdef Py_buffer view     # sock_send_all: held from the first step to the end
    cdef Py_ssize_t nbytes  # recv: the size asked; send_all: the total
    cdef Py_ssize_t offset  # send_all: bytes sent so far
    cdef int flags
    cdef int fd             # while parked
    cdef int bit            # the direction to wait for: IO_READ or IO_WRITE
    cdef int kind
    cdef int state
    cdef bint have_view
    cdef bint holds_guard
    cdef bint stream_errors  # OSError -> ClosedResourceError/BrokenResourceError

    def __await__(self):
        # A coroutine refuses a second awaiter while suspended; so do we.
        if self.state != _FRESH and self.state != _DONE:
            raise RuntimeError("coroutine is being awaited already")
        return self

    def close(self):
        """Abandon the operation (as a coroutine's close())."""
        _abandon(<PyObject *>self)

    def __call__(self, raise_cancel):
        # The abort function of a parked op: forget the waiter; the kernel then
        # resumes us with the cancellation.
        if self.state == _PARKED and self.poller is not None:
            _unpark(self)
        return _ABORT_SUCCEEDED

    def __dealloc__(self):
        if self.have_view:
            self.have_view = False
            PyBuffer_Release(&self.view)
        if self.holds_guard:
            self.holds_guard = False
            self.guard.busy = False

    @property
    def __name__(self):
        return _NAMES[self.kind]

    def __repr__(self):
        return f"<{_NAMES[self.kind]} awaitable at {id(self):#x}>"


cdef int _finish(PyObject *op_) noexcept:
    # noexcept: only drops references and a buffer; anything a __del__ raises while
    # we drop them is reported by CPython as unraisable, as for any decref.
    cdef _SockOp op = <_SockOp>op_
    if op.state == _PARKED and op.poller is not None:
        try:
            _unpark(op)
        except BaseException:
            pass  # only possible if the poller is gone; the waiter is then gone too
    op.state = _DONE
    if op.have_view:
        op.have_view = False
        PyBuffer_Release(&op.view)
    if op.holds_guard:
        op.holds_guard = False
        op.guard.busy = False
    op.guard = None
    op.sock = op.data = op.error = op.result = op.name = op.args = None
    op.runner = op.poller = op.task = None
    return 0


cdef int _abandon(PyObject *op_) noexcept:
    # throw()/close() from outside the kernel. A parked op keeps its waiter (and what
    # it holds) until the poller wakes the task or the kernel aborts the wait: the
    # kernel still sees the task parked, and dropping the waiter would strand it (the
    # reference's wait_fd leaves its waiter registered too). Then the dead coroutine
    # is resumed and the task ends with RuntimeError, as in trio.
    # An op driven by hand, which the kernel never parked a task on, just finishes.
    cdef _SockOp op = <_SockOp>op_
    if op.state == _PARKED and op.task is not None and op.task._abort_func is op:
        return 0
    return _finish(op_)


cdef int _unpark(_SockOp op) except -1:
    poller = op.poller
    task = op.task
    op.runner = op.poller = op.task = None
    if isinstance(poller, ReadinessTable):
        (<ReadinessTable>poller).c_remove(op.fd, task, op.bit)
    elif op.bit == IO_READ:
        poller.remove_reader(op.fd, task)
    else:
        poller.remove_writer(op.fd, task)
    return 0


ctypedef int (*_step_fn)(PyObject *, PyObject *, PyObject **) noexcept
ctypedef int (*_translate_fn)() noexcept


cdef int _advance(PyObject *op_, PyObject *arg, PyObject **out) noexcept:
    # One resumption: 0 = yielded *out, 1 = returned *out, -1 = raised (op finished).
    # noexcept + C-style errors, so exceptions passing through (Cancelled, ...) get no
    # frame of ours; _step is called through a noexcept pointer for the same reason.
    cdef int r = (<_step_fn>_step)(op_, arg, out)
    if r < 0 and (<_SockOp>op_).stream_errors and PyErr_ExceptionMatches(PyExc_OSError):
        (<_translate_fn>_to_stream_error)()
    return r


cdef int _to_stream_error() except -1:
    # Replace the OSError being raised as SocketStream does: EBADF/ENOTSOCK mean the
    # socket was closed (context kept, suppressed), anything else broke the connection
    # (the OSError becomes the cause). Always returns -1 with an error set.
    exc = vv_steal(vv_fetch_exception())
    if getattr(exc, "errno", None) in (EBADF, ENOTSOCK):
        new = ClosedResourceError(_CLOSED_STREAM)
        PyException_SetCause(<PyObject *>new, NULL)  # `from None`
    else:
        new = BrokenResourceError(f"socket connection broken: {exc}")
        vv_incref(<PyObject *>exc)  # SetCause steals a reference
        PyException_SetCause(<PyObject *>new, <PyObject *>exc)
    vv_incref(<PyObject *>exc)  # so does SetContext
    PyException_SetContext(<PyObject *>new, <PyObject *>exc)
    vv_incref(<PyObject *>new)
    vv_sp_raise(<PyObject *>new)  # steals new
    return -1


cdef int _step(PyObject *op_, PyObject *arg, PyObject **out) except -1:
    cdef _SockOp op = <_SockOp>op_
    cdef int state = op.state
    cdef PyObject *res
    if state == _FRESH:
        if arg != <PyObject *>None:  # refused: the op stays unstarted, as a coroutine does
            raise TypeError("can't send non-None value to a just-started coroutine")
        guard = op.guard
        if guard is not None:
            if guard.busy:
                op.guard = None  # not ours to release
                _finish(op_)
                raise BusyResourceError(guard.message)
            guard.busy = True
            op.holds_guard = True
        if op.kind == _WAIT:
            return _park_here(op, out)
        if op.kind == _SEND_ALL:
            # Held from here to the end, like `with memoryview(data)` around a loop.
            try:
                PyObject_GetBuffer(op.data, &op.view, PyBUF_SIMPLE)
            except BaseException:
                _finish(op_)
                raise
            op.have_view = True
            op.nbytes = op.view.len
            op.data = None
        return _begin(op, out)
    if state == _DONE:
        raise RuntimeError("cannot reuse already awaited coroutine")
    if state == _PARKED:
        # Woken (the poller or an abort already removed the waiter).
        op.poller = op.task = None
    if arg != <PyObject *>_RESUME_NONE:
        # A Value/Error outcome: unwrap it; an error (Cancelled, ClosedResourceError,
        # ...) ends the op and passes through untouched.
        res = PyObject_CallMethodNoArgs(arg, <PyObject *>_s_unwrap)
        if res == NULL:
            _finish(op_)
            return -1
        vv_decref(res)
    if state == _AT_CSC:
        if op.error is not None:
            error = op.error
            _finish(op_)
            raise error
        if op.kind == _SEND_ALL and op.offset < op.nbytes:
            return _begin(op, out)  # the next send of the loop
        return _return(op, out)
    if state == _AT_CHECKPOINT:
        # Resumed without Cancelled: the scope was uncancelled in between (a shield
        # was raised). The checkpoint happened; go on with the call.
        return _attempt(op, out, False)
    op.runner = None
    if op.kind == _WAIT:
        return _return(op, out)  # result None
    return _attempt(op, out, True)  # _PARKED: readiness reported, retry the syscall


cdef int _return(_SockOp op, PyObject **out) except -1:
    result = op.result
    _finish(<PyObject *>op)
    vv_incref(<PyObject *>result)
    out[0] = <PyObject *>result
    return 1


cdef inline KernelBase _current_runner():
    runner = getattr(_RUN_CONTEXT, _s_runner, None)
    if runner is None or (<KernelBase?>runner).current_task is None:
        raise RuntimeError("must be called from async context")
    return <KernelBase>runner


cdef int _begin(_SockOp op, PyObject **out) except -1:
    # The cancel check that opens every call (checkpoint_if_cancelled).
    cdef KernelBase runner
    cdef TaskBase task
    try:
        runner = _current_runner()
        task = <TaskBase?>runner.current_task
        if task.cancel_pending():
            op.state = _AT_CHECKPOINT
            return _yield(out, _CHECKPOINT_MSG)
        task.count_cancel_point()
    except BaseException:
        _finish(<PyObject *>op)
        raise
    return _attempt(op, out, False)


cdef Py_ssize_t _syscall(_SockOp op, int fd) except -2:
    # The call itself: bytes moved, or -1 with errno set (EINTR handled here).
    cdef Py_ssize_t n
    cdef Py_buffer buf
    cdef object data
    cdef PyObject *raw
    if op.kind == _CALL:
        try:
            op.result = getattr(op.sock, op.name)(*op.args)
        except BlockingIOError:
            return _WOULD_BLOCK
        return 0
    if op.kind == _RECV and op.nbytes == 0:
        op.result = b""  # as socket.recv(0): no syscall (recv(fd, buf, 0) reports EAGAIN)
        return 0
    while True:
        if op.kind == _RECV:
            if op.nbytes <= _SCRATCH_SIZE:
                n = c_recv(fd, _scratch, <size_t>op.nbytes, op.flags | MSG_DONTWAIT)
                if n >= 0:
                    op.result = PyBytes_FromStringAndSize(_scratch, n)
                    return n
            else:
                data = PyBytes_FromStringAndSize(NULL, op.nbytes)
                n = c_recv(fd, PyBytes_AS_STRING(data), <size_t>op.nbytes,
                           op.flags | MSG_DONTWAIT)
                if n >= 0:
                    raw = <PyObject *>data
                    vv_incref(raw)
                    data = None
                    _PyBytes_Resize(&raw, n)  # frees and NULLs raw on failure (raises)
                    op.result = vv_steal(raw)
                    return n
        elif op.kind == _SEND:
            PyObject_GetBuffer(op.data, &buf, PyBUF_SIMPLE)
            n = c_send(fd, buf.buf, <size_t>buf.len, op.flags | MSG_DONTWAIT)
            PyBuffer_Release(&buf)
            if n >= 0:
                op.result = n
                return n
        else:
            n = c_send(fd, <char *>op.view.buf + op.offset, <size_t>(op.nbytes - op.offset),
                       op.flags | MSG_DONTWAIT)
            if n >= 0:
                op.offset += n
                return n
        if errno != EINTR:
            return -1
        PyErr_CheckSignals()  # as the stdlib: run handlers (they may raise), retry


cdef int _attempt(_SockOp op, PyObject **out, bint woken) except -1:
    # Try the syscall. *woken*: we come from a wait, which was the checkpoint, so the
    # outcome is returned (or raised) at once instead of after a schedule point.
    cdef Py_ssize_t n
    cdef int fd = -1
    cdef int err
    try:
        if op.kind != _CALL:
            fd = op.sock.fileno()
        n = _syscall(op, fd)
        if n == -1:
            err = errno
            if err != EAGAIN:
                op.error = _os_error(err)
    except BaseException as exc:
        if woken:
            _finish(<PyObject *>op)
            raise
        op.error = exc
        n = -1
        err = 0
    if n >= 0 or op.error is not None:
        if not woken:
            op.state = _AT_CSC
            return _yield(out, _CSC_MSG)
        if op.error is not None:
            error = op.error
            _finish(<PyObject *>op)
            raise error
        if op.kind == _SEND_ALL and op.offset < op.nbytes:
            return _begin(op, out)
        return _return(op, out)
    try:
        return _park(op, out, fd)
    except BaseException:
        _finish(<PyObject *>op)
        raise


cdef int _park(_SockOp op, PyObject **out, int fd) except -1:
    # EAGAIN: register as the fd's reader/writer and wait (wait_readable/_writable).
    cdef KernelBase runner = _current_runner()
    task = runner.current_task
    poller = getattr(getattr(runner, _s_io_manager), _s_poller)
    if op.kind == _CALL:
        fd = op.sock.fileno()  # a negative one is refused by the poller
    op.runner = runner
    op.poller = poller
    op.task = task
    op.fd = fd
    return _park_here(op, out)


cdef int _park_here(_SockOp op, PyObject **out) except -1:
    # Register op.task as op.fd's reader/writer in op.poller (owner: op.sock) and yield
    # the wait. BusyResourceError if the direction already has a waiter.
    poller = op.poller
    task = op.task
    cdef int fd = op.fd
    cdef int bit = op.bit
    cdef bint busy
    if isinstance(poller, ReadinessTable):
        busy = (<ReadinessTable>poller).c_add(fd, op.sock, task, bit) == 1
    elif bit == IO_READ:
        busy = poller.add_reader(fd, op.sock, task)
    else:
        busy = poller.add_writer(fd, op.sock, task)
    if busy:
        op.runner = op.poller = op.task = None  # not registered: nothing to undo
        raise BusyResourceError(_BUSY_READ if bit == IO_READ else _BUSY_WRITE)
    op.state = _PARKED
    return _yield(out, _WaitTaskRescheduled(op))


# -- the send protocol (C slots and methods; see csrc/vv_sendproto.h) --------------------

cdef PySendResult _op_am_send(PyObject *op, PyObject *arg, PyObject **presult) noexcept:
    # The am_send slot: errors are already reported C-style by _advance.
    cdef int r = _advance(op, arg, presult)
    if r < 0:
        presult[0] = NULL
        return PYGEN_ERROR
    return PYGEN_NEXT if r == 0 else PYGEN_RETURN


cdef PyObject *_op_send_meth(PyObject *op, PyObject *arg) noexcept:
    # `send(value)`: the method form of am_send.
    return vv_sp_send(_op_am_send, op, arg)


cdef int _op_end(PyObject *op, int bad_exception) noexcept:
    # throw(): the op ends (releasing what it holds) before the exception comes out.
    if not bad_exception:  # a refused throw() leaves the op as it was
        _abandon(op)
    return 0


cdef PyObject *_op_throw_meth(PyObject *op, PyObject *args) noexcept:
    # `throw(exc)`: exc comes out of the await unchanged, with no frame of ours on it.
    return vv_sp_throw(op, args, _op_end)


vv_sp_install(_SockOp, _op_am_send, <PyCFunction>_op_send_meth, <PyCFunction>_op_throw_meth)
# Like a coroutine in every way that matters (send/throw/close/__await__), so that
# nursery.start_soon(stream.send_all, data) accepts it.
collections.abc.Coroutine.register(_SockOp)


include "_sockio_api.pxi"


# The engine exports, as the reference twin (vivace._core._sockio_py) declares them; _impl
# binds these names, and tests/test_twins_parity.py checks the two lists are equal.
__all__ = [
    "BusyGuard",
    "sock_call",
    "sock_recv",
    "sock_send",
    "sock_send_all",
    "stream_recv",
    "stream_send_all",
    "wait_fd",
]
