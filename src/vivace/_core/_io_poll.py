"""The portable POSIX I/O manager: the poll(2) readiness backend.

Everything but the poller and the statistics is the shared ``ReadinessIOManager``
(``_io_manager``): fd arguments, parking the current task with ``wait_fd``,
notify_closing's exception, the force-wakeup socketpair. The poller
(``_impl.PollPoller``: ``_ext/_poll.pyx`` or ``_poll_py.py``) is poll's part of the
shared ``ReadinessTable``; its notes explain what differs from epoll (the set lives in
user space, no rebuilds, POLLNVAL fails the waiters of an fd closed behind our back).

It is the default where no better backend exists (POSIX systems other than Linux,
until kqueue lands) and is chosen on Linux with ``VIVACE_IO_BACKEND=poll``.

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
    from . import _poll_py
    from ._io_manager import IOManager, ReadinessPoller


@dataclass(frozen=True, slots=True)
class PollStatistics:
    """``current_statistics().io_statistics`` on the poll backend: how many tasks are
    blocked in ``wait_readable`` and in ``wait_writable``."""

    tasks_waiting_read: int
    tasks_waiting_write: int
    backend: Literal["poll"] = field(default="poll", init=False)


class PollIOManager(ReadinessIOManager):
    """The run's I/O manager on the poll backend (see the module notes)."""

    __slots__ = ()

    _poller_class = _impl.PollPoller

    def statistics(self) -> PollStatistics:
        poller = self._poller
        return PollStatistics(
            tasks_waiting_read=poller.tasks_waiting_read,
            tasks_waiting_write=poller.tasks_waiting_write,
        )


if TYPE_CHECKING:
    # The interface, checked by mypy: the manager and the reference poller conform (the
    # compiled twin is checked at run time by tests/test_io_manager_interface.py).
    def _manager_conforms(manager: PollIOManager) -> IOManager:
        return manager

    def _poller_conforms(poller: _poll_py.PollPoller) -> ReadinessPoller:
        return poller
