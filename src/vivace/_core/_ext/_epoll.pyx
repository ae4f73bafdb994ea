# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled epoll poller: the twin of ``vivace._core._epoll_py`` over <sys/epoll.h>.

Design notes
------------
Semantics, registration policy (level-triggered, lazy disarm, owner-proved cache hits,
zombie rebuilds) and every observable effect -- return values, the order of epoll_ctl
calls and reschedules, counters, error types and messages -- are the reference twin's;
read its notes first. What this module adds:

* The event buffer is a C array owned by the poller. ``wait()`` fills it with the GIL
  released and returns the event count; ``dispatch(n)`` walks it. So a batch is not a
  list of tuples, and ``dispatch`` accepts exactly the count of the last ``wait()``,
  once, or any falsy value for "no events" (the reference accepts its list).
* ``wait()`` may run in a worker thread (guest mode) while the run's thread leaves the
  poller alone. ``_busy`` counts calls that are using the buffer: ``close()`` from
  another thread (or from a reschedule callback) must not free it under their feet;
  the last user frees it instead.
* State changes for one event (waiter slots, counters, epoll_ctl) all happen before
  any reschedule call, because reschedule runs arbitrary Python (instruments) that may
  re-enter the poller.
* With ``reschedule=None`` (what the run's I/O manager uses) a woken task is handed
  straight to its own kernel's C ``_reschedule`` -- what ``runner.reschedule(task)``
  does, minus two Python calls per event. ``_epoll.pxd`` exports ``c_add``/``c_remove``
  so ``_epoll_sockio`` parks tasks without Python calls either.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EEXIST, EINTR, ENOENT, errno
from libc.math cimport ceil, isnan
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport close as c_close

from vivace._core._ext._kernel cimport KernelBase, TaskBase

import os
import weakref

import outcome

from vivace._core._ext._kernel import RESUME_NONE as _RESUME_NONE

cdef extern from "<sys/epoll.h>" nogil:
    # epoll_event, EPOLLIN and EPOLLOUT come from _epoll.pxd.
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)

    enum:
        EPOLLERR
        EPOLLHUP
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL
        EPOLL_CLOEXEC

cdef uint32_t _READ_READY = EPOLLIN | EPOLLERR | EPOLLHUP
cdef uint32_t _WRITE_READY = EPOLLOUT | EPOLLERR | EPOLLHUP
cdef uint32_t _DIRECTIONS = EPOLLIN | EPOLLOUT

# epoll_wait takes an int of milliseconds; longer waits are clamped to the maximum.
cdef int _MAX_TIMEOUT_MS = 2147483647
cdef double _MAX_TIMEOUT_S = 2147483.647
cdef int _MIN_CAPACITY = 64

_CLOSED_MSG = "the epoll poller is closed"
_BUSY_WAIT_MSG = "another thread is already waiting in this poller"


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


# noexcept: pure C arithmetic on a struct filled by the kernel; cannot fail usefully.
cdef inline double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef int _timeout_ms(double timeout) except? -2:
    if isnan(timeout):
        raise ValueError("timeout must not be NaN")
    if timeout <= 0:
        return 0
    if timeout > _MAX_TIMEOUT_S:
        return -1 if timeout == float("inf") else _MAX_TIMEOUT_MS
    return <int>ceil(timeout * 1000.0)


@cython.final
@cython.freelist(64)
cdef class _FdRecord:
    def __cinit__(self):
        self.read_task = None
        self.write_task = None
        self.owner = None
        self.armed = 0


@cython.final
cdef class EpollPoller:
    """The epoll set, the fd -> waiters table, and turning events into wake-ups."""

    def __cinit__(self):
        self._epfd = -1
        self._events = NULL
        self._capacity = 0
        self._nready = 0
        self._busy = 0
        self._in_wait = False
        self._closed = True
        self._records = {}

    def __init__(self, int wakeup_fd, reschedule=None):
        if self._epfd >= 0:
            raise RuntimeError("EpollPoller.__init__ called twice")
        self._reschedule = reschedule
        self._wakeup_fd = wakeup_fd
        self.tasks_waiting_read = 0
        self.tasks_waiting_write = 0
        self.ctl_calls = 0
        self.rebuilds = 0
        cdef int epfd = epoll_create1(EPOLL_CLOEXEC)
        if epfd < 0:
            raise _os_error(errno)
        self._epfd = epfd
        self._closed = False
        cdef int err = self._ctl(EPOLL_CTL_ADD, wakeup_fd, EPOLLIN)
        if err:
            self.close()
            raise _os_error(err)

    def __dealloc__(self):
        # No method can be running: each holds a reference to self.
        if self._epfd >= 0:
            c_close(self._epfd)
            self._epfd = -1
        free(self._events)
        self._events = NULL

    # -- lifetime ----------------------------------------------------------------------
    def close(self):
        if self._closed:
            return
        self._closed = True
        self._records.clear()
        self.tasks_waiting_read = 0
        self.tasks_waiting_write = 0
        if self._epfd >= 0:
            # A wait() blocked in another thread keeps the epoll file alive until it
            # returns; closing the number here is safe.
            c_close(self._epfd)
            self._epfd = -1
        if self._busy == 0:
            self._release_buffer()

    cdef void _release_buffer(self) noexcept:
        # noexcept: free() only.
        free(self._events)
        self._events = NULL
        self._capacity = 0
        self._nready = 0

    @property
    def closed(self):
        return self._closed

    def fileno(self):
        return self._epfd

    @property
    def registered_fds(self):
        """How many fds (besides the wakeup fd) we believe are in the epoll set."""
        cdef _FdRecord rec
        cdef Py_ssize_t count = 0
        for rec in self._records.values():
            if rec.armed:
                count += 1
        return count

    # -- epoll_ctl ---------------------------------------------------------------------
    # noexcept: returns 0 or the errno and touches no Python object, so callers decide
    # which failures are errors (several are expected fallbacks).
    cdef int _ctl(self, int op, int fd, uint32_t mask) noexcept:
        cdef epoll_event ev
        ev.events = mask
        ev.data.u64 = 0
        ev.data.fd = fd
        self.ctl_calls += 1
        # GIL kept: epoll_ctl never blocks, and dropping the GIL costs more than it.
        if epoll_ctl(self._epfd, op, fd, &ev) < 0:
            return errno
        return 0

    cdef int _arm(self, int fd, uint32_t had, uint32_t wanted) noexcept:
        # noexcept: only _ctl calls; see _ctl.
        cdef int err
        if had:
            err = self._ctl(EPOLL_CTL_MOD, fd, wanted)
            if err == ENOENT:
                err = self._ctl(EPOLL_CTL_ADD, fd, wanted)
        else:
            err = self._ctl(EPOLL_CTL_ADD, fd, wanted)
            if err == EEXIST:
                err = self._ctl(EPOLL_CTL_MOD, fd, wanted)
        return err

    # -- waiters -----------------------------------------------------------------------
    def add_reader(self, int fd, owner, task):
        """Register *task* as the reader of *fd*. Returns True (and changes nothing) if
        another task already is; raises OSError if the kernel refuses the fd."""
        return self.c_add(fd, owner, task, EPOLLIN) == 1

    def add_writer(self, int fd, owner, task):
        """As ``add_reader``, for writing."""
        return self.c_add(fd, owner, task, EPOLLOUT) == 1

    cdef int c_add(self, int fd, object owner, object task, uint32_t bit) except -1:
        if self._closed:
            raise RuntimeError(_CLOSED_MSG)
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        cdef _FdRecord rec = self._records.get(fd)
        cdef bint new = rec is None
        cdef uint32_t wanted
        cdef int err
        if new:
            rec = _FdRecord()
        elif (rec.read_task if bit == EPOLLIN else rec.write_task) is not None:
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
        if bit == EPOLLIN:
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
        self.c_remove(fd, task, EPOLLIN)

    def remove_writer(self, int fd, task):
        """As ``remove_reader``, for writing."""
        self.c_remove(fd, task, EPOLLOUT)

    cdef int c_remove(self, int fd, object task, uint32_t bit) except -1:
        cdef _FdRecord rec = self._records.get(fd)
        if rec is None:
            return 0
        if bit == EPOLLIN:
            if rec.read_task is task:
                rec.read_task = None
                self.tasks_waiting_read -= 1
        elif rec.write_task is task:
            rec.write_task = None
            self.tasks_waiting_write -= 1
        return 0

    def forget(self, int fd):
        """Drop *fd* from the set and the table (it is about to be closed). Returns its
        ``(reader, writer)`` tasks for the caller to wake, or None if it had no record."""
        if self._closed:
            return None
        cdef _FdRecord rec = self._records.pop(fd, None)
        if rec is None:
            return None
        if rec.armed:
            # Errors mean the fd is already closed or reused: nothing left to remove
            # through this number (a zombie, if any, is caught by dispatch).
            self._ctl(EPOLL_CTL_DEL, fd, 0)
            rec.armed = 0
        reader = rec.read_task
        writer = rec.write_task
        self._take_tasks(rec)
        return reader, writer

    # -- waiting and dispatching -------------------------------------------------------
    def wait(self, double timeout):
        """Block in epoll_wait up to *timeout* seconds (0: poll; inf: no limit), without
        the GIL. Safe to call from another thread while the owning thread leaves the
        poller alone. Returns the batch for ``dispatch`` (the event count)."""
        if self._closed:
            raise RuntimeError(_CLOSED_MSG)
        if self._in_wait:
            raise RuntimeError(_BUSY_WAIT_MSG)
        cdef int ms = _timeout_ms(timeout)
        cdef Py_ssize_t want = len(self._records) + 1
        cdef int maxevents = <int>want if want < 0x7FFFFFF else 0x7FFFFFF
        self._reserve(maxevents)
        cdef double deadline = _monotonic() + ms / 1000.0 if ms > 0 else 0.0
        cdef double remaining
        cdef int epfd = self._epfd
        cdef epoll_event *buf = self._events
        cdef int n = 0
        cdef int err = 0
        self._nready = 0
        self._in_wait = True
        self._busy += 1
        try:
            while True:
                # The GIL is released only around the syscall: buf and epfd are
                # locals, and close() defers freeing buf while _busy is set.
                with nogil:
                    n = epoll_wait(epfd, buf, maxevents, ms)
                    if n < 0:
                        err = errno
                if n >= 0:
                    break
                if err != EINTR:
                    raise _os_error(err)
                # As select.epoll.poll: run signal handlers (propagating what they
                # raise), then retry with what is left of the timeout.
                PyErr_CheckSignals()
                if ms > 0:
                    remaining = deadline - _monotonic()
                    ms = 0 if remaining <= 0 else <int>ceil(remaining * 1000.0)
        finally:
            self._in_wait = False
            self._busy -= 1
        if self._closed:
            if self._busy == 0:
                self._release_buffer()
            return 0
        self._nready = n
        return n

    cdef int _reserve(self, int n) except -1:
        if n <= self._capacity:
            return 0
        cdef int cap = self._capacity * 2
        if cap < n:
            cap = n
        if cap < _MIN_CAPACITY:
            cap = _MIN_CAPACITY
        cdef epoll_event *grown = <epoll_event *>realloc(
            self._events, <size_t>cap * sizeof(epoll_event)
        )
        if grown == NULL:
            raise MemoryError()
        self._events = grown
        self._capacity = cap
        return 0

    def dispatch(self, events):
        """Wake the tasks whose fds are ready. Returns True if the wakeup fd fired (the
        caller drains it)."""
        if self._closed or not events:
            return False  # not events: also the run loop's "nothing yet" ([])
        cdef int n = events
        if n < 0 or n > self._nready:
            raise ValueError(
                f"dispatch() takes the event count that the last wait() returned "
                f"({self._nready}), once; got {events!r}"
            )
        self._nready = 0
        cdef bint woke = False
        cdef bint rebuild = False
        cdef dict records = self._records
        cdef _FdRecord rec
        cdef object rtask, wtask
        cdef int i, fd, err
        cdef uint32_t ev, drop, remaining
        self._busy += 1
        try:
            for i in range(n):
                if self._closed:
                    break  # a reschedule callback closed us
                fd = self._events[i].data.fd
                ev = self._events[i].events
                if fd == self._wakeup_fd:
                    woke = True
                    continue
                rec = records.get(fd)
                if rec is None:
                    rebuild = True  # nothing of ours is registered here: a zombie
                    continue
                if ev & _DIRECTIONS & ~rec.armed:
                    rebuild = True  # bits we never asked for: a zombie shares this fd
                rtask = None
                wtask = None
                drop = 0
                if ev & _READ_READY:
                    if rec.read_task is not None:
                        rtask = rec.read_task
                        rec.read_task = None
                        self.tasks_waiting_read -= 1
                    else:
                        drop = EPOLLIN
                if ev & _WRITE_READY:
                    if rec.write_task is not None:
                        wtask = rec.write_task
                        rec.write_task = None
                        self.tasks_waiting_write -= 1
                    else:
                        drop |= EPOLLOUT
                drop &= rec.armed
                if drop:
                    remaining = rec.armed & ~drop
                    if remaining:
                        err = self._ctl(EPOLL_CTL_MOD, fd, remaining)
                    else:
                        err = self._ctl(EPOLL_CTL_DEL, fd, 0)
                    if err:
                        rebuild = True  # registered but unreachable through fd: zombie
                    else:
                        rec.armed = remaining
                        if not remaining and rec.read_task is None and rec.write_task is None:
                            del records[fd]
                if rtask is not None:
                    self._wake(rtask, None)
                if wtask is not None:
                    self._wake(wtask, None)
            if rebuild and not self._closed:
                self._rebuild()
        finally:
            self._busy -= 1
            if self._closed and self._busy == 0:
                self._release_buffer()
        return woke

    cdef int _rebuild(self) except -1:
        """Replace the epoll set with a fresh one holding only what has waiters."""
        self.rebuilds += 1
        cdef int newfd = epoll_create1(EPOLL_CLOEXEC)
        if newfd < 0:
            raise _os_error(errno)
        c_close(self._epfd)
        self._epfd = newfd
        cdef int err = self._ctl(EPOLL_CTL_ADD, self._wakeup_fd, EPOLLIN)
        if err:
            raise _os_error(err)
        cdef _FdRecord rec
        cdef uint32_t wanted
        for fd, rec in list(self._records.items()):
            wanted = (EPOLLIN if rec.read_task is not None else 0) | (
                EPOLLOUT if rec.write_task is not None else 0
            )
            rec.armed = 0
            if not wanted:
                del self._records[fd]
                continue
            err = self._ctl(EPOLL_CTL_ADD, fd, wanted)
            if err:
                self._fail_record(fd, rec, err)
            else:
                rec.armed = wanted
        return 0
