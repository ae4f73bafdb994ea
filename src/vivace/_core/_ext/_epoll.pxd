# cython: language_level=3
#
# C-level interface of the compiled epoll poller, for engine modules that park
# tasks on fds without a Python-level call (``_epoll_sockio``):
#
#     from vivace._core._ext._epoll cimport EpollPoller, EPOLLIN, EPOLLOUT
#
# ``c_add``/``c_remove`` are the bodies of add_reader/add_writer and
# remove_reader/remove_writer (``bit`` is EPOLLIN or EPOLLOUT): same checks,
# same epoll_ctl calls, same errors.

from libc.stdint cimport uint32_t, uint64_t

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64

    struct epoll_event:
        uint32_t events
        epoll_data_t data

    enum:
        EPOLLIN
        EPOLLOUT


cdef class _FdRecord:
    cdef object read_task
    cdef object write_task
    cdef object owner  # weakref.ref to the registering socket object, or None
    cdef uint32_t armed


cdef class EpollPoller:
    cdef int _epfd
    cdef int _wakeup_fd
    cdef dict _records
    cdef object _reschedule   # None: wake each task through its own kernel, in C
    cdef epoll_event *_events
    cdef int _capacity
    cdef int _nready
    cdef int _busy
    cdef bint _in_wait
    cdef bint _closed
    cdef readonly Py_ssize_t tasks_waiting_read
    cdef readonly Py_ssize_t tasks_waiting_write
    cdef readonly Py_ssize_t ctl_calls
    cdef readonly Py_ssize_t rebuilds

    cdef int c_add(self, int fd, object owner, object task, uint32_t bit) except -1
    cdef int c_remove(self, int fd, object task, uint32_t bit) except -1
    cdef int _wake(self, object task, object value) except -1
    cdef void _release_buffer(self) noexcept
    cdef int _ctl(self, int op, int fd, uint32_t mask) noexcept
    cdef int _arm(self, int fd, uint32_t had, uint32_t wanted) noexcept
    cdef int _fail_record(self, int fd, _FdRecord rec, int err) except -1
    cdef list _take_tasks(self, _FdRecord rec)
    cdef int _reserve(self, int n) except -1
    cdef int _rebuild(self) except -1
