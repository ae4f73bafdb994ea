"""The Linux I/O manager: the epoll readiness backend.

Everything but the poller and the statistics is the shared ``ReadinessIOManager``
(``_io_manager``): fd arguments, parking the current task with ``wait_fd``,
notify_closing's exception, the force-wakeup socketpair. The poller
(``_impl.EpollPoller``: ``_ext/_epoll.pyx`` or ``_epoll_py.py``) is epoll's part of
the shared ``ReadinessTable``; its notes explain the registration policy
(level-triggered, lazy disarm, owner-proved cache hits, zombie rebuilds).

Threads. ``get_events`` may run in a worker thread (guest mode) while the run's
thread leaves the manager alone; ``force_wakeup`` is safe from any thread and from
signal handlers (it only writes to the socketpair). Everything else runs in the run's
thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from . import _impl
from ._io_manager import ReadinessIOManager

if TYPE_CHECKING:
    from . import _epoll_py
    from ._io_manager import IOManager, ReadinessPoller


@dataclass(frozen=True, slots=True)
class EpollStatistics:
    """``current_statistics().io_statistics`` on Linux: how many tasks are blocked in
    ``wait_readable`` and in ``wait_writable``."""

    tasks_waiting_read: int
    tasks_waiting_write: int
    backend: Literal["epoll"] = field(default="epoll", init=False)


class EpollIOManager(ReadinessIOManager):
    """The run's I/O manager on Linux (see the module notes)."""

    __slots__ = ()

    _poller_class = _impl.EpollPoller

    def statistics(self) -> EpollStatistics:
        poller = self._poller
        return EpollStatistics(
            tasks_waiting_read=poller.tasks_waiting_read,
            tasks_waiting_write=poller.tasks_waiting_write,
        )


if TYPE_CHECKING:
    # The interface, checked by mypy: the manager and the reference poller conform (the
    # compiled twin is checked at run time by tests/test_io_manager_interface.py).
    def _manager_conforms(manager: EpollIOManager) -> IOManager:
        return manager

    def _poller_conforms(poller: _epoll_py.EpollPoller) -> ReadinessPoller:
        return poller
