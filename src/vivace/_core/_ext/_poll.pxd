# cython: language_level=3
#
# C-level interface of the compiled poll(2) poller, for engine modules that park tasks
# on fds without a Python-level call:
#
#     from vivace._core._ext._poll cimport PollPoller
#
# ``PollPoller`` is a ``ReadinessTable`` (``_io_readiness.pxd``): ``c_add``/``c_remove``,
# the waiter table and the counters are the shared bookkeeping's; its event bits are
# poll(2)'s POLLIN/POLLOUT, which equal IO_READ/IO_WRITE. What is declared here is
# poll's own: the poll set as C arrays.

from libc.stdint cimport uint32_t

from vivace._core._ext._io_readiness cimport ReadinessTable

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents

    enum:
        POLLIN
        POLLOUT


cdef class PollPoller(ReadinessTable):
    cdef pollfd *_fds        # the poll set in registration order; fd -1: a hole
    cdef int _nfds           # entries of _fds, holes included
    cdef int _nholes
    cdef int _fds_cap
    cdef int *_slots         # fd -> its slot in _fds, or -1; indexed by fd
    cdef int _slots_cap
    cdef pollfd *_results    # what wait() hands to poll(2): a copy of _fds
    cdef int _results_cap
    cdef int _nresults       # entries of _results the last wait() polled
    cdef bint _dirty         # _fds changed since _results was copied from it
    cdef int _nready
    cdef int _busy

    cdef void _release_results(self) noexcept
    cdef void _release_set(self) noexcept
    cdef int _set(self, int fd, uint32_t mask) noexcept
    cdef int _unset(self, int fd) noexcept
    cdef void _compact(self) noexcept
    cdef int _snapshot(self) except -1
    cdef int _nval(self, int fd) except -1
