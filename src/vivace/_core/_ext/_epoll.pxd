# cython: language_level=3
#
# C-level interface of the compiled epoll poller, for engine modules that park
# tasks on fds without a Python-level call (``_sockio``):
#
#     from vivace._core._ext._epoll cimport EpollPoller, EPOLLIN, EPOLLOUT
#
# ``EpollPoller`` is a ``ReadinessTable`` (``_io_readiness.pxd``): ``c_add``/``c_remove``,
# the waiter table and the counters are the shared bookkeeping's; ``bit`` is EPOLLIN or
# EPOLLOUT, which equal its IO_READ and IO_WRITE. What is declared here is epoll's own.

from libc.stdint cimport uint32_t, uint64_t

from vivace._core._ext._io_readiness cimport ReadinessTable

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


cdef class EpollPoller(ReadinessTable):
    cdef int _epfd
    cdef epoll_event *_events
    cdef int _capacity
    cdef int _nready
    cdef int _busy

    cdef void _release_buffer(self) noexcept
    cdef int _ctl(self, int op, int fd, uint32_t mask) noexcept
    cdef int _reserve(self, int n) except -1
    cdef int _rebuild(self) except -1
