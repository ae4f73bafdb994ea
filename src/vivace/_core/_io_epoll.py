"""The Linux I/O manager: ``wait_readable``/``wait_writable``/``notify_closing`` on epoll.

Design notes
------------
* Split. ``EpollPoller`` (``_impl`` picks ``_ext/_epoll.pyx`` or ``_epoll_py.py``) owns
  everything that runs per event or per wait: the epoll fd, the fd -> waiters table,
  epoll_wait without the GIL, turning events into ``reschedule`` calls, and every
  epoll_ctl. Its notes explain the registration policy (level-triggered, lazy disarm,
  no one-shot re-arming). This class is the shared glue both engines use: fd
  normalisation, the current task, parking with an abort function, the exceptions
  waiters get, statistics, and the force-wakeup socketpair.

* The waits themselves are the engine's ``wait_fd`` (compiled: a C awaitable that
  registers and parks with no Python frame; reference: a coroutine doing the same).
  ``wait_readable``/``wait_writable`` here only resolve the fd and the task.

* One waiter per direction per fd; a second one gets BusyResourceError at once (not a
  checkpoint, as in trio). So does an fd the kernel refuses (OSError). Otherwise the
  task always parks -- even if the fd is ready now -- so every wait that returns, and
  every cancelled one, went through a checkpoint; cancellation while parked removes
  the waiter (Abort.SUCCEEDED) and the wait did not happen.

* ``notify_closing`` removes the fd from the epoll set before the caller closes it, so
  a later fd with the same number starts clean; waiters get ClosedResourceError, each
  its own instance (a shared exception would splice tracebacks together).

* KeyboardInterrupt: the public entry points are KI-protected (as trio's are), so a
  SIGINT cannot land between registering a waiter and parking, which would leave a
  stale waiter behind. The rest runs under the run loop's protection.

* Threads. ``get_events`` may run in a worker thread (guest mode) while the run's
  thread leaves the manager alone; ``force_wakeup`` is safe from any thread and from
  signal handlers (it only writes to the socketpair). Everything else runs in the
  run's thread.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import outcome

from . import _impl
from ._exceptions import ClosedResourceError
from ._ki import enable_ki_protection
from ._wakeup import WakeupSocketpair

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


_StdlibSocket = socket.socket

_CLOSED = "another task closed this fd"


@dataclass(frozen=True, slots=True)
class EpollStatistics:
    """``current_statistics().io_statistics`` on Linux: how many tasks are blocked in
    ``wait_readable`` and in ``wait_writable``."""

    tasks_waiting_read: int
    tasks_waiting_write: int
    backend: Literal["epoll"] = field(default="epoll", init=False)


def _fd_of(fd: int | _HasFileno) -> int:
    """An fd argument as an int: ints as is, anything else through ``fileno()``;
    errors as CPython's ``PyObject_AsFileDescriptor`` (so also as select.epoll)."""
    if not isinstance(fd, int):
        try:
            fileno = fd.fileno
        except AttributeError:
            raise TypeError(
                f"argument must be an int, or have a fileno() method, not {type(fd).__name__}"
            ) from None
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError(f"fileno() returned a non-integer ({type(fd).__name__})")
    fd = int(fd)  # bool and other int subclasses
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    if fd > _FD_MAX:
        raise OverflowError(_FD_TOO_LARGE)
    return fd


# An fd is a C int: larger numbers fail here, the same on both engines (the compiled
# poller would fail converting them, the reference's dict would not).
_FD_MAX = 2**31 - 1
_FD_TOO_LARGE = "Python int too large to convert to C int"


class EpollIOManager:
    """The run's I/O manager on Linux (see the module notes)."""

    __slots__ = ("_closed", "_current_task", "_poller", "_reschedule", "_wakeup")

    def __init__(
        self,
        *,
        _current_task: Callable[[], Any] | None = None,
        _reschedule: Callable[..., object] | None = None,
    ) -> None:
        # The hooks are injectable for tests that drive the manager without a run.
        # Without an injected reschedule the poller wakes each task through its own
        # runner (in C, on the compiled engine). Imported here, not at module level:
        # _run imports this module.
        poller_reschedule = _reschedule
        if _current_task is None or _reschedule is None:
            from . import _run

            if _current_task is None:
                _current_task = _run.current_task
            if _reschedule is None:
                _reschedule = _run.reschedule
        self._current_task = _current_task
        self._reschedule = _reschedule
        self._wakeup = WakeupSocketpair()
        try:
            self._poller = _impl.EpollPoller(
                self._wakeup.wakeup_sock.fileno(), poller_reschedule
            )
        except BaseException:
            self._wakeup.close()
            raise
        self._closed = False

    def close(self) -> None:
        """Close the epoll set and the wakeup socketpair (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._poller.close()
        finally:
            self._wakeup.close()

    def statistics(self) -> EpollStatistics:
        poller = self._poller
        return EpollStatistics(
            tasks_waiting_read=poller.tasks_waiting_read,
            tasks_waiting_write=poller.tasks_waiting_write,
        )

    def force_wakeup(self) -> None:
        """Make a blocked (or the next) ``get_events`` return promptly. Safe from any
        thread and from signal handlers."""
        self._wakeup.wakeup_thread_and_signal_safe()

    def get_events(self, timeout: float) -> Any:
        """Wait up to *timeout* seconds (0: just poll) for I/O; return an opaque batch
        for ``process_events`` (falsy if nothing happened). May run in a worker thread."""
        return self._poller.wait(timeout)

    def process_events(self, events: Any) -> None:
        """Wake the tasks whose fds the batch reports ready."""
        if self._poller.dispatch(events):
            self._wakeup.drain()

    @enable_ki_protection
    def wait_readable(self, fd: int | _HasFileno) -> Awaitable[None]:
        """Block until *fd* (an int or an object with ``fileno()``) is readable.

        Raises BusyResourceError if another task already waits to read it, and
        ClosedResourceError if ``notify_closing`` is called on it meanwhile."""
        fdno = _fd_of(fd)
        owner = fd if type(fd) is _StdlibSocket else None
        return _impl.wait_fd(self._poller, fdno, owner, self._current_task(), True)

    @enable_ki_protection
    def wait_writable(self, fd: int | _HasFileno) -> Awaitable[None]:
        """Block until *fd* (an int or an object with ``fileno()``) is writable.

        Raises BusyResourceError if another task already waits to write it, and
        ClosedResourceError if ``notify_closing`` is called on it meanwhile."""
        fdno = _fd_of(fd)
        owner = fd if type(fd) is _StdlibSocket else None
        return _impl.wait_fd(self._poller, fdno, owner, self._current_task(), False)

    @enable_ki_protection
    def notify_closing(self, fd: int | _HasFileno) -> None:
        """Say that *fd* is about to be closed: tasks waiting on it are woken with
        ClosedResourceError, and it leaves the epoll set. Fine with no waiters, and
        with fds this manager never saw (a closed socket's -1 included)."""
        if not isinstance(fd, int):
            fd = fd.fileno()
        fd = int(fd)
        if fd < 0:
            return
        if fd > _FD_MAX:
            raise OverflowError(_FD_TOO_LARGE)
        tasks = self._poller.forget(fd)
        if tasks is None:
            return
        for task in tasks:
            if task is not None:
                self._reschedule(task, outcome.Error(ClosedResourceError(_CLOSED)))
