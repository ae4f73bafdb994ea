# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled kqueue poller: the twin of ``vivace._core._kqueue_py`` over <sys/event.h>.

Design notes
------------
Semantics (level-triggered, lazy disarm, owner-proved cache hits, one registration per
direction, EV_RECEIPT changes undone on failure, routes for the lowlevel kevent API) and
every observable effect -- return values, the kevent(2) calls and their changes in
order, reschedules, counters, error types and messages -- are the reference twin's;
read its notes and the shared table's first. The waiter table, the armed masks, waking
tasks and ``wait``'s checks and timeout rules (``_begin_wait``) are the shared
``ReadinessTable`` (``_io_readiness.pyx``); this module is kqueue's part of a readiness
backend. What it adds to the reference:

* The kqueue is made with kqueue(2) and driven with kevent(2) in C. ``current_kqueue``
  wraps its fd in a ``select.kqueue`` (``fromfd``) the first time it is asked; from
  then on that object owns the fd and ``close`` closes it through the object.

* ``_kernel``, the reference's dict of what the kernel holds per fd, is a byte per fd
  number (0: nothing), grown to the largest fd armed: only open fds can be armed, so
  RLIMIT_NOFILE bounds it. It is grown before any change is submitted, so a failed
  allocation is ENOMEM from the hook (an OSError from ``add_reader``) with the kernel
  untouched.

* Changes go through ``_submit``: the changes of one hook (one per direction, read
  first) in one kevent(2) call with EV_RECEIPT and room for exactly their receipts, so
  the call applies them and returns at once; the GIL is kept around it. Struct fields
  whose type differs between systems go through csrc/vv_kqueue.h.

* ``wait()`` fills a C array owned by the poller with the GIL released and returns the
  event count; ``dispatch(n)`` walks it. As in ``_epoll``, ``dispatch`` takes exactly
  the count of the last ``wait()``, once, or any falsy value for "no events" (the
  reference takes its list). One read per wait, with the reference's room (two per
  record, one per route, the wakeup fd); what does not fit stays queued in the kernel
  for the next wait. ``_busy`` counts calls using the array: ``close()`` from another
  thread or from a reschedule callback leaves it to its last user.

* A routed key is busy for fd waits in ``c_add`` (the reference checks in
  ``add_reader``/``add_writer``), so waits parked from C see it too. Routed keys get
  ``select.kevent`` objects built from the array (routes are rare, so the common batch
  makes no Python object); ``select.kevent`` is looked up when one is needed, so the
  module imports where ``select`` has no kqueue (the Linux test build).
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EBADF, EINTR, ENOENT, ENOMEM, errno
from libc.math cimport ceil, floor
from libc.stdint cimport uint8_t, uint32_t
from libc.stdlib cimport free, realloc
from libc.string cimport memset
from posix.fcntl cimport F_SETFD, FD_CLOEXEC, fcntl
from posix.time cimport timespec
from posix.unistd cimport close as c_close

from vivace._core._ext._io_readiness cimport (
    IO_READ,
    IO_WRITE,
    READY_WAKEUP,
    ReadinessTable,
    _FdRecord,
    _os_error,
)
from vivace._core._ext._vvc cimport vv_monotonic

import select

cdef extern from "vv_kqueue.h" nogil:
    # struct kevent, the constants and the vv_kev_* helpers come from _kqueue.pxd.
    int kqueue()
    int c_kevent "kevent" (
        int kq, const kevent *changelist, int nchanges,
        kevent *eventlist, int nevents, const timespec *timeout,
    )

# The table's clamp (an int of milliseconds' worth), in seconds.
cdef double _MAX_TIMEOUT_S = 2147483.647
cdef int _MIN_CAPACITY = 64
# Room asked of one kevent(2) read at most (it takes an int).
cdef Py_ssize_t _MAX_ROOM = 0x3FFFFFFF


cdef int _first_error(int *results, int n) noexcept:
    # noexcept: reads a C array.
    cdef int i
    for i in range(n):
        if results[i]:
            return results[i]
    return 0


cdef inline uint32_t _bit_of(object filter):
    # A filter of ours as the table's bit; 0 for any other filter.
    if filter == EVFILT_READ:
        return IO_READ
    if filter == EVFILT_WRITE:
        return IO_WRITE
    return 0


@cython.final
cdef class KqueuePoller(ReadinessTable):
    """The kqueue registrations, and turning their events into wake-ups through the
    shared table; events of routed keys go to their callbacks."""

    def __cinit__(self):
        self._kq = -1
        self._kq_object = None
        self._kernel = NULL
        self._kernel_cap = 0
        self._routes = {}
        self._events = NULL
        self._capacity = 0
        self._nready = 0
        self._busy = 0

    def __init__(self, int wakeup_fd, reschedule=None):
        if self._kq >= 0:
            raise RuntimeError("KqueuePoller.__init__ called twice")
        self._init_table("kqueue", wakeup_fd, reschedule)
        self._closed = True  # until the kqueue exists
        cdef int kq = kqueue()
        if kq < 0:
            raise _os_error(errno)
        # As select.kqueue() makes it: not inherited by child processes.
        fcntl(kq, F_SETFD, FD_CLOEXEC)
        self._kq = kq
        self._closed = False
        cdef int results[2]
        self._submit(wakeup_fd, IO_READ, EV_ADD, results)
        if results[0]:
            self.close()
            raise _os_error(results[0])

    def __dealloc__(self):
        # No method can be running: each holds a reference to self. A select.kqueue
        # made by current_kqueue owns the fd and closes it itself.
        if self._kq >= 0 and self._kq_object is None:
            c_close(self._kq)
        self._kq = -1
        self._release_kernel()
        free(self._events)
        self._events = NULL

    # -- lifetime ----------------------------------------------------------------------
    def close(self):
        if self._closed:
            return
        self._clear()
        self._release_kernel()
        self._routes.clear()
        # A wait() blocked in another thread keeps the kqueue alive until it returns;
        # closing the number here is safe.
        if self._kq_object is not None:
            self._kq_object.close()
        elif self._kq >= 0:
            c_close(self._kq)
        self._kq = -1
        if self._busy == 0:
            self._release_buffer()

    cdef void _release_buffer(self) noexcept:
        # noexcept: free() only.
        free(self._events)
        self._events = NULL
        self._capacity = 0
        self._nready = 0

    cdef void _release_kernel(self) noexcept:
        # noexcept: free() only.
        free(self._kernel)
        self._kernel = NULL
        self._kernel_cap = 0

    def fileno(self):
        return -1 if self._closed else self._kq

    def current_kqueue(self):
        """The ``select.kqueue`` this poller waits on (for ``lowlevel.current_kqueue``);
        made on first use, and then the owner of the fd (module notes)."""
        if self._kq_object is None:
            if self._closed:
                # What the reference hands out once closed: a closed kqueue object.
                self._kq_object = select.kqueue()
                self._kq_object.close()
            else:
                self._kq_object = select.kqueue.fromfd(self._kq)
        return self._kq_object

    # -- kevent(2) changes: the table's hooks ------------------------------------------
    # noexcept: each returns 0 or an errno and touches no Python object, so the table's
    # callers decide which failures are errors; GIL kept: a kevent(2) call with only
    # changes (and room for their receipts) never blocks.
    cdef int _submit(self, int fd, uint32_t bits, int flags, int *results) noexcept:
        """Apply *flags* to *fd*'s filters in *bits* (read first) in one kevent(2)
        call with EV_RECEIPT; each change's errno goes to *results* (0: done). Returns
        the number of changes."""
        cdef kevent changes[2]
        cdef kevent receipts[2]
        cdef timespec no_wait
        cdef int n = 0
        cdef int got
        cdef int i
        if bits & IO_READ:
            vv_kev_change(&changes[n], fd, EVFILT_READ, flags | EV_RECEIPT)
            n += 1
        if bits & IO_WRITE:
            vv_kev_change(&changes[n], fd, EVFILT_WRITE, flags | EV_RECEIPT)
            n += 1
        self.ctl_calls += 1
        # A zero timeout, as the reference passes: with EV_RECEIPT every change fills a
        # slot and kevent returns at once; the timeout makes sure of it.
        no_wait.tv_sec = 0
        no_wait.tv_nsec = 0
        got = c_kevent(self._kq, changes, n, receipts, n, &no_wait)
        if got < 0:
            got = errno
            for i in range(n):
                results[i] = got
            return n
        for i in range(n):
            results[i] = 0
            if i < got and receipts[i].flags & EV_ERROR:
                results[i] = <int>vv_kev_data(&receipts[i])
        return n

    cdef uint32_t _held(self, int fd) noexcept:
        # noexcept: reads a C array.
        if 0 <= fd < self._kernel_cap:
            return self._kernel[fd]
        return 0

    cdef int _hold(self, int fd, uint32_t bits) noexcept:
        """Record *bits* as what the kernel holds for *fd*, growing the array if
        needed: 0, or ENOMEM with nothing changed."""
        # noexcept: realloc and memset only; running out of memory is returned.
        cdef Py_ssize_t cap
        cdef uint8_t *grown
        if fd >= self._kernel_cap:
            cap = self._kernel_cap * 2
            if cap < <Py_ssize_t>fd + 1:
                cap = <Py_ssize_t>fd + 1
            if cap < _MIN_CAPACITY:
                cap = _MIN_CAPACITY
            grown = <uint8_t *>realloc(self._kernel, <size_t>cap)
            if grown == NULL:
                return ENOMEM
            memset(grown + self._kernel_cap, 0, <size_t>(cap - self._kernel_cap))
            self._kernel = grown
            self._kernel_cap = <int>cap
        self._kernel[fd] = <uint8_t>bits
        return 0

    cdef int _arm(self, int fd, uint32_t had, uint32_t wanted) noexcept:
        # noexcept: see _submit. Adds every wanted direction; on a failure, deletes
        # what took and what was held before (the reference's notes).
        cdef int results[2]
        cdef int n
        cdef int err
        cdef uint32_t took = 0
        cdef uint32_t stale
        if fd >= self._kernel_cap and self._hold(fd, 0):
            return ENOMEM  # room first: a registration we could not record is a leak
        n = self._submit(fd, wanted, EV_ADD, results)
        err = _first_error(results, n)
        if not err:
            self._kernel[fd] = <uint8_t>wanted
            return 0
        if wanted & IO_READ:
            if not results[0]:
                took = IO_READ
            if wanted & IO_WRITE and not results[1]:
                took |= IO_WRITE
        elif not results[0]:
            took = IO_WRITE
        stale = (took | self._kernel[fd]) & (IO_READ | IO_WRITE)
        self._kernel[fd] = 0
        if stale:
            self._submit(fd, stale, EV_DELETE, results)
        return err

    cdef int _disarm(self, int fd, uint32_t remaining) noexcept:
        # noexcept: see _submit. A registration already gone (its fd was closed) was
        # deleted as asked: ENOENT and EBADF are success.
        cdef uint32_t have = self._held(fd)
        cdef uint32_t drop = have & ~remaining
        cdef int results[2]
        cdef int n
        cdef int i
        if not drop:
            return 0
        n = self._submit(fd, drop, EV_DELETE, results)
        self._kernel[fd] = <uint8_t>(remaining & have)
        for i in range(n):
            if results[i] and results[i] != ENOENT and results[i] != EBADF:
                return results[i]
        return 0

    cdef int c_add(self, int fd, object owner, object task, uint32_t bit) except -1:
        # A routed key is taken (the reference's add_reader/add_writer); checked here so
        # that C callers see it too.
        if self._routes and (fd, EVFILT_READ if bit == IO_READ else EVFILT_WRITE) in self._routes:
            return 1
        return ReadinessTable.c_add(self, fd, owner, task, bit)

    # -- routes: the lowlevel kevent API ----------------------------------------------
    def add_route(self, ident, filter, callback):
        """Send the events of ``(ident, filter)`` to *callback*. True (and nothing
        changed) if the key is taken: routed already, or one of our fd waiters'."""
        key = (ident, filter)
        if key in self._routes:
            return True
        cdef uint32_t bit = _bit_of(filter)
        cdef _FdRecord rec
        cdef uint32_t have
        if bit:
            rec = self._records.get(ident)
            if rec is not None:
                if (rec.read_task if bit == IO_READ else rec.write_task) is not None:
                    return True
                if rec.armed & bit:
                    # Hand the registration over (the reference's notes).
                    rec.armed &= ~bit
                    if not rec.armed and rec.read_task is None and rec.write_task is None:
                        del self._records[ident]
            if 0 <= ident < self._kernel_cap:
                have = self._kernel[<int>ident]
                if have & bit:
                    self._kernel[<int>ident] = <uint8_t>(have & ~bit)
        self._routes[key] = callback
        return False

    def remove_route(self, ident, filter):
        """Stop routing ``(ident, filter)`` (no-op if it is not routed). The kernel's
        registration, if any, is the caller's to delete."""
        self._routes.pop((ident, filter), None)

    @property
    def routes(self):
        return len(self._routes)

    # -- waiting and dispatching -------------------------------------------------------
    def wait(self, double timeout):
        """Block in kevent(2) up to *timeout* seconds (0: poll; inf: no limit), without
        the GIL. Safe to call from another thread while the owning thread leaves the
        poller alone. Returns the batch for ``dispatch`` (the event count)."""
        # The checks and timeout rules are the shared table's (-1: no limit).
        timeout = self._begin_wait(timeout)
        cdef bint forever = timeout < 0
        if forever:
            timeout = _MAX_TIMEOUT_S  # unused (no timespec is passed), but finite
        # Room for every registration of ours and every route (module notes).
        cdef Py_ssize_t want = 2 * len(self._records) + len(self._routes) + 1
        cdef int room = <int>(want if want < _MAX_ROOM else _MAX_ROOM)
        self._reserve(room)
        cdef double deadline = vv_monotonic() + timeout
        cdef double remaining = timeout
        cdef timespec ts
        cdef int kq = self._kq
        cdef kevent *buf = self._events
        cdef int n = 0
        cdef int err = 0
        self._nready = 0
        self._in_wait = True
        self._busy += 1
        try:
            while True:
                # select.kqueue.control's rounding: up, to the nanosecond.
                ts.tv_sec = <long>floor(remaining)
                ts.tv_nsec = <long>ceil((remaining - floor(remaining)) * 1e9)
                if ts.tv_nsec >= 1000000000:
                    ts.tv_sec += 1
                    ts.tv_nsec = 0
                # The GIL is released only around the syscall: buf and kq are locals,
                # and close() defers freeing the array while _busy is set.
                with nogil:
                    n = c_kevent(kq, NULL, 0, buf, room, NULL if forever else &ts)
                    if n < 0:
                        err = errno
                if n >= 0:
                    break
                if err != EINTR:
                    if self._closed:
                        n = 0
                        break  # closed from another thread meanwhile
                    raise _os_error(err)
                # As select.kqueue.control: run signal handlers (propagating what they
                # raise), then retry with what is left of the timeout.
                PyErr_CheckSignals()
                if not forever:
                    remaining = deadline - vv_monotonic()
                    if remaining < 0:
                        remaining = 0
        finally:
            self._in_wait = False
            self._busy -= 1
        if self._closed:
            if self._busy == 0:
                self._release_buffer()
            return 0
        self._nready = n
        return n

    cdef int _reserve(self, Py_ssize_t n) except -1:
        if n <= self._capacity:
            return 0
        if n > 0x7FFFFFFF:
            raise MemoryError()
        cdef Py_ssize_t cap = <Py_ssize_t>self._capacity * 2
        if cap < n:
            cap = n
        if cap < _MIN_CAPACITY:
            cap = _MIN_CAPACITY
        if cap > 0x7FFFFFFF:
            cap = 0x7FFFFFFF
        cdef kevent *grown = <kevent *>realloc(self._events, <size_t>cap * sizeof(kevent))
        if grown == NULL:
            raise MemoryError()
        self._events = grown
        self._capacity = <int>cap
        return 0

    def dispatch(self, events):
        """Wake the tasks whose fds are ready and hand routed keys their events, in the
        batch's order. Returns True if the wakeup fd fired (the caller drains it)."""
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
        cdef int filter
        self._busy += 1
        try:
            if self._routes:
                flags = self._dispatch_routed(n)
            else:
                for i in range(n):
                    if self._closed:
                        break  # a reschedule callback closed us
                    filter = <int>self._events[i].filter
                    # READY_REBUILD (a stale batch) needs nothing here (the reference's
                    # notes).
                    if filter == EVFILT_READ:
                        flags |= self.c_ready(<int>self._events[i].ident, IO_READ)
                    elif filter == EVFILT_WRITE:
                        flags |= self.c_ready(<int>self._events[i].ident, IO_WRITE)
        finally:
            self._busy -= 1
            if self._closed and self._busy == 0:
                self._release_buffer()
        return (flags & READY_WAKEUP) != 0

    cdef int _dispatch_routed(self, int n) except -1:
        """The batch when some keys are routed: their events go to their callbacks as
        ``select.kevent`` objects, the others to the table."""
        cdef int flags = 0
        cdef int i
        cdef int filter
        cdef kevent *ev
        kevent_type = select.kevent
        for i in range(n):
            if self._closed:
                break  # a callback closed us
            ev = &self._events[i]
            filter = <int>ev.filter
            callback = self._routes.get((ev.ident, filter))
            if callback is not None:
                callback(kevent_type(
                    ev.ident, filter, ev.flags, ev.fflags, vv_kev_data(ev), vv_kev_udata(ev)
                ))
            elif filter == EVFILT_READ:
                flags |= self.c_ready(<int>ev.ident, IO_READ)
            elif filter == EVFILT_WRITE:
                flags |= self.c_ready(<int>ev.ident, IO_WRITE)
        return flags


# The engine exports, as the reference twin (vivace._core._kqueue_py) declares them; _impl
# binds these names, and tests/test_twins_parity.py checks the two lists are equal.
__all__ = [
    "KqueuePoller",
]
