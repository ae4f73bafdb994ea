# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled readiness bookkeeping: the twin of ``vivace._core._io_readiness_py``.

Design notes
------------
The policy (one waiter per direction per fd, the armed mask, lazy disarm, owner-proved
cache hits, zombie detection, the order of state changes and wake-ups) and every
observable effect are the reference twin's; read its notes first. What this module
adds:

* ``ReadinessTable`` is a cdef base class: a backend's poller (``_epoll.EpollPoller``)
  subclasses it and overrides the two cdef hooks ``_arm``/``_disarm``, which the shared
  code reaches through the vtable. Socket operations park with ``c_add``/``c_remove``
  and the dispatch loop calls ``c_ready`` per event, all without Python calls.
* With ``reschedule=None`` (what the run's I/O manager uses) a woken task is handed
  straight to its own kernel's C ``_reschedule`` -- what ``runner.reschedule(task)``
  does, minus two Python calls per event.
* ``_begin_wait`` (the checks and timeout rules every backend's ``wait`` opens with) is
  a cdef method the backend calls with the GIL held; it returns seconds, -1 for no
  limit, and ``_wait_ms`` turns them into epoll_wait's and poll's int of milliseconds.
  The blocking system call itself stays in the backend, without the GIL.
"""

cimport cython
from libc.math cimport ceil, isnan

from vivace._core._ext._kernel cimport KernelBase, TaskBase

import os
import weakref

import outcome

from vivace._core._ext._kernel import RESUME_NONE as _RESUME_NONE

cdef uint32_t _READ_READY = IO_READ | IO_ERROR | IO_HANGUP
cdef uint32_t _WRITE_READY = IO_WRITE | IO_ERROR | IO_HANGUP
cdef uint32_t _DIRECTIONS = IO_READ | IO_WRITE

# The event bits as Python ints, for the reference twin's parity test and for backends
# written in Python.
READABLE = IO_READ
WRITABLE = IO_WRITE
ERROR = IO_ERROR
HANGUP = IO_HANGUP
WAKEUP = READY_WAKEUP
REBUILD = READY_REBUILD


# epoll_wait and poll take an int of milliseconds; longer waits are clamped to that.
cdef int _MAX_TIMEOUT_MS = 2147483647
cdef double _MAX_TIMEOUT_S = 2147483.647

_BUSY_WAIT_MSG = "another thread is already waiting in this poller"


cdef int _wait_ms(double seconds) noexcept:
    # noexcept: arithmetic only. _MAX_TIMEOUT_S * 1000.0 is exactly _MAX_TIMEOUT_MS.
    if seconds < 0:
        return -1
    return <int>ceil(seconds * 1000.0)


cdef object _os_error(int err):
    # Same construction as PyErr_SetFromErrno: picks the errno's OSError subclass.
    return OSError(err, os.strerror(err))


cdef object _weak_owner(object owner):
    if owner is None:
        return None
    try:
        return weakref.ref(owner)
    except TypeError:
        return None  # not weak-referenceable: no cache hits for this fd


@cython.final
@cython.freelist(64)
cdef class _FdRecord:
    def __cinit__(self):
        self.read_task = None
        self.write_task = None
        self.owner = None
        self.armed = 0


cdef class ReadinessTable:
    """The fd -> waiters table of a readiness backend and turning events into wake-ups;
    the backend's subclass supplies the system call."""

    def __cinit__(self):
        self._records = {}
        self._wakeup_fd = -1
        self._closed = True
        self._in_wait = False
        self.backend = "readiness"

    def __init__(self, str backend not None, int wakeup_fd, reschedule=None):
        # Backends call _init_table from their own __init__; constructing the base
        # directly gives a table the kernel is not told about (the shared tests use it).
        self._init_table(backend, wakeup_fd, reschedule)

    def close(self):
        if not self._closed:
            self._clear()

    cdef int _init_table(self, str backend, int wakeup_fd, object reschedule) except -1:
        self.backend = backend
        self._reschedule = reschedule
        self._wakeup_fd = wakeup_fd
        self.tasks_waiting_read = 0
        self.tasks_waiting_write = 0
        self.ctl_calls = 0
        self.rebuilds = 0
        self._closed = False
        return 0

    cdef int _clear(self) except -1:
        self._closed = True
        self._records.clear()
        self.tasks_waiting_read = 0
        self.tasks_waiting_write = 0
        return 0

    cdef double _begin_wait(self, double timeout) except? -2.0:
        # The reference twin's _begin_wait, with -1 for "no limit" (None there).
        if self._closed:
            raise RuntimeError(f"the {self.backend} poller is closed")
        if self._in_wait:
            raise RuntimeError(_BUSY_WAIT_MSG)
        if isnan(timeout):
            raise ValueError("timeout must not be NaN")
        if timeout <= 0:
            return 0.0
        if timeout > _MAX_TIMEOUT_S:
            return -1.0 if timeout == float("inf") else _MAX_TIMEOUT_S
        return timeout

    @property
    def closed(self):
        return self._closed

    @property
    def registered_fds(self):
        """How many fds (besides the wakeup fd) we believe the kernel watches."""
        cdef _FdRecord rec
        cdef Py_ssize_t count = 0
        for rec in self._records.values():
            if rec.armed:
                count += 1
        return count

    # -- the platform's hooks (this base watches nothing) -------------------------------
    cdef int _arm(self, int fd, uint32_t had, uint32_t wanted) noexcept:
        # noexcept: an errno or 0, never an exception (see the .pxd).
        return 0

    cdef int _disarm(self, int fd, uint32_t remaining) noexcept:
        return 0

    # -- waiters -----------------------------------------------------------------------
    def add_reader(self, int fd, owner, task):
        """Register *task* as the reader of *fd*. Returns True (and changes nothing) if
        another task already is; raises OSError if the kernel refuses the fd."""
        return self.c_add(fd, owner, task, IO_READ) == 1

    def add_writer(self, int fd, owner, task):
        """As ``add_reader``, for writing."""
        return self.c_add(fd, owner, task, IO_WRITE) == 1

    cdef int c_add(self, int fd, object owner, object task, uint32_t bit) except -1:
        if self._closed:
            raise RuntimeError(f"the {self.backend} poller is closed")
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        cdef _FdRecord rec = self._records.get(fd)
        cdef bint new = rec is None
        cdef uint32_t wanted
        cdef int err
        if new:
            rec = _FdRecord()
        elif (rec.read_task if bit == IO_READ else rec.write_task) is not None:
            return 1
        # Reuse the armed direction only with proof the file is the same (see the
        # reference twin's notes).
        if not (
            (rec.armed & bit)
            and owner is not None
            and rec.owner is not None
            and rec.owner() is owner
        ):
            wanted = rec.armed | bit
            err = self._arm(fd, rec.armed, wanted)
            if err:
                if not new:
                    self._fail_record(fd, rec, err)
                raise _os_error(err)
            rec.armed = wanted
            rec.owner = _weak_owner(owner)
        if bit == IO_READ:
            rec.read_task = task
            self.tasks_waiting_read += 1
        else:
            rec.write_task = task
            self.tasks_waiting_write += 1
        if new:
            self._records[fd] = rec
        return 0

    cdef int _fail_record(self, int fd, _FdRecord rec, int err) except -1:
        del self._records[fd]
        rec.armed = 0
        for task in self._take_tasks(rec):
            self._wake(task, outcome.Error(_os_error(err)))
        return 0

    cdef int _wake(self, object task, object value) except -1:
        # value None: the plain wake-up (reschedule's default, Value(None)).
        if self._reschedule is not None:
            if value is None:
                self._reschedule(task)
            else:
                self._reschedule(task, value)
        elif isinstance(task, TaskBase) and isinstance((<TaskBase>task)._runner, KernelBase):
            # What runner.reschedule(task[, value]) does, without the Python call.
            (<KernelBase>(<TaskBase>task)._runner)._reschedule(
                <TaskBase>task, _RESUME_NONE if value is None else value
            )
        elif value is None:
            task._runner.reschedule(task)
        else:
            task._runner.reschedule(task, value)
        return 0

    cdef list _take_tasks(self, _FdRecord rec):
        cdef list tasks = []
        if rec.read_task is not None:
            tasks.append(rec.read_task)
            rec.read_task = None
            self.tasks_waiting_read -= 1
        if rec.write_task is not None:
            tasks.append(rec.write_task)
            rec.write_task = None
            self.tasks_waiting_write -= 1
        return tasks

    def remove_reader(self, int fd, task):
        """Forget *task* as the reader of *fd* (its wait was cancelled). The direction
        stays armed; it is dropped lazily."""
        self.c_remove(fd, task, IO_READ)

    def remove_writer(self, int fd, task):
        """As ``remove_reader``, for writing."""
        self.c_remove(fd, task, IO_WRITE)

    cdef int c_remove(self, int fd, object task, uint32_t bit) except -1:
        cdef _FdRecord rec = self._records.get(fd)
        if rec is None:
            return 0
        if bit == IO_READ:
            if rec.read_task is task:
                rec.read_task = None
                self.tasks_waiting_read -= 1
        elif rec.write_task is task:
            rec.write_task = None
            self.tasks_waiting_write -= 1
        return 0

    def forget(self, int fd):
        """Drop *fd* from the kernel's set and the table (it is about to be closed).
        Returns its ``(reader, writer)`` tasks for the caller to wake, or None if it
        had no record."""
        if self._closed:
            return None
        cdef _FdRecord rec = self._records.pop(fd, None)
        if rec is None:
            return None
        if rec.armed:
            # Errors mean the fd is already closed or reused: nothing left to remove
            # through this number (a zombie, if any, is caught by dispatch).
            self._disarm(fd, 0)
            rec.armed = 0
        reader = rec.read_task
        writer = rec.write_task
        self._take_tasks(rec)
        return reader, writer

    # -- dispatching ---------------------------------------------------------------------
    def ready(self, int fd, uint32_t ev):
        """``c_ready`` for backends and tests in Python."""
        return self.c_ready(fd, ev)

    def ready_batch(self, events):
        """``ready`` for each ``(fd, events)`` pair, stopping if a wake-up closed the
        table; the union of the flags."""
        cdef int flags = 0
        for fd, ev in events:
            if self._closed:
                break  # a reschedule callback closed us
            flags |= self.c_ready(fd, ev)
        return flags

    cdef int c_ready(self, int fd, uint32_t ev) except -1:
        if fd == self._wakeup_fd:
            return READY_WAKEUP
        cdef _FdRecord rec = self._records.get(fd)
        if rec is None:
            return READY_REBUILD  # nothing of ours is registered here: a zombie
        cdef int flags = 0
        if ev & _DIRECTIONS & ~rec.armed:
            flags = READY_REBUILD  # bits we never asked for: a zombie shares this fd
        cdef object rtask = None
        cdef object wtask = None
        cdef uint32_t drop = 0
        cdef uint32_t remaining
        if ev & _READ_READY:
            if rec.read_task is not None:
                rtask = rec.read_task
                rec.read_task = None
                self.tasks_waiting_read -= 1
            else:
                drop = IO_READ
        if ev & _WRITE_READY:
            if rec.write_task is not None:
                wtask = rec.write_task
                rec.write_task = None
                self.tasks_waiting_write -= 1
            else:
                drop |= IO_WRITE
        drop &= rec.armed
        if drop:
            remaining = rec.armed & ~drop
            if self._disarm(fd, remaining):
                flags = READY_REBUILD  # registered but unreachable through fd: zombie
            else:
                rec.armed = remaining
                if not remaining and rec.read_task is None and rec.write_task is None:
                    del self._records[fd]
        if rtask is not None:
            self._wake(rtask, None)
        if wtask is not None:
            self._wake(wtask, None)
        return flags

    cdef int _rearm_all(self) except -1:
        cdef _FdRecord rec
        cdef uint32_t wanted
        cdef int err
        for fd, rec in list(self._records.items()):
            wanted = (IO_READ if rec.read_task is not None else 0) | (
                IO_WRITE if rec.write_task is not None else 0
            )
            rec.armed = 0
            if not wanted:
                del self._records[fd]
                continue
            err = self._arm(fd, 0, wanted)
            if err:
                self._fail_record(fd, rec, err)
            else:
                rec.armed = wanted
        return 0


# The engine exports, as the reference twin (vivace._core._io_readiness_py) declares them; _impl
# binds these names, and tests/test_twins_parity.py checks the two lists are equal.
__all__ = [
    "ReadinessTable",
]
