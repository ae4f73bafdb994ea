# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled epoll poller: the twin of ``vivace._core._epoll_py`` over <sys/epoll.h>.

Design notes
------------
Semantics, registration policy (level-triggered, lazy disarm, owner-proved cache hits,
zombie rebuilds) and every observable effect -- return values, the order of epoll_ctl
calls and reschedules, counters, error types and messages -- are the reference twin's;
read its notes first. The waiter table, the armed masks, waking tasks and ``wait``'s
checks and timeout rules (``_begin_wait``) are the shared ``ReadinessTable``
(``_io_readiness.pyx``); this module is epoll's part of a readiness backend: the
``_arm``/``_disarm`` hooks as epoll_ctl, the epoll_wait call (without the GIL), the
dispatch loop and the rebuild. What it adds to the reference:

* The event buffer is a C array owned by the poller. ``wait()`` fills it with the GIL
  released and returns the event count; ``dispatch(n)`` walks it. So a batch is not a
  list of tuples, and ``dispatch`` accepts exactly the count of the last ``wait()``,
  once, or any falsy value for "no events" (the reference accepts its list).
* ``wait()`` may run in a worker thread (guest mode) while the run's thread leaves the
  poller alone. ``_busy`` counts calls that are using the buffer: ``close()`` from
  another thread (or from a reschedule callback) must not free it under their feet;
  the last user frees it instead.
* ``c_ready`` makes every state change for one event (waiter slots, counters,
  epoll_ctl) before any reschedule call, because reschedule runs arbitrary Python
  (instruments) that may re-enter the poller.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EEXIST, EINTR, ENOENT, errno
from libc.math cimport ceil
from libc.stdint cimport uint32_t
from libc.stdlib cimport free, realloc
from posix.unistd cimport close as c_close

from vivace._core._ext._io_readiness cimport (
    IO_READ,
    IO_WRITE,
    READY_REBUILD,
    READY_WAKEUP,
    ReadinessTable,
    _os_error,
    _wait_ms,
)
from vivace._core._ext._vvc cimport vv_monotonic

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

# The shared table's event bits are epoll's own, so masks pass through unchanged.
if not (<int>EPOLLIN == <int>IO_READ and <int>EPOLLOUT == <int>IO_WRITE):  # pragma: no cover
    raise ImportError("epoll's event bits differ from the readiness table's")

cdef int _MIN_CAPACITY = 64


@cython.final
cdef class EpollPoller(ReadinessTable):
    """The epoll set, and turning its events into wake-ups through the shared table."""

    def __cinit__(self):
        self._epfd = -1
        self._events = NULL
        self._capacity = 0
        self._nready = 0
        self._busy = 0

    def __init__(self, int wakeup_fd, reschedule=None):
        if self._epfd >= 0:
            raise RuntimeError("EpollPoller.__init__ called twice")
        self._init_table("epoll", wakeup_fd, reschedule)
        self._closed = True  # until the epoll fd exists
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
        self._clear()
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

    def fileno(self):
        return self._epfd

    # -- epoll_ctl: the table's hooks ---------------------------------------------------
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
        # noexcept: only _ctl calls; see _ctl. MOD and ADD fall back to each other
        # when our belief is stale (the fd was closed and reused behind our back).
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

    cdef int _disarm(self, int fd, uint32_t remaining) noexcept:
        # noexcept: see _ctl. A mask of 0 would keep reporting ERR/HUP: delete instead.
        if remaining:
            return self._ctl(EPOLL_CTL_MOD, fd, remaining)
        return self._ctl(EPOLL_CTL_DEL, fd, 0)

    # -- waiting and dispatching -------------------------------------------------------
    def wait(self, double timeout):
        """Block in epoll_wait up to *timeout* seconds (0: poll; inf: no limit), without
        the GIL. Safe to call from another thread while the owning thread leaves the
        poller alone. Returns the batch for ``dispatch`` (the event count)."""
        # The checks and timeout rules are the shared table's.
        cdef int ms = _wait_ms(self._begin_wait(timeout))
        cdef Py_ssize_t want = len(self._records) + 1
        cdef int maxevents = <int>want if want < 0x7FFFFFF else 0x7FFFFFF
        self._reserve(maxevents)
        cdef double deadline = vv_monotonic() + ms / 1000.0 if ms > 0 else 0.0
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
                    remaining = deadline - vv_monotonic()
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
        cdef int flags = 0
        cdef int i
        self._busy += 1
        try:
            for i in range(n):
                if self._closed:
                    break  # a reschedule callback closed us
                flags |= self.c_ready(self._events[i].data.fd, self._events[i].events)
            if flags & READY_REBUILD and not self._closed:
                self._rebuild()
        finally:
            self._busy -= 1
            if self._closed and self._busy == 0:
                self._release_buffer()
        return (flags & READY_WAKEUP) != 0

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
        self._rearm_all()
        return 0


# The engine exports, as the reference twin (vivace._core._epoll_py) declares them; _impl
# binds these names, and tests/test_twins_parity.py checks the two lists are equal.
__all__ = [
    "EpollPoller",
]
