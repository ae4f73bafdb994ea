"""Shared helpers and fixtures of the ``test_io_epoll_*`` modules: the poller twins to
run on, a fake-reschedule harness around a twin, socketpair helpers and fd counting.

Test modules import the fixtures (``pair``, ``h``) by name so pytest finds them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from vivace import lowlevel
from vivace._core import _epoll_py, _impl, _io_manager
from vivace._core._io_epoll import EpollStatistics
from vivace._core._io_poll import PollStatistics
from vivace._core._wakeup import WakeupSocketpair

SocketPair = tuple[socket.socket, socket.socket]


# --------------------------------------------------------------------------- helpers


def _compiled_twin() -> Any:
    try:
        from vivace._core._ext._epoll import EpollPoller
    except ImportError:
        return None
    return EpollPoller


def _twins() -> list[Any]:
    params = [pytest.param(_epoll_py.EpollPoller, id="reference")]
    if _impl.ENGINE == "compiled" or not _impl._NO_EXT:
        compiled = _compiled_twin()
        if compiled is not None:
            params.append(pytest.param(compiled, id="compiled"))
        elif _impl.ENGINE == "compiled":  # pragma: no cover
            raise ImportError("the compiled engine loaded without its epoll twin")
    return params


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fill(sock: socket.socket) -> None:
    try:
        while True:
            sock.send(b"x" * 65536)
    except BlockingIOError:
        pass


def drain(sock: socket.socket) -> int:
    total = 0
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return total
            total += len(chunk)
    except BlockingIOError:
        return total


# A hang guard for waits on other threads; never reached when things work.
THREAD_TIMEOUT = 30.0


def until_blocked_in_epoll(native_id: int) -> None:
    """Return once the thread ``native_id`` sleeps in epoll_wait, so that a wake-up
    test wakes a wait that really blocked rather than one that had not started.

    Linux names where a thread sleeps in /proc/<tid>/wchan; this polls that condition
    (no fixed delay). Where the kernel hides it, it gives up after a few seconds: the
    test then checks a wake-up that may have come before the wait, which must work too.
    """
    path = f"/proc/self/task/{native_id}/wchan"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                if "epoll" in f.read():
                    return
        except OSError:
            return
        time.sleep(0.0005)


@pytest.fixture(name="pair")
def pair_fixture() -> Iterator[SocketPair]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


class Rescheduled:
    """A fake ``reschedule``: records (task, outcome-or-None) in call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, object]] = []

    def __call__(self, task: object, next_send: object = None) -> None:
        self.calls.append((task, next_send))

    def tasks(self) -> list[object]:
        out = [task for task, _ in self.calls]
        self.calls.clear()
        return out


class Harness:
    """A poller twin with a fake reschedule and its own wakeup socketpair."""

    def __init__(self, cls: Any) -> None:
        self.resched = Rescheduled()
        self.wakeup = WakeupSocketpair()
        self.poller = cls(self.wakeup.wakeup_sock.fileno(), self.resched)

    def poll(self, timeout: float = 0) -> tuple[list[object], bool]:
        woke = self.poller.dispatch(self.poller.wait(timeout))
        if woke:
            self.wakeup.drain()
        return self.resched.tasks(), woke

    def close(self) -> None:
        self.poller.close()
        self.wakeup.close()


@pytest.fixture(name="h", params=_twins())
def h_fixture(request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness = Harness(request.param)
    try:
        yield harness
    finally:
        harness.close()


@dataclass(frozen=True)
class Waiting:
    """How many tasks wait in wait_readable and in wait_writable, on any backend."""

    tasks_waiting_read: int
    tasks_waiting_write: int


def io_stats() -> EpollStatistics | PollStatistics | Waiting:
    """The run's waiting-task counts. The tests through ``run`` use the shared readiness
    manager, so they hold on every readiness backend: epoll by default, poll or kqueue
    (emulated, on Linux) when ``VIVACE_IO_BACKEND`` chose it. kqueue's statistics, as
    trio's, count both directions together (``tasks_waiting``), so there the split is
    read from the run's poller, the shared table that keeps it."""
    stats = lowlevel.current_statistics().io_statistics
    assert stats.backend == _io_manager.selected_backend()
    if hasattr(stats, "tasks_waiting_read"):
        return stats  # type: ignore[no-any-return]
    from vivace._core._run import _runner

    poller = _runner().io_manager._poller  # type: ignore[attr-defined]
    waiting = Waiting(poller.tasks_waiting_read, poller.tasks_waiting_write)
    assert stats.tasks_waiting == waiting.tasks_waiting_read + waiting.tasks_waiting_write
    return waiting


def _pair_with_fd(fd: int | None) -> SocketPair:
    """A socketpair whose first socket has number ``fd`` (the lowest free number is
    reused, but either end of the new pair may get it)."""
    a, b = socket.socketpair()
    if fd is not None and a.fileno() != fd:
        a, b = b, a
    assert fd is None or a.fileno() == fd
    return a, b
