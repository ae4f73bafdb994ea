"""The macOS and BSD I/O manager: the kqueue readiness backend, and trio's lowlevel
kqueue API (``current_kqueue``, ``monitor_kevent``, ``wait_kevent``).

Everything about fd waits is the shared ``ReadinessIOManager`` (``_io_manager``) over
the poller (``_impl.KqueuePoller``: ``_ext/_kqueue.pyx`` or ``_kqueue_py.py``), whose
notes explain the registrations. What is kqueue's own here is the kevent API:

* ``monitor_kevent(ident, filter)`` and ``wait_kevent(ident, filter, abort_func)``
  claim the key ``(ident, filter)``: one claimant per key, shared with
  ``wait_readable``/``wait_writable``'s keys (fd, EVFILT_READ/EVFILT_WRITE), else
  BusyResourceError. The caller registers the key with the kernel through
  ``current_kqueue()``; the poller routes the key's events to the claimant. A monitor
  gets each event in its queue until it exits; a waiter is woken by the first one,
  which is also what ``wait_kevent`` returns, and the key is free again from then on.
* A waiter's cancellation runs ``abort_func``; if it says ``Abort.SUCCEEDED`` the key is
  released and no event was consumed (the kernel's registration stays the caller's).
* ``notify_closing(fd)`` wakes a ``wait_kevent`` on (fd, EVFILT_READ/WRITE) with
  ClosedResourceError after deleting its registration, as it does for fd waiters; an
  fd a monitor uses cannot be notified (NotImplementedError, as in trio, before
  anything changes).

Statistics are trio's: ``tasks_waiting`` (fd waiters and kevent waiters) and
``monitors``.

On Linux the backend runs only over tests/_fake_kqueue.py's emulation, on the
reference engine (the compiled engine's socket operations park on a compiled poller,
and no compiled kqueue poller is built there).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from errno import EBADF, ENOENT
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import outcome

from . import _impl, _sockio_py
from ._exceptions import BusyResourceError, ClosedResourceError
from ._io_manager import _CLOSED, HasFileno, ReadinessIOManager
from ._ki import enable_ki_protection
from ._kqueue_py import KQ_EV_DELETE, KQ_FILTER_READ, KQ_FILTER_WRITE
from ._traps import Abort
from ._unbounded_queue import UnboundedQueue

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from . import _kqueue_py
    from ._io_manager import IOManager, ReadinessPoller

# Whether this platform builds the compiled poller (``_impl.TWINS``' entry).
_COMPILED_POLLER = next(t.built for t in _impl.TWINS if t.reference == "_kqueue_py")

_BUSY_KEY = "another task already monitors or waits for this (ident, filter) pair"
_MONITORED = "cannot notify the closing of an fd that monitor_kevent is watching"


class KqueueRouting(Protocol):
    """What a kqueue poller (either twin) adds to ``ReadinessPoller`` for the kevent
    API (``_kqueue_py``'s notes: routes)."""

    def current_kqueue(self) -> Any: ...
    def add_route(self, ident: int, filter: int, callback: Callable[[Any], object]) -> bool: ...  # noqa: A002
    def remove_route(self, ident: int, filter: int) -> None: ...  # noqa: A002


@dataclass(frozen=True, slots=True)
class KqueueStatistics:
    """``current_statistics().io_statistics`` on macOS and the BSDs: how many tasks
    are blocked in an fd wait or ``wait_kevent``, and how many ``monitor_kevent``
    blocks are open."""

    tasks_waiting: int
    monitors: int
    backend: Literal["kqueue"] = field(default="kqueue", init=False)


class KqueueIOManager(ReadinessIOManager):
    """The run's I/O manager on macOS and the BSDs (see the module notes)."""

    __slots__ = ("_kevent_waiters", "_monitors")

    _poller_class = _impl.KqueuePoller
    # Where the poller is the reference twin under the compiled engine (tests on
    # Linux), fd waits take the reference path, which drives any poller.
    _wait_fd = staticmethod(
        _impl.wait_fd if _COMPILED_POLLER or _impl.ENGINE == "reference" else _sockio_py.wait_fd
    )

    def __init__(
        self,
        *,
        _current_task: Callable[[], Any] | None = None,
        _reschedule: Callable[..., object] | None = None,
    ) -> None:
        super().__init__(_current_task=_current_task, _reschedule=_reschedule)
        self._kevent_waiters: dict[tuple[int, int], Any] = {}
        self._monitors: set[tuple[int, int]] = set()

    @property
    def _router(self) -> KqueueRouting:
        return cast("KqueueRouting", self._poller)

    def statistics(self) -> KqueueStatistics:
        poller = self._poller
        return KqueueStatistics(
            tasks_waiting=poller.tasks_waiting_read
            + poller.tasks_waiting_write
            + len(self._kevent_waiters),
            monitors=len(self._monitors),
        )

    @enable_ki_protection
    def notify_closing(self, fd: int | HasFileno) -> None:
        if not isinstance(fd, int):
            fd = fd.fileno()
        fd = int(fd)
        keys = [(fd, KQ_FILTER_READ), (fd, KQ_FILTER_WRITE)]
        if any(key in self._monitors for key in keys):
            raise NotImplementedError(_MONITORED)
        for key in keys:
            task = self._kevent_waiters.pop(key, None)
            if task is None:
                continue
            self._router.remove_route(*key)
            self._delete_registration(*key)
            self._reschedule(task, outcome.Error(ClosedResourceError(_CLOSED)))
        super().notify_closing(fd)

    def _delete_registration(self, ident: int, filter: int) -> None:  # noqa: A002
        import select

        change = select.kevent(ident, filter, KQ_EV_DELETE)  # type: ignore[attr-defined]
        try:
            self._router.current_kqueue().control([change], 0)
        except OSError as exc:
            # Gone already: its fd was closed (macOS says ENOENT, FreeBSD EBADF).
            if exc.errno not in (ENOENT, EBADF):
                raise

    # -- trio's lowlevel kqueue API ----------------------------------------------------
    def current_kqueue(self) -> Any:
        return self._router.current_kqueue()

    @contextmanager
    def monitor_kevent(self, ident: int, filter: int) -> Iterator[UnboundedQueue[Any]]:  # noqa: A002
        key = (ident, filter)
        # The queue (whose construction warns: UnboundedQueue is deprecated) is made
        # only once the key is ours, as in trio; no event can come before it exists.
        cell: list[UnboundedQueue[Any]] = []
        if self._router.add_route(ident, filter, lambda event: cell[0].put_nowait(event)):
            raise BusyResourceError(_BUSY_KEY)
        try:
            queue: UnboundedQueue[Any] = UnboundedQueue()
        except BaseException:
            self._router.remove_route(ident, filter)
            raise
        cell.append(queue)
        self._monitors.add(key)
        try:
            yield queue
        finally:
            self._monitors.discard(key)
            self._router.remove_route(ident, filter)

    async def wait_kevent(
        self,
        ident: int,
        filter: int,  # noqa: A002
        abort_func: Callable[[Any], Abort],
    ) -> Any:
        key = (ident, filter)
        task = self._current_task()
        reschedule = self._reschedule
        waiters = self._kevent_waiters
        poller = self._router

        def deliver(event: Any) -> None:
            # The first event wakes the waiter and frees the key.
            poller.remove_route(ident, filter)
            del waiters[key]
            reschedule(task, outcome.Value(event))

        if poller.add_route(ident, filter, deliver):
            raise BusyResourceError(_BUSY_KEY)
        waiters[key] = task

        def abort(raise_cancel: Any) -> Abort:
            result = abort_func(raise_cancel)
            if result is Abort.SUCCEEDED and waiters.get(key) is task:
                del waiters[key]
                poller.remove_route(ident, filter)
            return result

        return await _impl.wait_task_rescheduled(abort)


if TYPE_CHECKING:
    # The interface, checked by mypy: the manager and the reference poller conform (the
    # compiled twin is checked at run time by tests/test_io_manager_interface.py).
    def _manager_conforms(manager: KqueueIOManager) -> IOManager:
        return manager

    def _poller_conforms(poller: _kqueue_py.KqueuePoller) -> ReadinessPoller:
        return poller


# ----------------------------------------------------------------- the public functions


def _manager() -> KqueueIOManager:
    from ._run import _runner

    manager = _runner().io_manager
    if not isinstance(manager, KqueueIOManager):
        raise RuntimeError(
            "the kqueue API needs the kqueue I/O backend; this run uses "
            f"{manager.statistics().backend!r}"
        )
    return manager


@enable_ki_protection
def current_kqueue() -> Any:
    """The run's ``select.kqueue`` object, to register kevents on for
    ``monitor_kevent`` and ``wait_kevent``."""
    return _manager().current_kqueue()


@enable_ki_protection
def monitor_kevent(ident: int, filter: int) -> Any:  # noqa: A002
    """A context manager that claims ``(ident, filter)`` and yields an UnboundedQueue
    receiving that key's kevents until it exits. BusyResourceError if the key is
    already claimed (by a monitor, a ``wait_kevent`` or an fd wait)."""
    return _manager().monitor_kevent(ident, filter)


@enable_ki_protection
async def wait_kevent(ident: int, filter: int, abort_func: Callable[[Any], Abort]) -> Any:  # noqa: A002
    """Park until a kevent for ``(ident, filter)`` arrives and return it. On
    cancellation *abort_func* runs as ``wait_task_rescheduled``'s abort function; if it
    returns ``Abort.SUCCEEDED`` the key is released. BusyResourceError if the key is
    already claimed."""
    return await _manager().wait_kevent(ident, filter, abort_func)
