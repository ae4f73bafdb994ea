# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled poll(2) poller: the twin of ``vivace._core._poll_py`` over <poll.h>.

Design notes
------------
Semantics (level-triggered, lazy disarm, owner-proved cache hits) and every observable
effect -- return values, reschedules, counters, error types and messages -- are the
reference twin's; read its notes and the shared table's first. The waiter table, the
armed masks, waking tasks and ``wait``'s checks and timeout rules (``_begin_wait``) are
the shared ``ReadinessTable`` (``_io_readiness.pyx``); this module is poll's part of a
readiness backend: the poll set, the ``_arm``/``_disarm`` hooks that edit it, the
poll(2) call (without the GIL) and the dispatch loop.

* The kernel keeps no registrations: the poll set is ours, a C array of
  ``struct pollfd`` (``_fds``) plus ``_slots``, a C array indexed by fd giving each
  fd's entry (-1: not in the set), so an arm, a modify and a removal are O(1) and
  cannot fail (short of memory). ``ctl_calls`` counts each call of a hook that edits
  the set (one per arm, modify or removal, refused arms included), as the reference
  counts them. Arming first checks that the fd is open (``fcntl(F_GETFD)``, EBADF at
  once, as epoll_ctl refuses it; the reference's notes say why).
  Nothing the kernel holds can go stale, so there are no zombies and no rebuilds: a
  ``READY_REBUILD`` from the shared ``c_ready`` (a batch made stale by a wake-up that
  changed the table mid-batch) is ignored, and ``rebuilds`` stays 0.

* Order. The reference's ``select.poll`` keeps its fds in a dict and reports them in
  its insertion order, and the order of reschedules is observable; so ``_fds`` is in
  registration order too: a modify keeps the entry where it is, a removal leaves a
  hole (fd -1, which poll(2) ignores) and a re-add appends. Holes are squeezed out,
  keeping the order, when the set is copied for a wait (already O(n)) or when an
  append finds the array full with a quarter of it holes.

* ``wait()`` polls a copy of the set (``_results``), taken under the GIL and only when
  the set changed since the last copy (``_dirty``); poll(2) rewrites every revents, so
  an unchanged copy is reused as is. The copy is what makes the rest simple: the
  dispatch loop walks it while ``c_ready`` edits ``_fds`` (an append may compact it),
  and an arm from the run's thread while a guest-mode worker is blocked in poll(2)
  may grow ``_fds`` without pulling memory from under the kernel.

* As in ``_epoll``, ``wait()`` returns the count of ready entries and ``dispatch(n)``
  takes exactly that count, once (or any falsy value for "no events"); it stops after
  n entries with revents set. ``_busy`` counts calls using ``_results``: ``close()``
  from another thread or from a reschedule callback frees the set at once (only the
  GIL-holding owner touches it) and leaves ``_results`` to its last user.

* POLLNVAL: the fd was closed without notify_closing. As the reference does (see its
  notes): the fd leaves the set (else every poll(2) returns at once) and its record
  leaves the table, its waiters woken with ``OSError(EBADF)`` (``_fail_record``).

* Fds are indexed directly, so ``_slots`` grows to the largest fd ever armed (4 bytes
  per fd number; only open fds are armed, so RLIMIT_NOFILE bounds it); a failed allocation is
  ENOMEM from the hook, an OSError from ``add_reader``/``add_writer``.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EBADF, EINTR, ENOMEM, errno
from libc.math cimport ceil
from libc.stdint cimport uint32_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy
from posix.fcntl cimport F_GETFD, fcntl

from vivace._core._ext._io_readiness cimport (
    IO_ERROR,
    IO_HANGUP,
    IO_READ,
    IO_WRITE,
    READY_WAKEUP,
    ReadinessTable,
    _FdRecord,
    _os_error,
    _wait_ms,
)
from vivace._core._ext._vvc cimport vv_monotonic

cdef extern from "<poll.h>" nogil:
    # pollfd, POLLIN and POLLOUT come from _poll.pxd.
    ctypedef unsigned long nfds_t
    int poll(pollfd *fds, nfds_t nfds, int timeout)

    enum:
        POLLERR
        POLLHUP
        POLLNVAL

# The shared table's event bits are poll's own, so masks pass through unchanged.
if not (
    <int>POLLIN == <int>IO_READ
    and <int>POLLOUT == <int>IO_WRITE
    and <int>POLLERR == <int>IO_ERROR
    and <int>POLLHUP == <int>IO_HANGUP
):  # pragma: no cover
    raise ImportError("poll's event bits differ from the readiness table's")

cdef int _MIN_CAPACITY = 64


cdef Py_ssize_t _grown(Py_ssize_t cap, Py_ssize_t need) noexcept:
    # noexcept: arithmetic only. Doubling, at least *need*, at least _MIN_CAPACITY.
    cap *= 2
    if cap < need:
        cap = need
    if cap < _MIN_CAPACITY:
        cap = _MIN_CAPACITY
    return cap


@cython.final
cdef class PollPoller(ReadinessTable):
    """The poll set, and turning poll(2)'s results into wake-ups through the shared
    table."""

    def __cinit__(self):
        self._fds = NULL
        self._nfds = 0
        self._nholes = 0
        self._fds_cap = 0
        self._slots = NULL
        self._slots_cap = 0
        self._results = NULL
        self._results_cap = 0
        self._nresults = 0
        self._dirty = True
        self._nready = 0
        self._busy = 0

    def __init__(self, int wakeup_fd, reschedule=None):
        if self._fds != NULL:
            raise RuntimeError("PollPoller.__init__ called twice")
        self._init_table("poll", wakeup_fd, reschedule)
        if wakeup_fd < 0:  # select.poll's error, as the reference gets it
            self.close()
            raise ValueError(f"file descriptor cannot be a negative integer ({wakeup_fd})")
        self.ctl_calls += 1  # counted, as epoll counts adding the wakeup fd
        cdef int err = self._set(wakeup_fd, POLLIN)
        if err:
            self.close()
            raise _os_error(err)

    def __dealloc__(self):
        # No method can be running: each holds a reference to self.
        self._release_set()
        free(self._results)
        self._results = NULL

    # -- lifetime ----------------------------------------------------------------------
    def close(self):
        if self._closed:
            return
        self._clear()
        # Only GIL-holding code touches the set, and none of it runs now: free it. A
        # wait() blocked in another thread or a dispatch() up the stack uses _results.
        self._release_set()
        if self._busy == 0:
            self._release_results()

    cdef void _release_set(self) noexcept:
        # noexcept: free() only.
        free(self._fds)
        self._fds = NULL
        self._nfds = 0
        self._nholes = 0
        self._fds_cap = 0
        free(self._slots)
        self._slots = NULL
        self._slots_cap = 0
        self._dirty = True

    cdef void _release_results(self) noexcept:
        # noexcept: free() only.
        free(self._results)
        self._results = NULL
        self._results_cap = 0
        self._nresults = 0
        self._nready = 0

    def fileno(self):
        # poll has no kernel object to name.
        return -1

    # -- the poll set: the table's hooks -----------------------------------------------
    # noexcept: each returns 0 or ENOMEM and touches no Python object, so the table's
    # callers turn an errno into their error; GIL kept: no syscall, nothing blocks.
    cdef int _set(self, int fd, uint32_t mask) noexcept:
        """Watch *mask* for *fd*: modify its entry in place, or append one. The caller
        counts the change in ctl_calls."""
        cdef Py_ssize_t cap
        cdef Py_ssize_t i
        cdef int slot
        cdef int *slots
        cdef pollfd *fds
        if fd < self._slots_cap:
            slot = self._slots[fd]
            if slot >= 0:
                self._fds[slot].events = <short>mask
                self._dirty = True
                return 0
        else:
            cap = _grown(self._slots_cap, <Py_ssize_t>fd + 1)
            slots = <int *>realloc(self._slots, <size_t>cap * sizeof(int))
            if slots == NULL:
                return ENOMEM
            for i in range(self._slots_cap, cap):
                slots[i] = -1
            self._slots = slots
            self._slots_cap = <int>cap
        if self._nfds == self._fds_cap:
            if self._nholes and self._nholes >= self._nfds // 4:
                self._compact()
            else:
                cap = _grown(self._fds_cap, self._nfds + 1)
                fds = <pollfd *>realloc(self._fds, <size_t>cap * sizeof(pollfd))
                if fds == NULL:
                    return ENOMEM
                self._fds = fds
                self._fds_cap = <int>cap
        slot = self._nfds
        self._fds[slot].fd = fd
        self._fds[slot].events = <short>mask
        self._fds[slot].revents = 0
        self._slots[fd] = slot
        self._nfds = slot + 1
        self._dirty = True
        return 0

    cdef int _unset(self, int fd) noexcept:
        """Drop *fd* (in the set: the caller checked) from the set, leaving a hole."""
        self.ctl_calls += 1
        cdef int slot = self._slots[fd]
        self._slots[fd] = -1
        self._fds[slot].fd = -1
        self._fds[slot].events = 0
        self._nholes += 1
        self._dirty = True
        return 0

    cdef void _compact(self) noexcept:
        # noexcept: moves entries within the array. Squeezes out the holes, keeping
        # the order.
        cdef int i
        cdef int j = 0
        cdef int fd
        for i in range(self._nfds):
            fd = self._fds[i].fd
            if fd < 0:
                continue
            if i != j:
                self._fds[j] = self._fds[i]
                self._slots[fd] = j
            j += 1
        self._nfds = j
        self._nholes = 0

    cdef int _arm(self, int fd, uint32_t had, uint32_t wanted) noexcept:
        # noexcept: see _set. *had* does not matter: the set itself says where fd is.
        # Refuses a closed fd at once with EBADF, as epoll_ctl does (the reference's
        # notes); GIL kept: fcntl(F_GETFD) never blocks.
        self.ctl_calls += 1
        if fcntl(fd, F_GETFD) < 0:
            return errno
        return self._set(fd, wanted)

    cdef int _disarm(self, int fd, uint32_t remaining) noexcept:
        # noexcept: see _set. A mask of 0 would still report ERR/HUP/NVAL: remove
        # instead; an fd not in the set (a POLLNVAL dropped it) needs no change.
        if remaining:
            self.ctl_calls += 1
            return self._set(fd, remaining)
        if 0 <= fd < self._slots_cap and self._slots[fd] >= 0:
            return self._unset(fd)
        return 0

    # -- waiting and dispatching -------------------------------------------------------
    cdef int _snapshot(self) except -1:
        """Make _results a copy of the set (only if the set changed)."""
        cdef Py_ssize_t cap
        cdef pollfd *grown
        if not self._dirty:
            return 0
        if self._nholes:
            self._compact()
        if self._nfds > self._results_cap:
            cap = _grown(self._results_cap, self._nfds)
            grown = <pollfd *>realloc(self._results, <size_t>cap * sizeof(pollfd))
            if grown == NULL:
                raise MemoryError()
            self._results = grown
            self._results_cap = <int>cap
        if self._nfds:
            memcpy(self._results, self._fds, <size_t>self._nfds * sizeof(pollfd))
        self._nresults = self._nfds
        self._dirty = False
        return 0

    def wait(self, double timeout):
        """Block in poll(2) up to *timeout* seconds (0: poll; inf: no limit), without
        the GIL. Safe to call from another thread while the owning thread leaves the
        poller alone. Returns the batch for ``dispatch`` (the count of ready fds)."""
        # The checks and timeout rules are the shared table's.
        cdef int ms = _wait_ms(self._begin_wait(timeout))
        self._snapshot()
        cdef double deadline = vv_monotonic() + ms / 1000.0 if ms > 0 else 0.0
        cdef double remaining
        cdef pollfd *buf = self._results
        cdef nfds_t nfds = <nfds_t>self._nresults
        cdef int n = 0
        cdef int err = 0
        self._nready = 0
        self._in_wait = True
        self._busy += 1
        try:
            while True:
                # The GIL is released only around the syscall: buf and nfds are
                # locals, and close() defers freeing buf while _busy is set.
                with nogil:
                    n = poll(buf, nfds, ms)
                    if n < 0:
                        err = errno
                if n >= 0:
                    break
                if err != EINTR:
                    raise _os_error(err)
                # As select.poll.poll: run signal handlers (propagating what they
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
                self._release_results()
            return 0
        self._nready = n
        return n

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
        cdef int seen = 0
        cdef int i
        cdef int fd
        cdef uint32_t ev
        self._busy += 1
        try:
            for i in range(self._nresults):
                if seen == n:
                    break
                ev = <unsigned short>self._results[i].revents
                if not ev:
                    continue
                seen += 1
                if self._closed:
                    break  # a reschedule callback closed us
                fd = self._results[i].fd
                if ev & POLLNVAL:
                    flags |= self._nval(fd)
                else:
                    # READY_REBUILD (an fd dropped since the wait) needs nothing here.
                    flags |= self.c_ready(fd, ev)
        finally:
            self._busy -= 1
            if self._closed and self._busy == 0:
                self._release_results()
        return (flags & READY_WAKEUP) != 0

    cdef int _nval(self, int fd) except -1:
        """*fd* was closed without notify_closing: stop watching it, and fail its
        waiters with EBADF (module notes). The reference's ``_invalid``."""
        if 0 <= fd < self._slots_cap and self._slots[fd] >= 0:
            self._unset(fd)
        cdef _FdRecord rec = self._records.get(fd)
        if rec is not None:
            self._fail_record(fd, rec, EBADF)
        return 0


# The engine exports, as the reference twin (vivace._core._poll_py) declares them; _impl
# binds these names, and tests/test_twins_parity.py checks the two lists are equal.
__all__ = [
    "PollPoller",
]
