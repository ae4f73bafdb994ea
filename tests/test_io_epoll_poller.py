"""The epoll poller twins driven directly with a fake reschedule: registration and
waiters per direction, readiness wake-ups, error cases (EBADF, EPERM, zombie
registrations, rebuilds), ``wait`` timeouts and cross-thread wake-ups, and ``close``.

Each test runs on every importable twin (the ``h`` fixture).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading
import time
from typing import Any

import outcome
import pytest

# The fixtures h and pair are found by name in this namespace: importing them is their use.
from _io_epoll_support import (  # noqa: F401
    THREAD_TIMEOUT,
    Harness,
    SocketPair,
    drain,
    fill,
    h_fixture,
    pair_fixture,
    until_blocked_in_epoll,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux-only")


# --------------------------------------------------------------------------- poller twins


def test_poller_wakes_reader_when_data_arrives(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    assert h.poller.add_reader(a.fileno(), None, "R") is False
    assert h.poller.tasks_waiting_read == 1
    assert h.poll() == ([], False)
    b.send(b"x")
    assert h.poll() == (["R"], False)
    assert h.resched.calls == []
    assert h.poller.tasks_waiting_read == 0


def test_poller_wakes_writer_at_once_when_writable(h: Harness, pair: SocketPair) -> None:
    a, _ = pair
    assert h.poller.add_writer(a.fileno(), None, "W") is False
    assert h.poller.tasks_waiting_write == 1
    assert h.poll() == (["W"], False)
    assert h.poller.tasks_waiting_write == 0


def test_poller_reports_a_second_waiter_per_direction_as_busy(h: Harness, pair: SocketPair) -> None:
    a, _ = pair
    fd = a.fileno()
    assert h.poller.add_reader(fd, None, "R1") is False
    assert h.poller.add_reader(fd, None, "R2") is True
    fill(a)
    assert h.poller.add_writer(fd, None, "W1") is False
    assert h.poller.add_writer(fd, a, "W2") is True
    assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (1, 1)
    assert h.poll() == ([], False)


def test_poller_reader_and_writer_wake_independently(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    fill(a)
    h.poller.add_reader(a.fileno(), a, "R")
    h.poller.add_writer(a.fileno(), a, "W")
    assert h.poll() == ([], False)
    b.send(b"x")
    assert h.poll() == (["R"], False)
    drain(b)
    assert h.poll() == (["W"], False)


def test_poller_hangup_wakes_both_directions(h: Harness) -> None:
    a, b = socket.socketpair()
    with a:
        a.setblocking(False)
        fill(a)
        h.poller.add_reader(a.fileno(), a, "R")
        h.poller.add_writer(a.fileno(), a, "W")
        assert h.poll() == ([], False)
        b.close()
        tasks, _ = h.poll()
        assert sorted(tasks) == ["R", "W"]
        # The hung-up fd keeps reporting, but nobody waits: one round drops it.
        for _ in range(3):
            h.poll()
        assert h.poller.registered_fds == 0
        assert h.poller.wait(0) in ([], 0)


def test_poller_removed_waiter_is_not_woken(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    h.poller.add_reader(a.fileno(), a, "R")
    h.poller.remove_reader(a.fileno(), "someone else")
    assert h.poller.tasks_waiting_read == 1
    h.poller.remove_reader(a.fileno(), "R")
    assert h.poller.tasks_waiting_read == 0
    h.poller.remove_reader(a.fileno(), "R")  # twice is harmless
    b.send(b"x")
    assert h.poll() == ([], False)
    # The direction stayed armed until it reported an event nobody wanted.
    assert h.poller.registered_fds == 0


def test_poller_rewait_on_same_socket_issues_no_epoll_ctl(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    h.poller.add_reader(a.fileno(), a, "R")
    for i in range(5):
        b.send(b"x")
        assert h.poll() == (["R"], False)
        a.recv(10)
        before = h.poller.ctl_calls
        h.poller.add_reader(a.fileno(), a, "R")
        assert h.poller.ctl_calls == before, f"round {i}"
    h.poller.remove_reader(a.fileno(), "R")


def test_poller_rewait_on_int_fd_revalidates_registration(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    h.poller.add_reader(a.fileno(), None, "R")
    b.send(b"x")
    assert h.poll() == (["R"], False)
    a.recv(10)
    before = h.poller.ctl_calls
    h.poller.add_reader(a.fileno(), None, "R")
    assert h.poller.ctl_calls == before + 1
    h.poller.remove_reader(a.fileno(), "R")


def test_poller_full_duplex_wakeups_do_not_rearm(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    fill(a)
    h.poller.add_reader(a.fileno(), a, "R")
    h.poller.add_writer(a.fileno(), a, "W")
    before = h.poller.ctl_calls
    b.send(b"x")
    assert h.poll() == (["R"], False)
    assert a.recv(1) == b"x"
    h.poller.add_reader(a.fileno(), a, "R")
    drain(b)
    assert h.poll() == (["W"], False)
    assert h.poller.ctl_calls == before
    h.poller.remove_reader(a.fileno(), "R")


def test_poller_rejects_closed_fd_with_ebadf(h: Harness) -> None:
    s = socket.socket()
    fd = s.fileno()
    s.close()
    with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$") as info:
        h.poller.add_reader(fd, None, "R")
    assert type(info.value) is OSError
    assert info.value.errno == errno.EBADF
    assert h.poller.tasks_waiting_read == 0
    assert h.poller.registered_fds == 0


def test_poller_rejects_regular_file_with_eperm(h: Harness, tmp_path: Any) -> None:
    with open(tmp_path / "f", "wb") as f:
        with pytest.raises(PermissionError, match=r"^\[Errno 1\] Operation not permitted$"):
            h.poller.add_writer(f.fileno(), None, "W")
    assert h.poller.tasks_waiting_write == 0


def test_poller_registration_failure_wakes_the_other_waiter(h: Harness) -> None:
    a, b = socket.socketpair()
    with b:
        fd = a.fileno()
        a.setblocking(False)
        fill(a)
        h.poller.add_writer(fd, None, "W")
        a.close()  # behind the poller's back, no dup: the kernel drops the registration
        with pytest.raises(OSError) as info:
            h.poller.add_reader(fd, None, "R")
        assert info.value.errno == errno.EBADF
        [(task, result)] = h.resched.calls
        assert task == "W"
        assert isinstance(result, outcome.Error)
        assert isinstance(result.error, OSError)
        assert result.error.errno == errno.EBADF
        assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (0, 0)


def test_poller_forget_returns_waiters_and_unregisters(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    fill(a)
    h.poller.add_reader(a.fileno(), a, "R")
    h.poller.add_writer(a.fileno(), a, "W")
    assert h.poller.forget(a.fileno()) == ("R", "W")
    assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (0, 0)
    assert h.poller.registered_fds == 0
    assert h.poller.forget(a.fileno()) is None
    b.send(b"x")
    drain(b)
    assert h.poll() == ([], False)
    assert h.poller.rebuilds == 0


def test_poller_forget_of_unknown_fd_is_none(h: Harness) -> None:
    assert h.poller.forget(12345) is None


def test_poller_survives_fd_number_reuse_after_unnotified_close(h: Harness) -> None:
    # Woken, then closed without forget(), then the same number names a new socket:
    # the new wait must really be registered, whichever way the fd is passed.
    for owner_kind in ["int", "socket", "socket", "int"]:
        a, b = socket.socketpair()
        fd = a.fileno()
        h.poller.add_reader(fd, a if owner_kind == "socket" else None, "R")
        b.send(b"x")
        assert h.poll() == (["R"], False)
        a.close()
        b.close()
        a, b = socket.socketpair()
        with a, b:
            assert a.fileno() == fd or b.fileno() == fd
            new = a if a.fileno() == fd else b
            other = b if new is a else a
            h.poller.add_reader(fd, new if owner_kind == "socket" else None, "R2")
            assert h.poll() == ([], False)
            other.send(b"y")
            assert h.poll(1.0) == (["R2"], False)
            new.recv(1)


def test_poller_rebuilds_after_zombie_registration(h: Harness) -> None:
    # A registered fd closed behind our back while a dup keeps the file alive leaves
    # a registration we can no longer reach; it must not make the poller spin.
    a, b = socket.socketpair()
    a2 = a.dup()
    with a2, b:
        fd = a.fileno()
        h.poller.add_reader(fd, None, "R")
        a.close()
        b.send(b"x")
        tasks, _ = h.poll()
        assert tasks == ["R"]  # a wakeup through the zombie is acceptable
        for _ in range(3):
            h.poll()
        assert h.poller.rebuilds >= 1
        assert h.poller.wait(0) in ([], 0)
        # The poller still works.
        c, d = socket.socketpair()
        with c, d:
            h.poller.add_reader(c.fileno(), c, "C")
            d.send(b"z")
            assert h.poll(1.0) == (["C"], False)


def test_poller_rebuild_wakes_waiters_on_dead_fds_with_oserror(h: Harness) -> None:
    a, b = socket.socketpair()
    a2 = a.dup()
    with a2, b:
        fd = a.fileno()
        a.setblocking(False)
        fill(a)
        h.poller.add_reader(fd, None, "R")
        h.poller.add_writer(fd, None, "W")
        a.close()
        b.send(b"x")
        seen: list[object] = []
        for _ in range(4):
            seen += h.poll()[0]
        assert h.poller.rebuilds >= 1
        # Both waiters were woken: the reader by the zombie's event (plain wake) and
        # the writer by the rebuild, which could not re-add the dead fd.
        assert sorted(map(str, seen + [t for t, _ in h.resched.calls])) == ["R", "W"]
        assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (0, 0)


def test_poller_wakeup_fd_is_reported_separately(h: Harness) -> None:
    assert h.poll() == ([], False)
    h.wakeup.wakeup_thread_and_signal_safe()
    assert h.poll() == ([], True)
    assert h.poll() == ([], False)


def test_poller_wait_blocks_until_timeout(h: Harness) -> None:
    start = time.monotonic()
    assert not h.poller.wait(0.03)
    assert time.monotonic() - start >= 0.025


def test_poller_wait_from_another_thread_is_woken(h: Harness) -> None:
    result: list[object] = []
    # If the wake-up were lost, the wait would end by its timeout with no events, and
    # dispatch would report no wake-up: no need to time anything.
    thread = threading.Thread(target=lambda: result.append(h.poller.wait(THREAD_TIMEOUT)))
    thread.start()
    until_blocked_in_epoll(thread.native_id)  # type: ignore[arg-type]
    h.wakeup.wakeup_thread_and_signal_safe()
    thread.join(2 * THREAD_TIMEOUT)
    assert not thread.is_alive()
    assert h.poller.dispatch(result[0]) is True


def test_poller_rejects_concurrent_waits(h: Harness) -> None:
    thread = threading.Thread(target=lambda: h.poller.dispatch(h.poller.wait(THREAD_TIMEOUT)))
    thread.start()
    try:
        until_blocked_in_epoll(thread.native_id)  # type: ignore[arg-type]
        # The thread is in (or, where wchan is hidden, on its way to) its wait: poll
        # for that condition, bounded by the hang guard.
        deadline = time.monotonic() + THREAD_TIMEOUT
        while True:
            try:
                h.poller.wait(0)
            except RuntimeError as exc:
                assert str(exc) == "another thread is already waiting in this poller"
                break
            assert time.monotonic() < deadline
            time.sleep(0.001)
    finally:
        h.wakeup.wakeup_thread_and_signal_safe()
        thread.join(2 * THREAD_TIMEOUT)


@pytest.mark.parametrize("timeout", [-1.0, 0.0, 1e-9, float("inf")])
def test_poller_wait_accepts_any_non_nan_timeout(h: Harness, timeout: float) -> None:
    h.wakeup.wakeup_thread_and_signal_safe()  # so inf returns
    assert h.poller.dispatch(h.poller.wait(timeout)) is True


def test_poller_wait_rejects_nan(h: Harness) -> None:
    with pytest.raises(ValueError, match="^timeout must not be NaN$"):
        h.poller.wait(float("nan"))


def test_poller_close_is_idempotent_and_final(h: Harness, pair: SocketPair) -> None:
    a, _ = pair
    h.poller.add_reader(a.fileno(), a, "R")
    events = h.poller.wait(0)
    h.poller.close()
    h.poller.close()
    assert h.poller.closed
    assert h.poller.fileno() == -1
    assert h.poller.dispatch(events) is False
    assert h.poller.forget(a.fileno()) is None
    for call in [
        lambda: h.poller.wait(0),
        lambda: h.poller.add_reader(a.fileno(), a, "R"),
    ]:
        with pytest.raises(RuntimeError, match="^the epoll poller is closed$"):
            call()
    assert h.poller.tasks_waiting_read == 0


def test_poller_close_releases_its_fd(h: Harness) -> None:
    epfd = h.poller.fileno()
    assert os.readlink(f"/proc/self/fd/{epfd}") == "anon_inode:[eventpoll]"
    h.poller.close()
    assert not os.path.exists(f"/proc/self/fd/{epfd}")
