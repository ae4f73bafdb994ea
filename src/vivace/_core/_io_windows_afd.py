"""Socket readiness on Windows: polling the AFD driver through the completion port.

Design notes
------------
* Windows has no readiness call that reports to a completion port, but the socket
  driver (AFD, ``\\Device\\Afd``) has one: ``IOCTL_AFD_POLL`` on a handle opened to the
  driver is an ordinary overlapped operation that completes, through the port, when
  one of the asked-for events happens on the listed socket; the driver writes the
  events that happened into the request's buffer. It is what wepoll and libuv use.
* The socket is its base handle (``SIO_BASE_HANDLE``): layered providers wrap sockets,
  and AFD knows only the base one. Waiters are keyed by it.
* One outstanding poll per socket, asking for the union of what its waiters want: two
  polls on one socket through one port confuse the driver (one may complete for the
  other's events). So when the waiters change -- a second direction starts waiting,
  one is cancelled or woken -- the pending poll is cancelled (``CancelIoEx``) and a new
  one is issued for the waiters left, if any.
* A cancelled poll still completes later (with STATUS_CANCELLED, or with events if it
  raced). Its OVERLAPPED and buffer must stay alive until then, so every issued poll
  stays in ``ops`` (keyed by the OVERLAPPED's address) until its completion arrives;
  a completion of a poll that is no longer its socket's current one is ignored.
* Sockets are spread over several AFD handles, at most ``MAX_GROUP`` polls each:
  cancelling one of N polls on one AFD handle costs time that grows with N, which made
  unwinding many waits (a Ctrl-C) cost cubic time in trio's measurements.
* Event bits: a reader is woken by data, a connection to accept, EOF, reset, or the
  handle being closed locally; a writer by room to send, a failed connect, reset or
  close. A poll that fails (its status is not success: the socket's handle was closed
  under it) fails both waiters with that OSError, like epoll's closed-fd case.
* ``issue`` errors (DeviceIoControl refusing the socket) are raised to the task that
  tried to start waiting, before it parks, as a readiness backend refuses a bad fd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import outcome

from . import _windows_cffi as w
from ._exceptions import ClosedResourceError
from ._windows_cffi import ffi

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._windows_cffi import CData, KernelSurface

READ_EVENTS: Final = (
    w.AFD_POLL_RECEIVE
    | w.AFD_POLL_ACCEPT
    | w.AFD_POLL_DISCONNECT
    | w.AFD_POLL_ABORT
    | w.AFD_POLL_LOCAL_CLOSE
)
WRITE_EVENTS: Final = (
    w.AFD_POLL_SEND | w.AFD_POLL_CONNECT_FAIL | w.AFD_POLL_ABORT | w.AFD_POLL_LOCAL_CLOSE
)
MAX_GROUP: Final = 500
_NO_TIMEOUT: Final = 2**63 - 1
_CLOSED: Final = "another task closed this socket"


class _Group:
    """One handle to the AFD driver and how many current polls use it."""

    __slots__ = ("handle", "size")

    def __init__(self, handle: int) -> None:
        self.handle = handle
        self.size = 0


class _Poll:
    """One issued IOCTL_AFD_POLL: its buffers live as long as this object."""

    __slots__ = ("events", "group", "overlapped", "poll_info", "socket")

    def __init__(self, socket: _Socket, group: _Group, events: int) -> None:
        self.socket = socket
        self.group = group
        self.events = events
        self.overlapped: CData = ffi.new("OVERLAPPED *")
        info = ffi.new("AFD_POLL_INFO *")
        info.Timeout = _NO_TIMEOUT
        info.NumberOfHandles = 1
        info.Exclusive = 0
        info.Handles[0].Handle = ffi.cast("HANDLE", socket.base)
        info.Handles[0].Events = events
        info.Handles[0].Status = 0
        self.poll_info: CData = info


class _Socket:
    """The waiters of one base socket and its current poll."""

    __slots__ = ("base", "current", "read_task", "write_task")

    def __init__(self, base: int) -> None:
        self.base = base
        self.read_task: Any = None
        self.write_task: Any = None
        self.current: _Poll | None = None

    def wanted(self) -> int:
        return (READ_EVENTS if self.read_task is not None else 0) | (
            WRITE_EVENTS if self.write_task is not None else 0
        )


class AfdPoller:
    """The socket-readiness part of the IOCP manager. ``register_afd(handle)`` binds a
    new AFD handle to the port with the AFD completion key; ``reschedule`` wakes a
    task."""

    def __init__(
        self,
        kernel: KernelSurface,
        register_afd: Callable[[int], None],
        reschedule: Callable[..., object],
    ) -> None:
        self._kernel = kernel
        self._register_afd = register_afd
        self._reschedule = reschedule
        self.sockets: dict[int, _Socket] = {}
        self.ops: dict[int, _Poll] = {}  # every poll whose completion is still due
        self.groups: list[_Group] = []
        self._vacant: list[_Group] = []
        self.tasks_waiting_read = 0
        self.tasks_waiting_write = 0

    # -- waiters -----------------------------------------------------------------------
    def add_waiter(self, sock: int, task: object, readable: bool) -> int | None:
        """Make *task* the reader (writer) of *sock* and (re)issue its poll; returns
        the base socket (the key of ``remove_waiter``). None (and nothing changed) if
        the direction already has a waiter; raises the OSError of a socket the kernel
        refuses."""
        base = self._kernel.base_socket(sock)
        rec = self.sockets.get(base)
        if rec is None:
            rec = self.sockets[base] = _Socket(base)
        if (rec.read_task if readable else rec.write_task) is not None:
            return None
        if readable:
            rec.read_task = task
            self.tasks_waiting_read += 1
        else:
            rec.write_task = task
            self.tasks_waiting_write += 1
        try:
            self._refresh(rec)
        except OSError as exc:
            # Refused: this waiter never parked (the error is raised to it); a waiter
            # of the other direction lost its poll with the refusal, so it hears it.
            self._take(rec, readable)
            self._fail_all(rec, exc)
            raise
        return base

    def remove_waiter(self, sock_base: int, task: object, readable: bool) -> None:
        """Forget *task*'s wait (it was cancelled) and re-issue the poll for the rest."""
        rec = self.sockets.get(sock_base)
        if rec is None or (rec.read_task if readable else rec.write_task) is not task:
            return
        self._take(rec, readable)
        self._refresh(rec)

    def close_socket(self, sock: int) -> None:
        """``notify_closing``: wake both waiters with ClosedResourceError, forget the
        socket and cancel its poll."""
        try:
            base = self._kernel.base_socket(sock)
        except OSError:
            base = sock  # not a socket (any more): only an exact key can match
        rec = self.sockets.get(base)
        if rec is None:
            return
        tasks = [self._take(rec, True), self._take(rec, False)]
        self._refresh(rec)
        for task in tasks:
            if task is not None:
                self._reschedule(task, outcome.Error(ClosedResourceError(_CLOSED)))

    def _fail_all(self, rec: _Socket, exc: OSError) -> None:
        """Forget *rec* (it has no poll) and fail its waiters, each with its own copy of
        *exc* (a shared exception would splice their tracebacks together)."""
        tasks = [self._take(rec, True), self._take(rec, False)]
        self._drop(rec)
        for task in tasks:
            if task is not None:
                err = w.winerror_exception(getattr(exc, "winerror", 0) or 0, exc.strerror)
                self._reschedule(task, outcome.Error(err))

    def _take(self, rec: _Socket, readable: bool) -> Any:
        if readable:
            task, rec.read_task = rec.read_task, None
            if task is not None:
                self.tasks_waiting_read -= 1
        else:
            task, rec.write_task = rec.write_task, None
            if task is not None:
                self.tasks_waiting_write -= 1
        return task

    # -- polls ---------------------------------------------------------------------------
    def _refresh(self, rec: _Socket) -> None:
        """Make the socket's pending poll ask for what its waiters want (module notes)."""
        wanted = rec.wanted()
        current = rec.current
        if current is not None:
            self._retire(current)
            # False: it completed already; its completion is queued and will be
            # ignored as stale.
            self._kernel.cancel_io(current.group.handle, current.overlapped)
        if not wanted:
            self._drop(rec)
            return
        group = self._vacant[-1] if self._vacant else self._new_group()
        poll = _Poll(rec, group, wanted)
        self._kernel.afd_poll(group.handle, poll.poll_info, poll.overlapped)
        self.ops[w.address_of(poll.overlapped)] = poll
        rec.current = poll
        group.size += 1
        if group.size >= MAX_GROUP:
            self._vacant.pop()

    def _retire(self, poll: _Poll) -> None:
        poll.socket.current = None
        group = poll.group
        if group.size >= MAX_GROUP:
            self._vacant.append(group)
        group.size -= 1

    def _drop(self, rec: _Socket) -> None:
        if rec.current is None and self.sockets.get(rec.base) is rec:
            del self.sockets[rec.base]

    def _new_group(self) -> _Group:
        handle = self._kernel.open_afd()
        group = _Group(handle)
        self.groups.append(group)
        self._vacant.append(group)
        self._register_afd(handle)
        return group

    def completed(self, address: int) -> None:
        """A poll's completion arrived: wake the waiters its events satisfy, then
        re-issue for those still waiting."""
        poll = self.ops.pop(address, None)
        if poll is None:
            return  # not ours (can only be a stray post with our key)
        rec = poll.socket
        if rec.current is not poll:
            return  # superseded: its cancellation (or a race with it) completed
        self._retire(poll)
        status = int(ffi.cast("NTSTATUS", poll.overlapped.Internal))
        if status != w.STATUS_SUCCESS:
            self._fail_all(rec, w.winerror_exception(self._kernel.nt_status_to_winerror(status)))
            return
        events = poll.poll_info.Handles[0].Events
        woken = []
        if events & READ_EVENTS:
            woken.append(self._take(rec, True))
        if events & WRITE_EVENTS:
            woken.append(self._take(rec, False))
        try:
            self._refresh(rec)
        except OSError as exc:
            # The socket cannot be polled again (closed under us): its remaining
            # waiter would never wake, so it hears why.
            self._fail_all(rec, exc)
        for task in woken:
            if task is not None:
                self._reschedule(task)

    def close(self) -> None:
        """Close the AFD handles (the port is closed by the manager). ``ops`` is kept:
        buffers of polls the kernel still cancels must outlive their handles."""
        groups, self.groups = self.groups, []
        self._vacant.clear()
        for group in groups:
            try:
                self._kernel.close_handle(group.handle)
            except OSError:  # pragma: no cover - a handle we opened and never closed
                pass
