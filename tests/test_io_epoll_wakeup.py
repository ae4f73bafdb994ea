"""The wakeup socketpair (wake, drain, signal wakeup fd) and the epoll I/O manager
around the poller: statistics, close, and ``force_wakeup`` from other threads.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from _io_epoll_support import (
    THREAD_TIMEOUT,
    Rescheduled,
    open_fds,
    until_blocked_in_epoll,
)
from vivace._core._io_epoll import EpollIOManager, EpollStatistics
from vivace._core._wakeup import WakeupSocketpair

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux-only")


# --------------------------------------------------------------------------- wakeup pair


def test_wakeup_socketpair_wakes_and_drains() -> None:
    w = WakeupSocketpair()
    try:
        r = select.poll()
        r.register(w.wakeup_sock, select.POLLIN)
        assert r.poll(0) == []
        w.wakeup_thread_and_signal_safe()
        assert r.poll(0) != []
        w.drain()
        assert r.poll(0) == []
    finally:
        w.close()


def test_wakeup_socketpair_ignores_a_full_buffer() -> None:
    w = WakeupSocketpair()
    try:
        r = select.poll()
        r.register(w.wakeup_sock, select.POLLIN)
        for _ in range(100_000):
            w.wakeup_thread_and_signal_safe()  # neither blocks nor raises once full
        # The buffer really is full: one more plain send would block.
        with pytest.raises(BlockingIOError):
            w.write_sock.send(b"\x00")
        assert r.poll(0) != []
        w.drain()
        assert r.poll(0) == []
        # Having been full, it still wakes.
        w.wakeup_thread_and_signal_safe()
        assert r.poll(0) != []
    finally:
        w.close()


def test_wakeup_socketpair_close_is_idempotent() -> None:
    before = open_fds()
    w = WakeupSocketpair()
    assert open_fds() == before + 2
    w.close()
    w.close()
    assert open_fds() == before


@pytest.fixture
def no_wakeup_fd() -> Iterator[None]:
    old = signal.set_wakeup_fd(-1)
    try:
        yield
    finally:
        signal.set_wakeup_fd(old)


def test_wakeup_on_signals_installs_and_restores(no_wakeup_fd: None) -> None:
    w = WakeupSocketpair()
    try:
        w.wakeup_on_signals()
        assert w.old_wakeup_fd == -1
        assert signal.set_wakeup_fd(w.write_sock.fileno()) == w.write_sock.fileno()
    finally:
        w.close()
    assert signal.set_wakeup_fd(-1) == -1


def test_wakeup_on_signals_is_woken_by_a_signal(no_wakeup_fd: None) -> None:
    got: list[int] = []
    old_handler = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    w = WakeupSocketpair()
    try:
        w.wakeup_on_signals()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert got == [signal.SIGUSR1]
        assert w.wakeup_sock.recv(10) == bytes([signal.SIGUSR1])
    finally:
        w.close()
        signal.signal(signal.SIGUSR1, old_handler)


def test_wakeup_on_signals_warns_when_replacing_another_fd(no_wakeup_fd: None) -> None:
    other_r, other_w = socket.socketpair()
    other_w.setblocking(False)
    with other_r, other_w:
        signal.set_wakeup_fd(other_w.fileno())
        w = WakeupSocketpair()
        try:
            with pytest.warns(RuntimeWarning, match="host_uses_signal_set_wakeup_fd=True"):
                w.wakeup_on_signals()
            assert w.old_wakeup_fd == other_w.fileno()
        finally:
            w.close()
        assert signal.set_wakeup_fd(-1) == other_w.fileno()


def test_wakeup_close_keeps_a_wakeup_fd_installed_after_ours(no_wakeup_fd: None) -> None:
    other_r, other_w = socket.socketpair()
    other_w.setblocking(False)
    with other_r, other_w:
        w = WakeupSocketpair()
        try:
            w.wakeup_on_signals()
            signal.set_wakeup_fd(other_w.fileno())
        finally:
            w.close()
        assert signal.set_wakeup_fd(-1) == other_w.fileno()


def test_wakeup_on_signals_outside_main_thread_does_nothing(no_wakeup_fd: None) -> None:
    w = WakeupSocketpair()
    try:
        thread = threading.Thread(target=w.wakeup_on_signals)
        thread.start()
        thread.join()
        assert w.old_wakeup_fd is None
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        w.close()


# --------------------------------------------------------------------------- the manager


def test_manager_statistics_shape() -> None:
    stats = EpollStatistics(tasks_waiting_read=1, tasks_waiting_write=2)
    assert stats.backend == "epoll"
    with pytest.raises(AttributeError):
        stats.tasks_waiting_read = 3  # type: ignore[misc]


def test_manager_close_is_idempotent_and_leaks_nothing() -> None:
    before = open_fds()
    manager = EpollIOManager(_current_task=lambda: None, _reschedule=Rescheduled())
    assert open_fds() == before + 3  # epoll + the wakeup socketpair
    manager.close()
    manager.close()
    assert open_fds() == before


def test_manager_force_wakeup_from_a_thread_ends_a_blocked_wait() -> None:
    manager = EpollIOManager(_current_task=lambda: None, _reschedule=Rescheduled())
    try:
        me = threading.get_native_id()

        def wake_when_blocked() -> None:
            until_blocked_in_epoll(me)
            manager.force_wakeup()

        waker = threading.Thread(target=wake_when_blocked)
        waker.start()
        # Only the wake-up can end this wait with events (a lost one would end it by
        # the timeout, with none).
        events = manager.get_events(THREAD_TIMEOUT)
        assert events
        manager.process_events(events)
        assert not manager.get_events(0)  # drained
        waker.join(THREAD_TIMEOUT)
    finally:
        manager.close()


def test_manager_get_events_in_worker_thread_while_main_thread_wakes_it() -> None:
    manager = EpollIOManager(_current_task=lambda: None, _reschedule=Rescheduled())
    try:
        box: list[Any] = []
        thread = threading.Thread(target=lambda: box.append(manager.get_events(THREAD_TIMEOUT)))
        thread.start()
        until_blocked_in_epoll(thread.native_id)  # type: ignore[arg-type]
        manager.force_wakeup()
        thread.join(2 * THREAD_TIMEOUT)
        assert not thread.is_alive()
        assert box[0]  # woken with the wake-up's event, not by the timeout
        manager.process_events(box[0])
        assert not manager.get_events(0)
    finally:
        manager.close()


def test_manager_force_wakeup_never_blocks_or_raises() -> None:
    manager = EpollIOManager(_current_task=lambda: None, _reschedule=Rescheduled())
    try:
        for _ in range(10_000):
            manager.force_wakeup()
        manager.process_events(manager.get_events(0))
        assert not manager.get_events(0)
    finally:
        manager.close()
