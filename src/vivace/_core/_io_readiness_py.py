"""Readiness bookkeeping shared by every readiness-based I/O backend, reference twin.
``_ext/_io_readiness.pyx`` is the compiled twin: same methods, same state changes, same
calls into the backend's hooks in the same order, same errors.

A readiness backend (epoll, poll, kqueue) is a poller class that
subclasses ``ReadinessTable`` and writes only what depends on its system call:

* ``_arm(fd, had, wanted)`` and ``_disarm(fd, remaining)``: make the kernel watch
  *wanted* (resp. *remaining*, 0 = stop watching) for *fd*, given that it watches
  *had*; each returns 0 or an errno, never raises.
* ``wait(timeout)``: ``_begin_wait(timeout)`` (the checks and the timeout rules every
  backend shares), then block in the system call; returns a batch.
* ``dispatch(batch)``: feed each ``(fd, events)`` pair of the batch to ``ready`` and
  rebuild the kernel's set if asked to (a backend whose kernel keeps no registrations,
  such as poll, has nothing to rebuild).
* ``close()``: ``_clear()`` plus releasing the kernel object.

Everything else is here, so it is one piece of code for every backend.

Design notes
------------
* Level-triggered. Each fd has one record: the task waiting to read, the task waiting
  to write, and ``armed``, the event mask the kernel was last given (0 = not
  watched). A record exists iff it has a waiter or armed != 0. One waiter per
  direction per fd: ``add_reader``/``add_writer`` return True (busy) for a second one
  and change nothing; the manager turns that into BusyResourceError.

* Event bits are poll(2)'s and epoll(7)'s: ``READABLE``, ``WRITABLE``, and ``ERROR``
  and ``HANGUP``, which the kernel reports whatever the mask says, so they count for
  both directions.

* Lazy disarm. Waking a task does not touch the kernel: its direction stays armed.
  The common loop -- woken, read until EAGAIN, wait again, all in one batch -- then
  costs no registration call at all. An armed direction nobody waits for is dropped
  (``_disarm``) the first time it reports an event, so a ready fd nobody waits for
  costs one spurious event, never a busy loop.

* When may an armed direction be reused without a syscall? An fd number says nothing
  about which file it names now: if it was closed without notify_closing, the kernel
  may have dropped our registration, and the number may have been reused. So a cache
  hit needs proof that the file is the same: the wait was given the same stdlib
  ``socket.socket`` object (held by weak reference, ``owner``) as the one the
  registration was made for, and it still reports this fd. A socket object's fd
  lives exactly as long as the object is open (close and detach make it -1), so that
  is proof. The manager passes ``owner=None`` for anything else -- plain ints, and
  wrappers whose ``fileno()`` may name a new file over time -- and those waits always
  re-arm.

* Zombie registrations (kernels that track files, not numbers: epoll, kqueue). If a
  registered fd is closed behind our back while a dup keeps the file alive, the
  registration lives on, can no longer be changed through that number, and keeps
  reporting. Such events show up as an event for an fd without a record, bits we
  never asked for, or a failed disarm; ``ready`` reports each as ``REBUILD`` and the
  backend replaces its kernel object, then re-adds the records that have waiters with
  ``_rearm_all`` (a waiter whose fd is dead is woken with the OSError).

* Waking. Every state change for one event happens before its reschedule calls, which
  run arbitrary Python (instruments) that may re-enter the poller. ``reschedule`` is
  the callback that wakes a task (tests inject one); None, what the run's I/O manager
  passes, means each task's own runner (``task._runner.reschedule``), which the
  compiled twin calls in C. Statistics are counters, so ``statistics()`` is O(1).

* Waiting. Every backend's ``wait`` starts with ``_begin_wait``: a closed poller and a
  second thread waiting (``_in_wait``, which the backend sets around its system call)
  are RuntimeErrors, a NaN timeout is a ValueError; <= 0 polls, inf blocks, and longer
  waits are clamped to the syscall's int of milliseconds (epoll_wait's and poll's;
  kqueue's too, for the same behaviour), which the backend rounds up.
"""

from __future__ import annotations

import math
import os
import weakref
from typing import TYPE_CHECKING, Any

import outcome

# The engine export: what ``_impl`` binds from this module or from ``_ext/_io_readiness``.
__all__ = ["ReadinessTable"]

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

READABLE = 0x001  # POLLIN, EPOLLIN
WRITABLE = 0x004  # POLLOUT, EPOLLOUT
ERROR = 0x008  # POLLERR, EPOLLERR
HANGUP = 0x010  # POLLHUP, EPOLLHUP
_READ_READY = READABLE | ERROR | HANGUP
_WRITE_READY = WRITABLE | ERROR | HANGUP
_DIRECTIONS = READABLE | WRITABLE

# epoll_wait and poll take an int of milliseconds; longer waits are clamped to that.
_MAX_TIMEOUT_MS = 2**31 - 1
_MAX_TIMEOUT_S = _MAX_TIMEOUT_MS / 1000

_BUSY_WAIT_MSG = "another thread is already waiting in this poller"

# What ``ready`` tells the dispatch loop about one event (bit flags).
WAKEUP = 1  # it was the wakeup fd: the manager drains it
REBUILD = 2  # the kernel reported something we cannot reach: rebuild its set


def _os_error(err: int) -> OSError:
    # Same construction as PyErr_SetFromErrno: picks the errno's OSError subclass.
    return OSError(err, os.strerror(err))


def _weak_owner(owner: object) -> Any:
    if owner is None:
        return None
    try:
        return weakref.ref(owner)
    except TypeError:
        return None  # not weak-referenceable: no cache hits for this fd


class _FdRecord:
    __slots__ = ("armed", "owner", "read_task", "write_task")

    def __init__(self) -> None:
        self.read_task: Any = None
        self.write_task: Any = None
        self.owner: Any = None  # weakref.ref to the registering object, or None
        self.armed = 0


class ReadinessTable:
    """The fd -> waiters table of a readiness backend and turning events into wake-ups;
    the backend's subclass supplies the system call. Constructed directly, it is a
    table the kernel is not told about (the shared tests use it)."""

    def __init__(
        self, backend: str, wakeup_fd: int, reschedule: Callable[..., object] | None = None
    ) -> None:
        self.backend = backend
        self._reschedule = reschedule
        self._wakeup_fd = wakeup_fd
        self._records: dict[int, _FdRecord] = {}
        self.tasks_waiting_read = 0
        self.tasks_waiting_write = 0
        self.ctl_calls = 0
        self.rebuilds = 0
        self._closed = False
        self._in_wait = False

    def close(self) -> None:
        if not self._closed:
            self._clear()

    def _clear(self) -> None:
        self._closed = True
        self._records.clear()
        self.tasks_waiting_read = 0
        self.tasks_waiting_write = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def registered_fds(self) -> int:
        """How many fds (besides the wakeup fd) we believe the kernel watches."""
        return sum(1 for rec in self._records.values() if rec.armed)

    def _begin_wait(self, timeout: float) -> float | None:
        """The checks that open every backend's ``wait`` (module notes); *timeout* as
        the seconds to wait: 0 polls, None has no limit, the rest is at most
        ``_MAX_TIMEOUT_S``."""
        if self._closed:
            raise RuntimeError(f"the {self.backend} poller is closed")
        if self._in_wait:
            raise RuntimeError(_BUSY_WAIT_MSG)
        if math.isnan(timeout):
            raise ValueError("timeout must not be NaN")
        if timeout <= 0:
            return 0.0
        if timeout > _MAX_TIMEOUT_S:
            return None if timeout == math.inf else _MAX_TIMEOUT_S
        return timeout

    # -- the platform's hooks (this base watches nothing) -------------------------------
    def _arm(self, fd: int, had: int, wanted: int) -> int:
        return 0

    def _disarm(self, fd: int, remaining: int) -> int:
        return 0

    # -- waiters -----------------------------------------------------------------------
    def add_reader(self, fd: int, owner: object, task: object) -> bool:
        """Register *task* as the reader of *fd*. Returns True (and changes nothing) if
        another task already is; raises OSError if the kernel refuses the fd."""
        return self._add(fd, owner, task, READABLE)

    def add_writer(self, fd: int, owner: object, task: object) -> bool:
        """As ``add_reader``, for writing."""
        return self._add(fd, owner, task, WRITABLE)

    def _add(self, fd: int, owner: object, task: object, bit: int) -> bool:
        if self._closed:
            raise RuntimeError(f"the {self.backend} poller is closed")
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        rec = self._records.get(fd)
        new = rec is None
        if rec is None:
            rec = _FdRecord()
        elif (rec.read_task if bit == READABLE else rec.write_task) is not None:
            return True
        # Reuse the armed direction only with proof the file is the same (module notes).
        cached = (
            rec.armed & bit and owner is not None and rec.owner is not None and rec.owner() is owner
        )
        if not cached:
            wanted = rec.armed | bit
            err = self._arm(fd, rec.armed, wanted)
            if err:
                if not new:
                    self._fail_record(fd, rec, err)
                raise _os_error(err)
            rec.armed = wanted
            rec.owner = _weak_owner(owner)
        if bit == READABLE:
            rec.read_task = task
            self.tasks_waiting_read += 1
        else:
            rec.write_task = task
            self.tasks_waiting_write += 1
        if new:
            self._records[fd] = rec
        return False

    def _fail_record(self, fd: int, rec: _FdRecord, err: int) -> None:
        """The kernel refused *fd* (it was closed behind our back): forget it and wake
        its waiters with the error, as a closed fd can never become ready."""
        del self._records[fd]
        rec.armed = 0
        for task in self._take_tasks(rec):
            self._wake(task, outcome.Error(_os_error(err)))

    def _wake(self, task: Any, value: Any) -> None:
        # value None: the plain wake-up (reschedule's default, Value(None)).
        reschedule = self._reschedule
        if reschedule is None:
            reschedule = task._runner.reschedule
        if value is None:
            reschedule(task)
        else:
            reschedule(task, value)

    def _take_tasks(self, rec: _FdRecord) -> list[Any]:
        tasks = []
        if rec.read_task is not None:
            tasks.append(rec.read_task)
            rec.read_task = None
            self.tasks_waiting_read -= 1
        if rec.write_task is not None:
            tasks.append(rec.write_task)
            rec.write_task = None
            self.tasks_waiting_write -= 1
        return tasks

    def remove_reader(self, fd: int, task: object) -> None:
        """Forget *task* as the reader of *fd* (its wait was cancelled). The direction
        stays armed; it is dropped lazily (module notes)."""
        rec = self._records.get(fd)
        if rec is not None and rec.read_task is task:
            rec.read_task = None
            self.tasks_waiting_read -= 1

    def remove_writer(self, fd: int, task: object) -> None:
        """As ``remove_reader``, for writing."""
        rec = self._records.get(fd)
        if rec is not None and rec.write_task is task:
            rec.write_task = None
            self.tasks_waiting_write -= 1

    def forget(self, fd: int) -> tuple[Any, Any] | None:
        """Drop *fd* from the kernel's set and the table (it is about to be closed).
        Returns its ``(reader, writer)`` tasks for the caller to wake, or None if it
        had no record."""
        if self._closed:
            return None
        rec = self._records.pop(fd, None)
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
    def ready(self, fd: int, ev: int) -> int:
        """Apply one event (*ev*: the kernel's bits for *fd*): take the waiters it
        wakes, drop armed directions nobody waits for, then wake them. Returns
        ``WAKEUP``/``REBUILD`` flags for the dispatch loop."""
        return self.ready_batch(((fd, ev),))

    def ready_batch(self, events: Iterable[tuple[int, int]]) -> int:
        """``ready`` for each ``(fd, events)`` pair, stopping if a wake-up closed the
        table; the union of the flags. (One loop here rather than a call per event:
        the reference's dispatch is this loop.)"""
        flags = 0
        records = self._records
        wakeup_fd = self._wakeup_fd
        for fd, ev in events:
            if self._closed:
                break  # a reschedule callback closed us
            if fd == wakeup_fd:
                flags |= WAKEUP
                continue
            rec = records.get(fd)
            if rec is None:
                flags |= REBUILD  # nothing of ours is registered here: a zombie
                continue
            if ev & _DIRECTIONS & ~rec.armed:
                flags |= REBUILD  # bits we never asked for: a zombie shares this fd
            rtask = wtask = None
            drop = 0
            if ev & _READ_READY:
                if rec.read_task is not None:
                    rtask = rec.read_task
                    rec.read_task = None
                    self.tasks_waiting_read -= 1
                else:
                    drop = READABLE
            if ev & _WRITE_READY:
                if rec.write_task is not None:
                    wtask = rec.write_task
                    rec.write_task = None
                    self.tasks_waiting_write -= 1
                else:
                    drop |= WRITABLE
            drop &= rec.armed
            if drop:
                remaining = rec.armed & ~drop
                if self._disarm(fd, remaining):
                    flags |= REBUILD  # registered but unreachable through fd: zombie
                else:
                    rec.armed = remaining
                    if not remaining and rec.read_task is None and rec.write_task is None:
                        del records[fd]
            if rtask is not None:
                self._wake(rtask, None)
            if wtask is not None:
                self._wake(wtask, None)
        return flags

    def _rearm_all(self) -> None:
        """After the backend replaced its kernel object: re-add every record that has
        waiters, drop the others."""
        for fd, rec in list(self._records.items()):
            wanted = (READABLE if rec.read_task is not None else 0) | (
                WRITABLE if rec.write_task is not None else 0
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
