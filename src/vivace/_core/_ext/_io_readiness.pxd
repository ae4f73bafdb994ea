# cython: language_level=3
#
# C-level interface of the readiness bookkeeping that every readiness-based I/O backend
# shares (epoll, poll, kqueue); the compiled twin of
# ``vivace._core._io_readiness_py``. A backend's poller subclasses ``ReadinessTable``
# and writes only the system call: ``_arm``/``_disarm`` (register, modify, unregister
# one fd's interest), ``wait`` (opening with ``_begin_wait``), a dispatch loop that
# feeds each (fd, events) pair to ``c_ready``, ``close`` and, if the kernel keeps state
# that can go stale, a rebuild that ends in ``_rearm_all``. Engine modules park tasks through ``c_add``/``c_remove``:
#
#     from vivace._core._ext._io_readiness cimport ReadinessTable, IO_READ, IO_WRITE

from libc.stdint cimport uint32_t

# Event bits: poll(2)'s and epoll(7)'s values, so those two pass the kernel's masks
# through unchanged (kqueue translates its filters into them).
cdef enum:
    IO_READ = 0x001     # POLLIN, EPOLLIN
    IO_WRITE = 0x004    # POLLOUT, EPOLLOUT
    IO_ERROR = 0x008    # POLLERR, EPOLLERR: reported whatever was asked; wakes both
    IO_HANGUP = 0x010   # POLLHUP, EPOLLHUP: likewise

# What ``c_ready`` tells the dispatch loop about one event (bit flags).
cdef enum:
    READY_WAKEUP = 1    # it was the wakeup fd: the manager drains it
    READY_REBUILD = 2   # the kernel reported something we cannot reach: rebuild


# The seconds from ReadinessTable._begin_wait as an int of milliseconds for epoll_wait
# and poll: rounded up; -1 (no limit) stays -1.
cdef int _wait_ms(double seconds) noexcept

# OSError(err, strerror(err)), as PyErr_SetFromErrno builds it (the errno's subclass).
cdef object _os_error(int err)


cdef class _FdRecord:
    cdef object read_task
    cdef object write_task
    cdef object owner  # weakref.ref to the registering socket object, or None
    cdef uint32_t armed


cdef class ReadinessTable:
    cdef dict _records
    cdef object _reschedule   # None: wake each task through its own kernel, in C
    cdef int _wakeup_fd
    cdef bint _closed
    cdef bint _in_wait        # a thread is in the backend's wait (set around its syscall)
    cdef readonly str backend
    cdef readonly Py_ssize_t tasks_waiting_read
    cdef readonly Py_ssize_t tasks_waiting_write
    cdef readonly Py_ssize_t ctl_calls
    cdef readonly Py_ssize_t rebuilds

    # -- shared: the backend calls these ------------------------------------------------
    cdef int _init_table(self, str backend, int wakeup_fd, object reschedule) except -1
    cdef int c_add(self, int fd, object owner, object task, uint32_t bit) except -1
    cdef int c_remove(self, int fd, object task, uint32_t bit) except -1
    cdef int c_ready(self, int fd, uint32_t ev) except -1
    cdef int _clear(self) except -1
    cdef double _begin_wait(self, double timeout) except? -2.0
    cdef int _rearm_all(self) except -1
    cdef int _wake(self, object task, object value) except -1
    cdef int _fail_record(self, int fd, _FdRecord rec, int err) except -1
    cdef list _take_tasks(self, _FdRecord rec)

    # -- the platform's: each backend overrides these -----------------------------------
    # Both return 0 or an errno and never raise (the caller decides what is an error).
    cdef int _arm(self, int fd, uint32_t had, uint32_t wanted) noexcept
    cdef int _disarm(self, int fd, uint32_t remaining) noexcept
