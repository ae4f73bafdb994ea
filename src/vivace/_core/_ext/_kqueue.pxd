# cython: language_level=3
#
# C-level interface of the compiled kqueue poller, for engine modules that park tasks on
# fds without a Python-level call:
#
#     from vivace._core._ext._kqueue cimport KqueuePoller
#
# ``KqueuePoller`` is a ``ReadinessTable`` (``_io_readiness.pxd``): ``c_add``/``c_remove``,
# the waiter table and the counters are the shared bookkeeping's, in its IO_READ/IO_WRITE
# bits, which the poller translates to and from kqueue's filters. What is declared here
# is kqueue's own. Only the struct fields whose type every system shares are named; the
# others are read through csrc/vv_kqueue.h.

from libc.stdint cimport uint8_t, uint32_t, uintptr_t

from vivace._core._ext._io_readiness cimport ReadinessTable

cdef extern from "vv_kqueue.h" nogil:
    struct kevent:
        uintptr_t ident
        int filter
        unsigned int flags
        unsigned int fflags

    enum:
        EVFILT_READ
        EVFILT_WRITE
        EV_ADD
        EV_DELETE
        EV_RECEIPT
        EV_ERROR

    void vv_kev_change(kevent *kev, int fd, int filter, int flags)
    long long vv_kev_data(const kevent *kev)
    unsigned long long vv_kev_udata(const kevent *kev)


cdef class KqueuePoller(ReadinessTable):
    cdef int _kq             # the kqueue's fd; -1 once closed
    cdef object _kq_object   # select.kqueue over _kq, made on demand; owns _kq then
    cdef uint8_t *_kernel    # fd -> IO_READ/IO_WRITE registered (the reference's _kernel)
    cdef int _kernel_cap
    cdef dict _routes        # (ident, filter) -> callback: the lowlevel kevent API
    cdef kevent *_events     # what wait() hands to kevent(2) for results
    cdef int _capacity
    cdef int _nready
    cdef int _busy

    cdef void _release_buffer(self) noexcept
    cdef void _release_kernel(self) noexcept
    cdef int _submit(self, int fd, uint32_t bits, int flags, int *results) noexcept
    cdef uint32_t _held(self, int fd) noexcept
    cdef int _hold(self, int fd, uint32_t bits) noexcept
    cdef int _reserve(self, Py_ssize_t n) except -1
    cdef int _dispatch_routed(self, int n) except -1
