"""The epoll poller, reference twin. ``_ext/_epoll.pyx`` is the compiled twin: same
methods, same state changes, same epoll_ctl calls in the same order, same errors.

The waiter table, the armed masks, lazy disarm, owner-proved cache hits, zombie
detection and waking are the shared ``ReadinessTable`` (``_io_readiness_py``; read its
notes first), and so are ``wait``'s checks and timeout rules (``_begin_wait``). This
is epoll's part of a readiness backend: the epoll set, ``_arm`` and ``_disarm`` as
epoll_ctl, the epoll_wait call, the dispatch loop and the rebuild.
``_io_epoll.EpollIOManager`` wraps it with the async API.

Design notes
------------
* Level-triggered, no EPOLLONESHOT: with lazy disarm the loop "woken, read until
  EAGAIN, wait again" costs no epoll_ctl at all, where trio's one-shot scheme costs
  one MOD per wait, plus a re-arm of the other direction whenever one fires. A record
  whose mask would become 0 is deleted from the set, not modified to 0, since
  EPOLLERR/EPOLLHUP are reported whatever the mask says.

* A stale belief about the kernel's mask (the fd was closed and reused behind our
  back) is corrected by falling back between MOD and ADD. Waits without an owner
  (plain ints, wrappers) always issue MOD (falling back to ADD on ENOENT), as trio does.

* Zombie registrations (see the shared notes) rebuild the epoll set: a new epoll fd
  with the records that have waiters re-added, the old set closed, zombies and all.
  Rare and O(records).
"""

from __future__ import annotations

import select
from errno import EEXIST, ENOENT
from typing import TYPE_CHECKING, Any

from ._io_readiness_py import REBUILD, WAKEUP, ReadinessTable, _os_error

# The engine export: what ``_impl`` binds from this module or from ``_ext/_epoll``.
__all__ = ["EpollPoller"]

if TYPE_CHECKING:
    from collections.abc import Callable

# Linux ABI values (select has them only on Linux; this module must import anywhere).
# They are the shared table's READABLE/WRITABLE/ERROR/HANGUP, so masks pass through.
EPOLLIN = 0x001
EPOLLOUT = 0x004
EPOLLERR = 0x008
EPOLLHUP = 0x010


class EpollPoller(ReadinessTable):
    """The epoll set, and turning its events into wake-ups through the shared table."""

    def __init__(self, wakeup_fd: int, reschedule: Callable[..., object] | None = None) -> None:
        super().__init__("epoll", wakeup_fd, reschedule)
        self._epoll: Any = select.epoll()
        try:
            err = self._ctl_add(wakeup_fd, EPOLLIN)
            if err:
                raise _os_error(err)
        except BaseException:
            self.close()
            raise

    # The compiled twin is a final C type (its own calls are direct); so is this one.
    def __init_subclass__(cls, **kwargs: object) -> None:
        raise TypeError("type 'EpollPoller' is not an acceptable base type")

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._clear()
        self._epoll.close()

    def fileno(self) -> int:
        return -1 if self._closed else int(self._epoll.fileno())

    # -- epoll_ctl: the table's hooks; each returns 0 or an errno ----------------------
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
        stale (module notes)."""
        if had:
            err = self._ctl_mod(fd, wanted)
            if err == ENOENT:
                err = self._ctl_add(fd, wanted)
        else:
            err = self._ctl_add(fd, wanted)
            if err == EEXIST:
                err = self._ctl_mod(fd, wanted)
        return err

    def _disarm(self, fd: int, remaining: int) -> int:
        if remaining:
            return self._ctl_mod(fd, remaining)
        return self._ctl_del(fd)

    # -- waiting and dispatching -------------------------------------------------------
    def wait(self, timeout: float) -> list[tuple[int, int]]:
        """Block in epoll_wait up to *timeout* seconds (0: poll; inf: no limit), without
        the GIL. Safe to call from another thread while the owning thread leaves the
        poller alone. Returns the batch for ``dispatch`` (falsy if empty)."""
        seconds = self._begin_wait(timeout)
        # select.epoll.poll rounds up to whole ms and retries on EINTR with the
        # remaining time after running signal handlers (propagating their exceptions).
        self._in_wait = True
        try:
            events: list[tuple[int, int]] = self._epoll.poll(
                -1.0 if seconds is None else seconds, len(self._records) + 1
            )
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
        flags = self.ready_batch(events)
        if flags & REBUILD and not self._closed:
            self._rebuild()
        return bool(flags & WAKEUP)

    def _rebuild(self) -> None:
        """Replace the epoll set with a fresh one holding only what has waiters."""
        self.rebuilds += 1
        old = self._epoll
        self._epoll = select.epoll()
        old.close()
        err = self._ctl_add(self._wakeup_fd, EPOLLIN)
        if err:
            raise _os_error(err)
        self._rearm_all()
