"""The epoll poller, reference twin. ``_ext/_epoll.pyx`` is the compiled twin: same
methods, same state changes, same epoll_ctl calls in the same order, same errors.

The poller owns the epoll set and the per-fd waiter table; ``_io_epoll.EpollIOManager``
wraps it with the async API (current task, parking, abort, notify_closing's exception).

Design notes
------------
* Level-triggered, no EPOLLONESHOT. Each fd has one record: the task waiting to read,
  the task waiting to write, and ``armed``, the event mask we last gave the kernel
  (0 = not in the epoll set). A record exists iff it has a waiter or armed != 0.

* Lazy disarm. Waking a task does not touch the kernel: its direction stays armed.
  The common loop -- woken, read until EAGAIN, wait again, all in one batch -- then
  costs no epoll_ctl at all (trio's one-shot scheme costs one MOD per wait, plus a
  re-arm of the other direction whenever one fires). An armed direction nobody waits
  for is dropped (MOD/DEL) the first time it reports an event, so a ready fd nobody
  waits for costs one spurious event, never a busy loop. EPOLLERR/EPOLLHUP are
  reported whatever the mask says, so they count for both directions, and a record
  whose mask would become 0 is deleted from the set, not modified to 0.

* When may an armed direction be reused without a syscall? An fd number says nothing
  about which file it names now: if it was closed without notify_closing, the kernel
  silently dropped our registration, and the number may have been reused. So a cache
  hit needs proof that the file is the same: the wait was given the same stdlib
  ``socket.socket`` object (held by weak reference, ``owner``) as the one the
  registration was made for, and it still reports this fd. A socket object's fd
  lives exactly as long as the object is open (close and detach make it -1), so that
  is proof. The manager passes ``owner=None`` for anything else -- plain ints, and
  wrappers whose ``fileno()`` may name a new file over time -- and those waits always
  issue MOD (falling back to ADD on ENOENT), as trio does.

* Zombie registrations. epoll tracks files, not fd numbers: if a registered fd is
  closed behind our back while a dup keeps the file alive, the registration lives on,
  can no longer be changed through that number, and would report (level-triggered)
  forever. Such events show up as an event for an fd without a record, bits we never
  asked for, or a failed disarm. Any of these rebuilds the epoll set: a new epoll fd
  with the records that have waiters re-added (a waiter whose fd is dead is woken
  with the OSError), the old set closed, zombies and all. Rare and O(records).

* Statistics count waiting tasks, kept as counters so ``statistics()`` is O(1).

* Waking. ``reschedule`` is the callback that wakes a task (tests inject one); None,
  what the run's I/O manager passes, means each task's own runner
  (``task._runner.reschedule``), which the compiled twin calls in C.
"""

from __future__ import annotations

import math
import os
import select
import weakref
from errno import EEXIST, ENOENT
from typing import TYPE_CHECKING, Any

import outcome

# The engine export: what ``_impl`` binds from this module or from ``_ext/_epoll``.
__all__ = ["EpollPoller"]

if TYPE_CHECKING:
    from collections.abc import Callable

# Linux ABI values (select has them only on Linux; this module must import anywhere).
EPOLLIN = 0x001
EPOLLOUT = 0x004
EPOLLERR = 0x008
EPOLLHUP = 0x010
_READ_READY = EPOLLIN | EPOLLERR | EPOLLHUP
_WRITE_READY = EPOLLOUT | EPOLLERR | EPOLLHUP
_DIRECTIONS = EPOLLIN | EPOLLOUT

# epoll_wait takes an int of milliseconds; longer waits are clamped to the maximum.
_MAX_TIMEOUT_MS = 2**31 - 1
_MAX_TIMEOUT_S = _MAX_TIMEOUT_MS / 1000

_CLOSED_MSG = "the epoll poller is closed"
_BUSY_WAIT_MSG = "another thread is already waiting in this poller"


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


class EpollPoller:
    """The epoll set, the fd -> waiters table, and turning events into wake-ups."""

    def __init__(self, wakeup_fd: int, reschedule: Callable[..., object] | None = None) -> None:
        self._reschedule = reschedule
        self._wakeup_fd = wakeup_fd
        self._records: dict[int, _FdRecord] = {}
        self.tasks_waiting_read = 0
        self.tasks_waiting_write = 0
        self.ctl_calls = 0
        self.rebuilds = 0
        self._epoll: Any = select.epoll()
        self._closed = False
        self._in_wait = False
        try:
            err = self._ctl_add(wakeup_fd, EPOLLIN)
            if err:
                raise _os_error(err)
        except BaseException:
            self.close()
            raise

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._records.clear()
        self.tasks_waiting_read = 0
        self.tasks_waiting_write = 0
        self._epoll.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        return -1 if self._closed else int(self._epoll.fileno())

    @property
    def registered_fds(self) -> int:
        """How many fds (besides the wakeup fd) we believe are in the epoll set."""
        return sum(1 for rec in self._records.values() if rec.armed)

    # -- epoll_ctl; each returns 0 or an errno ----------------------------------------
    def _ctl_add(self, fd: int, mask: int) -> int:
        self.ctl_calls += 1
        try:
            self._epoll.register(fd, mask)
        except OSError as exc:
            return exc.errno or -1
        return 0

    def _ctl_mod(self, fd: int, mask: int) -> int:
        self.ctl_calls += 1
        try:
            self._epoll.modify(fd, mask)
        except OSError as exc:
            return exc.errno or -1
        return 0

    def _ctl_del(self, fd: int) -> int:
        self.ctl_calls += 1
        try:
            self._epoll.unregister(fd)
        except OSError as exc:
            return exc.errno or -1
        return 0

    def _arm(self, fd: int, had: int, wanted: int) -> int:
        """Make the kernel's mask for *fd* equal *wanted*, given that we believe it is
        *had* (0: not registered). Falls back between MOD and ADD when that belief is
        stale (the fd was closed and reused behind our back)."""
        if had:
            err = self._ctl_mod(fd, wanted)
            if err == ENOENT:
                err = self._ctl_add(fd, wanted)
        else:
            err = self._ctl_add(fd, wanted)
            if err == EEXIST:
                err = self._ctl_mod(fd, wanted)
        return err

    # -- waiters -----------------------------------------------------------------------
    def add_reader(self, fd: int, owner: object, task: object) -> bool:
        """Register *task* as the reader of *fd*. Returns True (and changes nothing) if
        another task already is; raises OSError if the kernel refuses the fd."""
        return self._add(fd, owner, task, EPOLLIN)

    def add_writer(self, fd: int, owner: object, task: object) -> bool:
        """As ``add_reader``, for writing."""
        return self._add(fd, owner, task, EPOLLOUT)

    def _add(self, fd: int, owner: object, task: object, bit: int) -> bool:
        if self._closed:
            raise RuntimeError(_CLOSED_MSG)
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        rec = self._records.get(fd)
        new = rec is None
        if rec is None:
            rec = _FdRecord()
        elif (rec.read_task if bit == EPOLLIN else rec.write_task) is not None:
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
        if bit == EPOLLIN:
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
        """Drop *fd* from the set and the table (it is about to be closed). Returns its
        ``(reader, writer)`` tasks for the caller to wake, or None if it had no record."""
        if self._closed:
            return None
        rec = self._records.pop(fd, None)
        if rec is None:
            return None
        if rec.armed:
            # Errors mean the fd is already closed or reused: nothing left to remove
            # through this number (a zombie, if any, is caught by dispatch).
            self._ctl_del(fd)
            rec.armed = 0
        reader = rec.read_task
        writer = rec.write_task
        self._take_tasks(rec)
        return reader, writer

    # -- waiting and dispatching -------------------------------------------------------
    def wait(self, timeout: float) -> list[tuple[int, int]]:
        """Block in epoll_wait up to *timeout* seconds (0: poll; inf: no limit), without
        the GIL. Safe to call from another thread while the owning thread leaves the
        poller alone. Returns the batch for ``dispatch`` (falsy if empty)."""
        if self._closed:
            raise RuntimeError(_CLOSED_MSG)
        if self._in_wait:
            raise RuntimeError(_BUSY_WAIT_MSG)
        if math.isnan(timeout):
            raise ValueError("timeout must not be NaN")
        if timeout <= 0:
            seconds = 0.0
        elif timeout > _MAX_TIMEOUT_S:
            seconds = -1.0 if timeout == math.inf else _MAX_TIMEOUT_S
        else:
            seconds = timeout
        # select.epoll.poll rounds up to whole ms and retries on EINTR with the
        # remaining time after running signal handlers (propagating their exceptions).
        self._in_wait = True
        try:
            events: list[tuple[int, int]] = self._epoll.poll(seconds, len(self._records) + 1)
        finally:
            self._in_wait = False
        if self._closed:
            return []
        return events

    def dispatch(self, events: list[tuple[int, int]]) -> bool:
        """Wake the tasks whose fds are ready. Returns True if the wakeup fd fired (the
        caller drains it)."""
        if self._closed:
            return False
        woke = False
        rebuild = False
        records = self._records
        for fd, ev in events:
            if self._closed:
                break  # a reschedule callback closed us
            if fd == self._wakeup_fd:
                woke = True
                continue
            rec = records.get(fd)
            if rec is None:
                rebuild = True  # nothing of ours is registered here: a zombie
                continue
            if ev & _DIRECTIONS & ~rec.armed:
                rebuild = True  # bits we never asked for: a zombie shares this fd
            # Every state change for this event happens before the reschedule calls,
            # which run arbitrary Python (instruments) that may re-enter the poller.
            rtask = wtask = None
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
                    err = self._ctl_mod(fd, remaining)
                else:
                    err = self._ctl_del(fd)
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
        return woke

    def _rebuild(self) -> None:
        """Replace the epoll set with a fresh one holding only what has waiters."""
        self.rebuilds += 1
        old = self._epoll
        self._epoll = select.epoll()
        old.close()
        err = self._ctl_add(self._wakeup_fd, EPOLLIN)
        if err:
            raise _os_error(err)
        for fd, rec in list(self._records.items()):
            wanted = (EPOLLIN if rec.read_task is not None else 0) | (
                EPOLLOUT if rec.write_task is not None else 0
            )
            rec.armed = 0
            if not wanted:
                del self._records[fd]
                continue
            err = self._ctl_add(fd, wanted)
            if err:
                self._fail_record(fd, rec, err)
            else:
                rec.armed = wanted
