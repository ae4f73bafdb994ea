"""The poll(2) poller, reference twin. ``_ext/_poll.pyx`` is the compiled twin: same
methods, same state changes, same changes to the poll set in the same order, same errors.

The waiter table, the armed masks, lazy disarm, owner-proved cache hits and waking are
the shared ``ReadinessTable`` (``_io_readiness_py``; read its notes first). This is
poll's part of a readiness backend: the poll set, ``_arm``/``_disarm`` as changes to
it, ``wait`` and the dispatch loop. ``_io_poll.PollIOManager`` wraps it with the async
API. poll(2) is on every POSIX system, so it is the portable baseline, and it lets the
portable path be tested on Linux (``VIVACE_IO_BACKEND=poll``).

Design notes
------------
* The poll set lives in user space (``select.poll`` here, a pollfd array in the
  compiled twin): ``_masks`` maps each watched fd to the mask it was given, and it is
  exactly what the next poll(2) call watches. So the belief about the kernel's mask is
  never stale, and there is nothing to fall back between (epoll's MOD/ADD dance) or to
  rebuild. ``ctl_calls`` counts calls of the hooks that edit the set (one per arm,
  modify or removal, refused ones included), so it means what epoll's count of
  epoll_ctl calls means.

* Arming checks that the fd is open (``fcntl(F_GETFD)``): editing the set is no system
  call, so without it a wait on a closed fd would park until the next poll. With it, a
  wait on a closed fd is refused at once with ``OSError(EBADF)``, without a
  checkpoint, as epoll_ctl refuses it (and as trio does); it costs the one system call
  per arm that epoll's epoll_ctl costs, and lazy disarm makes arms rare. (poll accepts
  regular files, which epoll refuses with EPERM: they are always ready.)

* No zombies, hence no rebuild. poll(2) watches numbers, not files, so no registration
  can outlive its fd: a ``REBUILD`` flag from the shared table (an event for an fd
  without a record, or bits never asked for) can only come from a batch made stale by
  a wake-up that changed the table mid-batch, and the table already applies such
  events harmlessly. ``rebuilds`` stays 0.

* POLLNVAL: an fd in the set was closed without ``notify_closing``. Left in the set it
  would make every poll(2) return at once (a busy loop), and no readiness could ever
  wake its waiters. It is what epoll's zombie rebuild finds: the fd is dropped from the
  set and the table, and its waiters are woken with ``OSError(EBADF)``
  (``_fail_record``, as when epoll re-arms a dead fd), in the batch's order.

* No kernel object: ``fileno()`` is -1 (what a closed epoll poller answers), and
  ``close()`` only forgets the set.

* ``wait`` has epoll's timeout rules (NaN is a ValueError, <= 0 polls, inf blocks,
  longer waits are clamped to poll(2)'s int of milliseconds, rounded up) and its
  errors (closed, a second thread waiting): both are the shared table's
  ``_begin_wait``. It may run in a worker thread (guest mode) while the run's thread
  leaves the poller alone.
"""

from __future__ import annotations

import select
import sys
from errno import EBADF
from typing import TYPE_CHECKING, Any

from ._io_readiness_py import ERROR, HANGUP, READABLE, WAKEUP, WRITABLE, ReadinessTable

# The engine export: what ``_impl`` binds from this module or from ``_ext/_poll``.
__all__ = ["PollPoller"]

if TYPE_CHECKING:
    from collections.abc import Callable

if sys.platform != "win32":  # this module must import anywhere; it runs on POSIX only
    import fcntl

# poll(2)'s bits; the first four are the shared table's (the same values on Linux, the
# BSDs and macOS), so masks pass through unchanged.
POLLIN = getattr(select, "POLLIN", 0x001)
POLLOUT = getattr(select, "POLLOUT", 0x004)
POLLERR = getattr(select, "POLLERR", 0x008)
POLLHUP = getattr(select, "POLLHUP", 0x010)
POLLNVAL = getattr(select, "POLLNVAL", 0x020)
if (POLLIN, POLLOUT, POLLERR, POLLHUP) != (
    READABLE,
    WRITABLE,
    ERROR,
    HANGUP,
):  # pragma: no cover
    raise ImportError("poll's event bits differ from the readiness table's")


class PollPoller(ReadinessTable):
    """The poll set, and turning its events into wake-ups through the shared table."""

    def __init__(self, wakeup_fd: int, reschedule: Callable[..., object] | None = None) -> None:
        super().__init__("poll", wakeup_fd, reschedule)
        self._poll: Any = select.poll()
        self._masks: dict[int, int] = {}
        # Counted, as epoll counts adding the wakeup fd; it is ours and open.
        self.ctl_calls += 1
        self._poll.register(wakeup_fd, POLLIN)
        self._masks[wakeup_fd] = POLLIN

    # The compiled twin is a final C type (its own calls are direct); so is this one.
    def __init_subclass__(cls, **kwargs: object) -> None:
        raise TypeError("type 'PollPoller' is not an acceptable base type")

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._clear()
        self._masks.clear()
        # A wait in another thread keeps using its own reference; it returns [] after.
        self._poll = select.poll()

    def fileno(self) -> int:
        # poll(2) has no kernel object (module notes).
        return -1

    # -- the poll set: the table's hooks (_arm, _disarm: 0 or an errno) -------------
    def _unset(self, fd: int) -> None:
        # The caller checked that *fd* is in the set.
        self.ctl_calls += 1
        del self._masks[fd]
        self._poll.unregister(fd)

    def _arm(self, fd: int, had: int, wanted: int) -> int:
        # Refuse a closed fd at once, as epoll_ctl does (module notes).
        self.ctl_calls += 1
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError as exc:
            return exc.errno or EBADF
        self._poll.register(fd, wanted)  # registers or modifies
        self._masks[fd] = wanted
        return 0

    def _disarm(self, fd: int, remaining: int) -> int:
        # A mask of 0 would still report ERR/HUP/NVAL: drop the fd instead. An fd not
        # in the set (a POLLNVAL dropped it) needs no change.
        if remaining:
            self.ctl_calls += 1
            self._poll.modify(fd, remaining)
            self._masks[fd] = remaining
        elif fd in self._masks:
            self._unset(fd)
        return 0

    # -- waiting and dispatching -------------------------------------------------------
    def wait(self, timeout: float) -> list[tuple[int, int]]:
        """Block in poll(2) up to *timeout* seconds (0: poll; inf: no limit), without
        the GIL. Safe to call from another thread while the owning thread leaves the
        poller alone. Returns the batch for ``dispatch`` (falsy if empty)."""
        seconds = self._begin_wait(timeout)
        # At most 2**31 - 1 exactly: the table's clamp is that many ms.
        ms = None if seconds is None else seconds * 1000.0
        # select.poll.poll rounds up to whole ms and retries on EINTR with the
        # remaining time after running signal handlers (propagating their exceptions).
        self._in_wait = True
        try:
            events: list[tuple[int, int]] = self._poll.poll(ms)
        finally:
            self._in_wait = False
        if self._closed:
            return []
        return events

    def dispatch(self, events: list[tuple[int, int]]) -> bool:
        """Wake the tasks whose fds are ready, and fail those whose fds were closed
        behind our back (module notes). Returns True if the wakeup fd fired (the caller
        drains it)."""
        if self._closed or not events:
            return False
        for _, ev in events:
            if ev & POLLNVAL:
                break
        else:
            # The common batch, all in the shared loop. Its REBUILD flag has nothing to
            # rebuild here (module notes).
            return bool(self.ready_batch(events) & WAKEUP)
        flags = 0
        for fd, ev in events:
            if self._closed:
                break  # a reschedule callback closed us
            if ev & POLLNVAL:
                self._invalid(fd)
            else:
                flags |= self.ready(fd, ev)
        return bool(flags & WAKEUP)

    def _invalid(self, fd: int) -> None:
        """*fd* is not open: stop watching it and fail its waiters with EBADF."""
        if fd in self._masks:
            self._unset(fd)
        rec = self._records.get(fd)
        if rec is not None:
            self._fail_record(fd, rec, EBADF)
