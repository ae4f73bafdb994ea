"""The kqueue poller, reference twin (macOS and the BSDs). ``_ext/_kqueue.pyx`` is the
compiled twin: same methods, same state changes, same kevent(2) changes in the same
order, same errors.

The waiter table, the armed masks, lazy disarm, owner-proved cache hits and waking are
the shared ``ReadinessTable`` (``_io_readiness_py``; read its notes first). This is
kqueue's part of a readiness backend: ``_arm``/``_disarm`` as EVFILT_READ/EVFILT_WRITE
registrations, ``wait``, the dispatch loop, and routing the events of keys that
``lowlevel.monitor_kevent``/``wait_kevent`` claimed. ``_io_kqueue.KqueueIOManager``
wraps it with the async API.

Design notes
------------
* One registration per direction: kqueue's key is (ident, filter), so an fd's record
  maps to up to two registrations, EVFILT_READ for ``READABLE`` and EVFILT_WRITE for
  ``WRITABLE``. Each event comes back as one direction's bit; a filter's EV_EOF (peer
  gone) needs no bit of its own, since a read then returns 0 and a write fails, which
  is what a woken waiter must find out. Level-triggered (no EV_ONESHOT, no EV_CLEAR),
  for lazy disarm's sake as on epoll.

* One kevent(2) call per hook, with EV_RECEIPT: every change reports its own result,
  so an arm of both directions cannot half-fail unnoticed. ``_arm`` adds every wanted
  direction (re-adding an existing one is harmless, and repairs a belief made stale by
  a close behind our back); if any change fails, the ones that took are deleted again,
  so the kernel never holds a registration the table does not know of. ``ctl_calls``
  counts kevent(2) calls that carry changes (the wakeup fd's included).

* ``_kernel`` is the belief about what the kernel holds per fd, kept apart from the
  table's ``armed`` because ``forget`` pops the record before disarming. Deleting a
  registration that is gone (ENOENT on macOS, EBADF on FreeBSD: its fd was closed,
  which removes it) is success: it is what was wanted.

* No zombies, hence no rebuild: kqueue removes the registrations made through an fd
  number when that number is closed, even if a dup keeps the file open. A ``REBUILD``
  flag from the shared table can only come from a batch made stale by a wake-up that
  changed the table mid-batch, or from a registration the caller made through
  ``current_kqueue()`` on an fd we also watch; both are applied harmlessly and left
  alone (the caller's registrations are the caller's). ``rebuilds`` stays 0.

* A wait on a closed fd fails at once with ``OSError(EBADF)``, the registration's error,
  without a checkpoint (as epoll_ctl refuses it, and as trio does). A waiter whose fd is
  closed behind our back is not woken: kqueue just drops the registration (trio has
  the same limit; call ``notify_closing``).

* Routes (``add_route``/``remove_route``): a callback per (ident, filter) that receives
  that key's events as ``select.kevent`` objects, for the lowlevel kevent API. A key of
  ours (an fd with a waiter in that direction) and a route are mutually exclusive (the
  second is refused as busy, as in trio, where both share one table). Claiming a key
  the table has armed without a waiter hands the registration over: the table forgets
  that direction, so it re-adds it before its next wait there. Events for keys with
  neither a route nor a record of ours are dropped.

* ``wait`` has epoll's timeout rules and errors (the shared table's ``_begin_wait``:
  kevent(2) takes a timespec, but waits are clamped as epoll's and poll's are); it returns the kevents as the kernel
  gave them (the batch for ``dispatch``). One call, with room for every registration
  of ours and every route: reading again while the list comes back full (trio's loop)
  would never end on level-triggered registrations, which are queued again as soon as
  they are returned.
"""

from __future__ import annotations

import select
from errno import EBADF, ENOENT
from typing import TYPE_CHECKING, Any

from ._io_readiness_py import READABLE, WAKEUP, WRITABLE, ReadinessTable, _os_error

# The engine export: what ``_impl`` binds from this module or from ``_ext/_kqueue``.
__all__ = ["KqueuePoller"]

if TYPE_CHECKING:
    from collections.abc import Callable

# sys/event.h's values, the same on macOS and the BSDs; select has them only there
# (this module must import anywhere).
KQ_FILTER_READ: int = getattr(select, "KQ_FILTER_READ", -1)
KQ_FILTER_WRITE: int = getattr(select, "KQ_FILTER_WRITE", -2)
KQ_EV_ADD: int = getattr(select, "KQ_EV_ADD", 0x0001)
KQ_EV_DELETE: int = getattr(select, "KQ_EV_DELETE", 0x0002)
KQ_EV_RECEIPT: int = getattr(select, "KQ_EV_RECEIPT", 0x0040)
KQ_EV_ERROR: int = getattr(select, "KQ_EV_ERROR", 0x4000)

# Directions in the order their changes are submitted.
_DIRECTIONS = ((READABLE, KQ_FILTER_READ), (WRITABLE, KQ_FILTER_WRITE))


def _new_kqueue() -> Any:
    try:
        factory = select.kqueue  # type: ignore[attr-defined]
    except AttributeError:
        raise RuntimeError("kqueue is not available on this platform") from None
    return factory()


class KqueuePoller(ReadinessTable):
    """The kqueue registrations, and turning their events into wake-ups through the
    shared table; events of routed keys go to their callbacks."""

    def __init__(self, wakeup_fd: int, reschedule: Callable[..., object] | None = None) -> None:
        super().__init__("kqueue", wakeup_fd, reschedule)
        self._kq: Any = _new_kqueue()
        self._kernel: dict[int, int] = {}
        self._routes: dict[tuple[int, int], Callable[[Any], object]] = {}
        try:
            err = self._submit([(wakeup_fd, KQ_FILTER_READ, KQ_EV_ADD)])[0]
            if err:
                raise _os_error(err)
        except BaseException:
            self.close()
            raise

    # The compiled twin is a final C type (its own calls are direct); so is this one.
    def __init_subclass__(cls, **kwargs: object) -> None:
        raise TypeError("type 'KqueuePoller' is not an acceptable base type")

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._clear()
        self._kernel.clear()
        self._routes.clear()
        self._kq.close()

    def fileno(self) -> int:
        return -1 if self._closed else int(self._kq.fileno())

    def current_kqueue(self) -> Any:
        """The ``select.kqueue`` this poller waits on (for ``lowlevel.current_kqueue``)."""
        return self._kq

    # -- kevent(2) changes: the table's hooks ------------------------------------------
    def _submit(self, changes: list[tuple[int, int, int]]) -> list[int]:
        """Apply ``(ident, filter, flags)`` changes in one kevent(2) call; each one's
        errno (0: done). Never raises for a refused change."""
        self.ctl_calls += 1
        kevent = select.kevent  # type: ignore[attr-defined]
        batch = [kevent(fd, filt, flags | KQ_EV_RECEIPT) for fd, filt, flags in changes]
        try:
            receipts = self._kq.control(batch, len(batch), 0)
        except OSError as exc:
            return [exc.errno or EBADF] * len(changes)
        results = [0] * len(changes)
        for i, receipt in enumerate(receipts[: len(changes)]):
            if receipt.flags & KQ_EV_ERROR:
                results[i] = int(receipt.data)
        return results

    def _arm(self, fd: int, had: int, wanted: int) -> int:
        """Make the kernel hold *wanted*'s registrations for *fd* (module notes)."""
        changes = [(fd, filt, KQ_EV_ADD) for bit, filt in _DIRECTIONS if wanted & bit]
        results = self._submit(changes)
        err = next((e for e in results if e), 0)
        if not err:
            self._kernel[fd] = wanted
            return 0
        # Undo what took, and what we held before: the table forgets the fd on failure.
        took = 0
        for (_, filt, _), e in zip(changes, results, strict=True):
            if not e:
                took |= READABLE if filt == KQ_FILTER_READ else WRITABLE
        stale = (took | self._kernel.pop(fd, 0)) & (READABLE | WRITABLE)
        if stale:
            self._submit([(fd, filt, KQ_EV_DELETE) for bit, filt in _DIRECTIONS if stale & bit])
        return err

    def _disarm(self, fd: int, remaining: int) -> int:
        have = self._kernel.get(fd, 0)
        drop = have & ~remaining
        if not drop:
            return 0
        changes = [(fd, filt, KQ_EV_DELETE) for bit, filt in _DIRECTIONS if drop & bit]
        results = self._submit(changes)
        if remaining & have:
            self._kernel[fd] = remaining & have
        else:
            del self._kernel[fd]
        # Gone already means its fd was closed, which removed it (module notes).
        return next((e for e in results if e and e not in (ENOENT, EBADF)), 0)

    # -- routes: the lowlevel kevent API ----------------------------------------------
    def add_route(self, ident: int, filter: int, callback: Callable[[Any], object]) -> bool:  # noqa: A002
        """Send the events of ``(ident, filter)`` to *callback*. True (and nothing
        changed) if the key is taken: routed already, or one of our fd waiters'."""
        key = (ident, filter)
        if key in self._routes:
            return True
        bit = READABLE if filter == KQ_FILTER_READ else WRITABLE if filter == KQ_FILTER_WRITE else 0
        if bit:
            rec = self._records.get(ident)
            if rec is not None:
                if (rec.read_task if bit == READABLE else rec.write_task) is not None:
                    return True
                if rec.armed & bit:
                    # Hand the registration over (module notes).
                    rec.armed &= ~bit
                    if not rec.armed and rec.read_task is None and rec.write_task is None:
                        del self._records[ident]
            have = self._kernel.get(ident, 0)
            if have & bit:
                if have & ~bit:
                    self._kernel[ident] = have & ~bit
                else:
                    del self._kernel[ident]
        self._routes[key] = callback
        return False

    def remove_route(self, ident: int, filter: int) -> None:  # noqa: A002
        """Stop routing ``(ident, filter)`` (no-op if it is not routed). The kernel's
        registration, if any, is the caller's to delete."""
        self._routes.pop((ident, filter), None)

    @property
    def routes(self) -> int:
        return len(self._routes)

    def add_reader(self, fd: int, owner: object, task: object) -> bool:
        if (fd, KQ_FILTER_READ) in self._routes:
            return True
        return self._add(fd, owner, task, READABLE)

    def add_writer(self, fd: int, owner: object, task: object) -> bool:
        if (fd, KQ_FILTER_WRITE) in self._routes:
            return True
        return self._add(fd, owner, task, WRITABLE)

    # -- waiting and dispatching -------------------------------------------------------
    def wait(self, timeout: float) -> list[Any]:
        """Block in kevent(2) up to *timeout* seconds (0: poll; inf: no limit), without
        the GIL. Safe to call from another thread while the owning thread leaves the
        poller alone. Returns the batch for ``dispatch`` (falsy if empty)."""
        seconds = self._begin_wait(timeout)
        # Room for every registration of ours and every route. Anything beyond (the
        # caller's own unrouted registrations) waits for the next call: level-triggered
        # events are queued again, behind the others, so nothing starves.
        room = 2 * len(self._records) + len(self._routes) + 1
        self._in_wait = True
        try:
            events: list[Any] = self._kq.control(None, room, seconds)
        except (OSError, ValueError):
            if self._closed:  # closed from another thread meanwhile
                return []
            raise
        finally:
            self._in_wait = False
        if self._closed:
            return []
        return events

    def dispatch(self, events: list[Any]) -> bool:
        """Wake the tasks whose fds are ready and hand routed keys their events, in the
        batch's order. Returns True if the wakeup fd fired (the caller drains it)."""
        if self._closed or not events:
            return False
        routes = self._routes
        if not routes:
            # The common batch, all in the shared loop; its REBUILD flag has nothing to
            # rebuild here (module notes).
            pairs = [
                (ev.ident, READABLE if ev.filter == KQ_FILTER_READ else WRITABLE)
                for ev in events
                if ev.filter == KQ_FILTER_READ or ev.filter == KQ_FILTER_WRITE
            ]
            return bool(self.ready_batch(pairs) & WAKEUP)
        flags = 0
        for ev in events:
            if self._closed:
                break  # a callback closed us
            callback = routes.get((ev.ident, ev.filter))
            if callback is not None:
                callback(ev)
            elif ev.filter == KQ_FILTER_READ:
                flags |= self.ready(ev.ident, READABLE)
            elif ev.filter == KQ_FILTER_WRITE:
                flags |= self.ready(ev.ident, WRITABLE)
        return bool(flags & WAKEUP)
