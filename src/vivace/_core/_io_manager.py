"""The I/O manager interface: what a run needs from an I/O backend, the shared manager
of readiness backends, and the choice of backend (``VIVACE_IO_BACKEND``).

``docs/architecture.md`` ("The I/O manager interface") describes the contract; in short:

* ``IOManager`` is what every backend's manager implements -- readiness ones (epoll,
  poll, kqueue) and completion ones (IOCP, io_uring) alike. The run loop calls
  ``get_events``/``process_events``/``force_wakeup``/``close``, ``vivace.lowlevel``
  calls ``wait_readable``/``wait_writable``/``notify_closing``, and
  ``current_statistics()`` returns ``statistics()``, whose ``backend`` names it.

* ``ReadinessPoller`` is what a readiness backend's poller offers: interest in one
  direction of one fd (``add_reader``/``add_writer`` register or modify it,
  ``remove_reader``/``remove_writer`` withdraw it, ``forget`` unregisters the fd),
  ``wait`` and ``dispatch``. The compiled socket operations park on it directly
  (``io_manager._poller``), so a readiness backend's sockets work unchanged.
  ``ReadinessTable`` (``_io_readiness_py``, compiled ``_ext/_io_readiness``) is the
  shared implementation of all of it but the system call.

* ``ReadinessIOManager`` is the shared manager of readiness backends: fd arguments,
  parking the current task, notify_closing's exception, the force-wakeup socketpair.
  A backend's manager subclasses it and names its poller and statistics.
"""

from __future__ import annotations

import os
import select
import socket
import sys
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import outcome

from . import _impl
from ._exceptions import ClosedResourceError
from ._ki import enable_ki_protection
from ._wakeup import WakeupSocketpair

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class HasFileno(Protocol):
    def fileno(self) -> int: ...


# ------------------------------------------------------------------------- the interface


@runtime_checkable
class IOStatistics(Protocol):
    """``current_statistics().io_statistics``: backend-specific counters."""

    @property
    def backend(self) -> str:
        """The backend in use, as ``VIVACE_IO_BACKEND`` names it."""
        ...


@runtime_checkable
class IOManager(Protocol):
    """What every I/O backend's manager implements (one per run)."""

    def wait_readable(self, fd: int | HasFileno) -> Awaitable[None]:
        """Park the current task until *fd* is readable (a checkpoint). A second
        waiter for the same direction gets BusyResourceError; ``notify_closing``
        wakes it with ClosedResourceError."""
        ...

    def wait_writable(self, fd: int | HasFileno) -> Awaitable[None]:
        """As ``wait_readable``, for writing."""
        ...

    def notify_closing(self, fd: int | HasFileno) -> None:
        """*fd* is about to be closed: forget it; its waiters get ClosedResourceError."""
        ...

    def get_events(self, timeout: float) -> Any:
        """Wait up to *timeout* seconds (0: poll; inf: no limit) for I/O; return an
        opaque batch for ``process_events``, falsy if nothing happened. May run in a
        worker thread (guest mode) while the run's thread leaves the manager alone."""
        ...

    def process_events(self, events: Any) -> None:
        """Wake the waiters that the batch from ``get_events`` reports ready (or
        completed). Runs in the run's thread."""
        ...

    def force_wakeup(self) -> None:
        """Make a blocked (or the next) ``get_events`` return promptly. Safe from any
        thread and from signal handlers."""
        ...

    def statistics(self) -> IOStatistics: ...

    def close(self) -> None:
        """Release the kernel objects (idempotent)."""
        ...


@runtime_checkable
class ReadinessPoller(Protocol):
    """A readiness backend's poller (``ReadinessTable`` plus the system call)."""

    @property
    def backend(self) -> str: ...
    @property
    def tasks_waiting_read(self) -> int: ...
    @property
    def tasks_waiting_write(self) -> int: ...
    @property
    def closed(self) -> bool: ...

    def add_reader(self, fd: int, owner: object, task: object) -> bool:
        """Make *task* the reader of *fd*; True (and nothing changed) if it has one.
        *owner* is the stdlib socket *fd* came from, or None."""
        ...

    def add_writer(self, fd: int, owner: object, task: object) -> bool: ...
    def remove_reader(self, fd: int, task: object) -> None: ...
    def remove_writer(self, fd: int, task: object) -> None: ...

    def forget(self, fd: int) -> tuple[Any, Any] | None:
        """Unregister *fd*; its ``(reader, writer)`` (None for no waiter), or None if
        it was unknown. The caller wakes them."""
        ...

    def wait(self, timeout: float) -> Any: ...

    def dispatch(self, events: Any) -> bool:
        """Wake the waiters of a ``wait`` batch; True if the wakeup fd fired."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------- the shared manager of readiness backends

_StdlibSocket = socket.socket

_CLOSED = "another task closed this fd"

# An fd is a C int: larger numbers fail here, the same on both engines (the compiled
# poller would fail converting them, the reference's dict would not).
_FD_MAX = 2**31 - 1
_FD_TOO_LARGE = "Python int too large to convert to C int"


def fd_of(fd: int | HasFileno) -> int:
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


class ReadinessIOManager:
    """The run's I/O manager over a readiness poller. Subclasses set ``_poller_class``
    (called as ``cls(wakeup_fd, reschedule)``) and implement ``statistics``.

    * The waits are the engine's ``wait_fd`` (compiled: a C awaitable that registers
      and parks with no Python frame; reference: a coroutine doing the same); here they
      only resolve the fd and the task. The task always parks, even if the fd is ready
      now, so every wait that returns, and every cancelled one, went through a
      checkpoint; cancellation while parked removes the waiter and the wait did not
      happen. A busy direction (BusyResourceError) or an fd the kernel refuses
      (OSError) fails at once, without a checkpoint, as in trio.
    * ``notify_closing`` unregisters the fd before the caller closes it, so a later fd
      with the same number starts clean; each waiter gets its own ClosedResourceError
      (a shared exception would splice tracebacks together).
    * The public entry points are KI-protected (as trio's are): a SIGINT between
      registering a waiter and parking would leave a stale waiter behind.
    """

    __slots__ = ("_closed", "_current_task", "_poller", "_reschedule", "_wakeup")

    _poller_class: Callable[[int, Callable[..., object] | None], ReadinessPoller]
    # The engine's fd wait; a backend whose poller is a reference twin under the
    # compiled engine (kqueue's emulation on Linux) takes the reference one.
    _wait_fd: Callable[..., Awaitable[None]] = staticmethod(_impl.wait_fd)

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
            self._poller = self._poller_class(
                self._wakeup.wakeup_sock.fileno(), poller_reschedule
            )
        except BaseException:
            self._wakeup.close()
            raise
        self._closed = False

    def close(self) -> None:
        """Close the poller and the wakeup socketpair (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._poller.close()
        finally:
            self._wakeup.close()

    def force_wakeup(self) -> None:
        self._wakeup.wakeup_thread_and_signal_safe()

    def get_events(self, timeout: float) -> Any:
        return self._poller.wait(timeout)

    def process_events(self, events: Any) -> None:
        if self._poller.dispatch(events):
            self._wakeup.drain()

    @enable_ki_protection
    def wait_readable(self, fd: int | HasFileno) -> Awaitable[None]:
        """Block until *fd* (an int or an object with ``fileno()``) is readable.

        Raises BusyResourceError if another task already waits to read it, and
        ClosedResourceError if ``notify_closing`` is called on it meanwhile."""
        fdno = fd_of(fd)
        owner = fd if type(fd) is _StdlibSocket else None
        return self._wait_fd(self._poller, fdno, owner, self._current_task(), True)

    @enable_ki_protection
    def wait_writable(self, fd: int | HasFileno) -> Awaitable[None]:
        """Block until *fd* (an int or an object with ``fileno()``) is writable.

        Raises BusyResourceError if another task already waits to write it, and
        ClosedResourceError if ``notify_closing`` is called on it meanwhile."""
        fdno = fd_of(fd)
        owner = fd if type(fd) is _StdlibSocket else None
        return self._wait_fd(self._poller, fdno, owner, self._current_task(), False)

    @enable_ki_protection
    def notify_closing(self, fd: int | HasFileno) -> None:
        """Say that *fd* is about to be closed: tasks waiting on it are woken with
        ClosedResourceError, and the kernel stops watching it. Fine with no waiters,
        and with fds this manager never saw (a closed socket's -1 included)."""
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


# ------------------------------------------------------------------ choosing the backend

ENV_VAR = "VIVACE_IO_BACKEND"


def _has_kqueue() -> bool:
    # On Linux only tests/_fake_kqueue.py's emulation provides it (a test-only backend).
    return hasattr(select, "kqueue")


def available_backends() -> tuple[str, ...]:
    """The backends this platform can run, the default first."""
    if sys.platform == "win32":
        return ("iocp",)
    if sys.platform.startswith("linux"):
        return ("epoll", "poll", "kqueue") if _has_kqueue() else ("epoll", "poll")
    if os.name == "posix" and hasattr(select, "poll"):
        # macOS and the BSDs: kqueue is the default; poll(2) is on every POSIX system.
        return ("kqueue", "poll") if _has_kqueue() else ("poll",)
    return ()


def _manager_class(name: str) -> type[IOManager]:
    # Imported on demand: a backend module may import what only its platform has.
    if name == "epoll":
        from ._io_epoll import EpollIOManager

        return EpollIOManager
    if name == "poll":
        from ._io_poll import PollIOManager

        return PollIOManager
    if name == "kqueue":
        _check_kqueue_engine()
        from ._io_kqueue import KqueueIOManager

        return KqueueIOManager
    if name == "iocp":
        from ._io_windows import WindowsIOManager

        return WindowsIOManager
    raise AssertionError(f"no manager for backend {name!r}")  # pragma: no cover


def _check_kqueue_engine() -> None:
    """Where no compiled kqueue poller is built (Linux, whose kqueue is the test
    emulation), the compiled engine cannot run the backend: its socket operations park
    on a compiled poller."""
    built = next(t.built for t in _impl.TWINS if t.reference == "_kqueue_py")
    if _impl.ENGINE == "compiled" and not built:
        raise RuntimeError(
            f"{ENV_VAR}=kqueue on {sys.platform} is the emulation used for tests, which "
            "runs on the reference engine only; set VIVACE_NO_EXTENSIONS=1"
        )


def selected_backend() -> str:
    """The backend a new run will use: ``VIVACE_IO_BACKEND`` if set (and non-empty),
    else the platform's default. An unknown or unavailable name is a RuntimeError that
    lists what is available."""
    available = available_backends()
    wanted = os.environ.get(ENV_VAR, "").strip().lower()
    if not wanted:
        if not available:
            raise RuntimeError(f"vivace has no I/O backend for this platform ({sys.platform})")
        return available[0]
    if wanted not in available:
        offer = ", ".join(available) if available else f"none on {sys.platform}"
        raise RuntimeError(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not an I/O backend vivace can use "
            f"here; available: {offer} (unset {ENV_VAR} for the default)"
        )
    return wanted


def make_io_manager() -> IOManager:
    """A new run's I/O manager, of the backend ``selected_backend()`` names."""
    return _manager_class(selected_backend())()
