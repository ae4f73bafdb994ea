"""The Linux epoll I/O manager: the poller twins, the wakeup socketpair, and
``lowlevel.wait_readable`` / ``wait_writable`` / ``notify_closing`` through ``run``.

The API tests run on whichever engine ``_impl`` selected. The poller tests also run on
every other importable twin, and one test replays the same script on both twins and
compares what they did, so a divergence shows up even when only one engine runs.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import outcome
import pytest

import vivace
from vivace import lowlevel
from vivace._core import _epoll_py, _impl
from vivace._core._io_epoll import EpollIOManager, EpollStatistics
from vivace._core._wakeup import WakeupSocketpair
from vivace.testing import assert_checkpoints, trio_test, wait_all_tasks_blocked

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux-only")

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


@pytest.fixture
def pair() -> Iterator[SocketPair]:
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


@pytest.fixture(params=_twins())
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness = Harness(request.param)
    try:
        yield harness
    finally:
        harness.close()


# --------------------------------------------------------------------------- engine


def test_engine_uses_its_own_poller_twin() -> None:
    if _impl.ENGINE == "compiled":
        assert _impl.EpollPoller is _compiled_twin()
    else:
        assert _impl.EpollPoller is _epoll_py.EpollPoller


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


def test_compiled_poller_dispatch_takes_the_last_count_once() -> None:
    # Runs on both engine passes: the twin is importable directly whichever engine the
    # switch selected, and the build always produces it on Linux.
    cls = _compiled_twin()
    assert cls is not None, "compiled epoll poller not built; run scripts/test"
    harness = Harness(cls)
    try:
        harness.wakeup.wakeup_thread_and_signal_safe()
        n = harness.poller.wait(0)
        assert n == 1
        with pytest.raises(ValueError, match="event count"):
            harness.poller.dispatch(n + 1)
        assert harness.poller.dispatch(n) is True
        with pytest.raises(ValueError, match="event count"):
            harness.poller.dispatch(n)
    finally:
        harness.close()


def _script(cls: Any) -> list[object]:
    """Drive a twin through a fixed scenario; return everything observable."""
    trace: list[object] = []
    harness = Harness(cls)
    p = harness.poller

    def note(label: str, value: object = None) -> None:
        trace.append(
            (
                label,
                value,
                p.tasks_waiting_read,
                p.tasks_waiting_write,
                p.ctl_calls,
                p.registered_fds,
                p.rebuilds,
            )
        )

    def step(label: str) -> None:
        tasks, woke = harness.poll()
        errors = [
            (type(r.error).__name__, str(r.error))
            for _, r in harness.resched.calls
            if isinstance(r, outcome.Error)
        ]
        harness.resched.calls.clear()
        note(label, (tasks, woke, errors))

    def attempt(label: str, fn: Callable[[], object]) -> None:
        try:
            note(label, fn())
        except Exception as exc:
            note(label, (type(exc).__name__, str(exc)))

    a, b = socket.socketpair()
    c, d = socket.socketpair()
    for s in (a, b, c, d):
        s.setblocking(False)
    try:
        attempt("add r a", lambda: p.add_reader(a.fileno(), a, "Ra"))
        attempt("busy r a", lambda: p.add_reader(a.fileno(), a, "Rx"))
        fill(a)
        attempt("add w a", lambda: p.add_writer(a.fileno(), None, "Wa"))
        step("idle")
        b.send(b"1")
        step("a readable")
        attempt("re-add r a", lambda: p.add_reader(a.fileno(), a, "Ra"))
        drain(b)
        step("a writable")
        a.recv(10)
        step("nothing")
        attempt("remove r a", lambda: p.remove_reader(a.fileno(), "Ra"))
        b.send(b"2")
        step("unwanted readable")
        attempt("add w c", lambda: p.add_writer(c.fileno(), c, "Wc"))
        step("c writable")
        step("c writable, unwanted")
        harness.wakeup.wakeup_thread_and_signal_safe()
        step("wakeup")
        attempt("add r c", lambda: p.add_reader(c.fileno(), c, "Rc"))
        attempt("forget c", lambda: p.forget(c.fileno()))
        attempt("forget c again", lambda: p.forget(c.fileno()))
        dead = socket.socket()
        dead_fd = dead.fileno()
        dead.close()
        attempt("add r dead", lambda: p.add_reader(dead_fd, None, "Rd"))
        attempt("add w -1", lambda: p.add_writer(-1, None, "Wd"))
        d.close()
        attempt("add r c hup", lambda: p.add_reader(c.fileno(), None, "Rc"))
        step("c hung up")
        step("c hung up, unwanted")
        attempt("wait nan", lambda: p.wait(float("nan")))
        p.close()
        attempt("add after close", lambda: p.add_reader(a.fileno(), a, "R"))
        attempt("wait after close", lambda: p.wait(0))
    finally:
        harness.close()
        for s in (a, b, c, d):
            s.close()
    return trace


def test_twins_behave_identically() -> None:
    compiled = _compiled_twin()
    assert compiled is not None, "compiled epoll poller not built; run scripts/test"
    assert _script(compiled) == _script(_epoll_py.EpollPoller)


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


# --------------------------------------------------------------------------- through run()


def io_stats() -> EpollStatistics:
    stats = lowlevel.current_statistics().io_statistics
    assert stats.backend == "epoll"
    return stats  # type: ignore[no-any-return]


@pytest.mark.parametrize("as_fileno", [False, True], ids=["socket", "fileno"])
@trio_test
async def test_wait_readable_blocks_until_data_arrives(as_fileno: bool) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        target = a.fileno() if as_fileno else a
        record: list[str] = []

        async def reader() -> None:
            with assert_checkpoints():
                await lowlevel.wait_readable(target)
            record.append(a.recv(10).decode())

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            assert record == []
            b.send(b"hello")
        assert record == ["hello"]


@pytest.mark.parametrize("as_fileno", [False, True], ids=["socket", "fileno"])
@trio_test
async def test_wait_writable_blocks_until_buffer_drains(as_fileno: bool) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        target = a.fileno() if as_fileno else a
        with assert_checkpoints():
            await lowlevel.wait_writable(target)  # writable from the start
        fill(a)
        record: list[str] = []

        async def writer() -> None:
            with assert_checkpoints():
                await lowlevel.wait_writable(target)
            record.append("writable")

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(writer)
            await wait_all_tasks_blocked()
            assert record == []
            drain(b)
        assert record == ["writable"]


@trio_test
async def test_wait_on_ready_fd_is_still_a_checkpoint() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.send(b"x")
        with assert_checkpoints():
            await lowlevel.wait_readable(a)
        with vivace.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(vivace.Cancelled):
                await lowlevel.wait_readable(a)
            with pytest.raises(vivace.Cancelled):
                await lowlevel.wait_writable(a)
        assert io_stats().tasks_waiting_write == 0


@pytest.mark.parametrize("direction", ["read", "write"])
@trio_test
async def test_second_waiter_in_same_direction_is_busy(direction: str) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        fill(a)
        wait = lowlevel.wait_readable if direction == "read" else lowlevel.wait_writable
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(wait, a)
            await wait_all_tasks_blocked()
            with pytest.raises(vivace.BusyResourceError) as info:
                await wait(a.fileno())
            verb = "reading from" if direction == "read" else "writing to"
            assert str(info.value) == f"another task is already {verb} this fd"
            nursery.cancel_scope.cancel()


@trio_test
async def test_reader_and_writer_wait_on_one_fd_at_once() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        fill(a)
        record: list[str] = []

        async def reader() -> None:
            await lowlevel.wait_readable(a)
            record.append("r")

        async def writer() -> None:
            await lowlevel.wait_writable(a)
            record.append("w")

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(writer)
            await wait_all_tasks_blocked()
            assert record == []
            b.send(b"x")
            await wait_all_tasks_blocked()
            assert record == ["r"]
            drain(b)
            await wait_all_tasks_blocked()
            assert record == ["r", "w"]


@pytest.mark.parametrize("as_fileno", [False, True], ids=["socket", "fileno"])
@trio_test
async def test_notify_closing_wakes_waiters_with_closed_resource_error(as_fileno: bool) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        fill(a)
        errors: list[BaseException] = []

        async def waiter(wait: Callable[[Any], Any]) -> None:
            with pytest.raises(vivace.ClosedResourceError) as info:
                await wait(a)
            errors.append(info.value)

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter, lowlevel.wait_readable)
            nursery.start_soon(waiter, lowlevel.wait_writable)
            await wait_all_tasks_blocked()
            base = io_stats()
            assert (base.tasks_waiting_read, base.tasks_waiting_write) >= (1, 1)
            lowlevel.notify_closing(a.fileno() if as_fileno else a)
            after = io_stats()
            assert after.tasks_waiting_read == base.tasks_waiting_read - 1
            assert after.tasks_waiting_write == base.tasks_waiting_write - 1
        assert [str(e) for e in errors] == ["another task closed this fd"] * 2
        assert errors[0] is not errors[1]


@trio_test
async def test_notify_closing_without_waiters_is_fine() -> None:
    await wait_all_tasks_blocked()  # let the system tasks settle into their waits
    base = io_stats()
    a, b = socket.socketpair()
    with a, b:
        lowlevel.notify_closing(a)
        lowlevel.notify_closing(a.fileno())
        assert io_stats() == base
        # Nothing lingers: a later waiter on the same (still open) fd parks and is
        # woken by data, not by the earlier notification.
        got: list[bytes] = []

        async def reader() -> None:
            await lowlevel.wait_readable(a)
            got.append(a.recv(1))

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            assert got == []
            assert io_stats().tasks_waiting_read == base.tasks_waiting_read + 1
            b.send(b"x")
        assert got == [b"x"]
    lowlevel.notify_closing(a)  # closed: fileno() is -1
    lowlevel.notify_closing(-1)
    assert io_stats() == base


def _pair_with_fd(fd: int | None) -> SocketPair:
    """A socketpair whose first socket has number ``fd`` (the lowest free number is
    reused, but either end of the new pair may get it)."""
    a, b = socket.socketpair()
    if fd is not None and a.fileno() != fd:
        a, b = b, a
    assert fd is None or a.fileno() == fd
    return a, b


@trio_test
async def test_notify_closing_then_close_then_reuse_fd_number() -> None:
    await wait_all_tasks_blocked()  # let the system tasks settle into their waits
    base = io_stats()
    fd = None
    for _ in range(3):
        a, b = _pair_with_fd(fd)
        fd = a.fileno()
        with b:
            b.send(b"x")
            await lowlevel.wait_readable(a)
            lowlevel.notify_closing(a)
            a.close()
    a, b = _pair_with_fd(fd)
    got: list[bytes] = []

    async def reader() -> None:
        await lowlevel.wait_readable(a)
        got.append(a.recv(1))

    with a, b:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            assert got == []
            b.send(b"y")
    # The new socket behind the reused number is watched afresh: woken by its data.
    assert got == [b"y"]
    assert io_stats() == base


@pytest.mark.parametrize("wait_name", ["wait_readable", "wait_writable"])
@trio_test
async def test_wait_on_closed_fd_raises_ebadf(wait_name: str) -> None:
    s = socket.socket()
    fd = s.fileno()
    s.close()
    with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$"):
        await getattr(lowlevel, wait_name)(fd)


@trio_test
async def test_wait_rejects_bad_fd_arguments() -> None:
    with pytest.raises(ValueError, match="negative"):
        await lowlevel.wait_readable(-1)
    with pytest.raises(TypeError):
        await lowlevel.wait_readable("nope")  # type: ignore[arg-type]


@trio_test
async def test_cancelled_waits_leave_no_waiters_behind() -> None:
    await wait_all_tasks_blocked()  # let the system tasks settle into their waits
    base = io_stats()
    socks = [socket.socketpair() for _ in range(3)]
    for pair_ in socks:
        for sock in pair_:
            sock.setblocking(False)
    try:
        fill(socks[0][0])
        fill(socks[2][0])
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(lowlevel.wait_writable, socks[0][0])
            nursery.start_soon(lowlevel.wait_readable, socks[1][0])
            nursery.start_soon(lowlevel.wait_readable, socks[1][1])
            nursery.start_soon(lowlevel.wait_writable, socks[2][0])
            nursery.start_soon(lowlevel.wait_readable, socks[2][0])
            await wait_all_tasks_blocked()
            stats = io_stats()
            assert stats.tasks_waiting_read == base.tasks_waiting_read + 3
            assert stats.tasks_waiting_write == base.tasks_waiting_write + 2
            nursery.cancel_scope.cancel()
        assert io_stats() == base
        # And the fds are usable again by new waiters.
        socks[1][1].send(b"x")
        await lowlevel.wait_readable(socks[1][0])
    finally:
        for x, y in socks:
            x.close()
            y.close()


@trio_test
async def test_cancel_then_data_then_rewait() -> None:
    a, b = socket.socketpair()
    with a, b:
        with vivace.move_on_after(0.01):
            await lowlevel.wait_readable(a)
        b.send(b"x")  # readiness nobody waits for
        await vivace.sleep(0)
        await lowlevel.wait_readable(a)
        assert a.recv(1) == b"x"


@trio_test
async def test_socket_streaming_both_ways() -> None:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 10000)
    a.setblocking(False)
    b.setblocking(False)
    total = 300_000
    results: dict[str, int] = {}

    async def sender(sock: socket.socket, key: str) -> None:
        sent = 0
        chunk = b"x" * 7001
        while sent < total:
            await lowlevel.wait_writable(sock)
            sent += sock.send(chunk[: total - sent])
        sock.shutdown(socket.SHUT_WR)
        results[key] = sent

    async def receiver(sock: socket.socket, key: str) -> None:
        received = 0
        while True:
            await lowlevel.wait_readable(sock)
            data = sock.recv(65536)
            if not data:
                break
            received += len(data)
        results[key] = received

    with a, b:
        with vivace.fail_after(20):
            async with vivace.open_nursery() as nursery:
                nursery.start_soon(sender, a, "sent a")
                nursery.start_soon(sender, b, "sent b")
                nursery.start_soon(receiver, a, "got a")
                nursery.start_soon(receiver, b, "got b")
    assert results == {"sent a": total, "sent b": total, "got a": total, "got b": total}


@trio_test
async def test_socket_streaming_rewaits_without_epoll_ctl_churn() -> None:
    from vivace._core._run import _runner

    poller = _runner().io_manager._poller
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        rounds = 200

        async def receiver() -> None:
            for _ in range(rounds):
                await lowlevel.wait_readable(a)
                a.recv(10)

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await wait_all_tasks_blocked()
            before = poller.ctl_calls
            for _ in range(rounds - 1):
                b.send(b"x")
                await wait_all_tasks_blocked()
            after = poller.ctl_calls
            b.send(b"x")
        assert after - before <= 2


@trio_test
async def test_unnotified_close_scenarios_are_survivable() -> None:
    # Closing an fd without notify_closing is a bug in the caller, but waits may
    # only return, raise OSError, or stay cancellable -- never wedge the run.
    ended: list[str] = []

    async def tolerant(wait: Callable[[Any], Any], fd: Any) -> None:
        try:
            await wait(fd)
        except OSError:
            ended.append("OSError")
        except vivace.Cancelled:
            ended.append("cancelled")
            raise
        else:
            ended.append("returned")

    def all_ended(tasks: int) -> bool:
        # Every waiter came out one of the tolerated ways, none is left parked.
        done = len(ended) == tasks and set(ended) <= {"OSError", "cancelled", "returned"}
        ended.clear()
        return done

    await wait_all_tasks_blocked()  # let the system tasks settle into their waits
    base = io_stats()

    with socket.socket() as s:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(tolerant, lowlevel.wait_readable, s.fileno())
            await wait_all_tasks_blocked()
            s.close()
            await wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert all_ended(1)
    assert io_stats() == base

    with socket.socket() as s, s.dup():
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(tolerant, lowlevel.wait_readable, s.fileno())
            await wait_all_tasks_blocked()
            s.close()
            await wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert all_ended(1)
    assert io_stats() == base

    for trigger in ["cancel", "data"]:
        a, b = socket.socketpair()
        with a, b, a.dup() as a2:
            a.setblocking(False)
            b.setblocking(False)
            fill(a)
            done = vivace.Event()

            async def watch_a2(a2: socket.socket, done: vivace.Event) -> None:
                await lowlevel.wait_readable(a2)
                done.set()

            async with vivace.open_nursery() as nursery:
                fd = a.fileno()
                nursery.start_soon(tolerant, lowlevel.wait_readable, fd)
                nursery.start_soon(tolerant, lowlevel.wait_writable, fd)
                nursery.start_soon(watch_a2, a2, done)
                await wait_all_tasks_blocked()
                a.close()
                if trigger == "data":
                    b.send(b"x")
                    await done.wait()
                    await wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
            assert done.is_set() == (trigger == "data")
        assert all_ended(2)
        assert io_stats() == base
        # The run still works afterwards.
        c, d = socket.socketpair()
        with c, d:
            d.send(b"z")
            await lowlevel.wait_readable(c)
            assert c.recv(1) == b"z"


@pytest.mark.parametrize("pass_socket", [False, True], ids=["fileno", "socket"])
@trio_test
async def test_fd_number_reused_after_unnotified_close(pass_socket: bool) -> None:
    # The same task is woken, closes the socket without notify_closing, and waits on
    # a new socket that got the same fd number -- all in one batch.
    a, b = socket.socketpair()
    fd = a.fileno()
    b.send(b"x")
    with vivace.fail_after(5):
        for _ in range(5):
            await lowlevel.wait_readable(a if pass_socket else a.fileno())
            a.close()
            b.close()
            a, b = socket.socketpair()
            if a.fileno() != fd:
                a, b = b, a
            assert a.fileno() == fd
            b.send(b"x")
    a.close()
    b.close()


@trio_test
async def test_wrapper_whose_fileno_changes_is_not_trusted() -> None:
    class Conn:
        def __init__(self) -> None:
            self.sock, self.peer = socket.socketpair()

        def fileno(self) -> int:
            return self.sock.fileno()

        def reconnect(self) -> None:
            self.sock.close()
            self.peer.close()
            self.sock, self.peer = socket.socketpair()
            if self.sock.fileno() > self.peer.fileno():
                self.sock, self.peer = self.peer, self.sock

    conn = Conn()
    try:
        with vivace.fail_after(5):
            for i in range(4):
                conn.peer.send(b"%d" % i)
                await lowlevel.wait_readable(conn)
                # Woken for the socket behind fileno() now, not an earlier one.
                assert conn.sock.recv(1) == b"%d" % i
                conn.reconnect()
    finally:
        conn.sock.close()
        conn.peer.close()


@trio_test
async def test_many_fds_wake_and_leak_nothing() -> None:
    count = 1000
    await wait_all_tasks_blocked()
    base = io_stats()
    before = open_fds()
    pairs = [socket.socketpair() for _ in range(count)]
    try:
        woken = 0

        async def reader(sock: socket.socket) -> None:
            nonlocal woken
            await lowlevel.wait_readable(sock)
            assert sock.recv(1) == b"x"
            woken += 1

        async with vivace.open_nursery() as nursery:
            for a, _ in pairs:
                nursery.start_soon(reader, a)
            await wait_all_tasks_blocked()
            assert io_stats().tasks_waiting_read == base.tasks_waiting_read + count
            for _, b in pairs:
                b.send(b"x")
        assert woken == count
        assert io_stats() == base
    finally:
        for a, b in pairs:
            lowlevel.notify_closing(a)
            a.close()
            b.close()
    assert open_fds() == before


def test_run_leaks_no_fds() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b:
            b.send(b"x")
            await lowlevel.wait_readable(a)

    vivace.run(main)  # warm up lazily created resources (thread caches, ...)
    gc.collect()
    before = open_fds()
    for _ in range(3):
        vivace.run(main)
    gc.collect()
    assert open_fds() == before


def test_force_wakeup_from_thread_ends_the_runs_blocking_wait() -> None:
    # MockClock without autojump: the sleep below blocks the run in get_events with
    # a huge timeout. Only the manager's force_wakeup, from another thread, can make
    # that wait return; afterwards the thread ends the sleep through run_sync_soon.
    blocked = threading.Event()
    returned = threading.Event()

    class Recorder(vivace.abc.Instrument):
        def before_io_wait(self, timeout: float) -> None:
            if timeout > 1000:
                blocked.set()

        def after_io_wait(self, timeout: float) -> None:
            if timeout > 1000:
                returned.set()

    clock = vivace.testing.MockClock()
    early: list[bool] = []

    async def main() -> None:
        from vivace._core._run import _runner

        manager = _runner().io_manager
        token = lowlevel.current_trio_token()

        run_thread = threading.get_native_id()

        def poke() -> None:
            try:
                if blocked.wait(THREAD_TIMEOUT):
                    until_blocked_in_epoll(run_thread)
                    early.append(returned.is_set())
                    manager.force_wakeup()
                    early.append(returned.wait(THREAD_TIMEOUT))
            finally:
                token.run_sync_soon(clock.jump, 100)

        thread = threading.Thread(target=poke)
        thread.start()
        try:
            await vivace.sleep(50)
        finally:
            thread.join(2 * THREAD_TIMEOUT)

    vivace.run(main, clock=clock, instruments=[Recorder()])
    assert early == [False, True]


def test_guest_mode_waits_for_io_in_a_worker_thread() -> None:
    import queue

    todo: queue.Queue[Callable[[], object]] = queue.Queue()
    done: list[outcome.Outcome[Any]] = []

    async def main() -> str:
        a, b = socket.socketpair()
        with a, b:
            timer = threading.Timer(0.02, b.send, (b"ping",))
            timer.start()
            await lowlevel.wait_readable(a)
            timer.join()
            return a.recv(10).decode()

    lowlevel.start_guest_run(main, run_sync_soon_threadsafe=todo.put, done_callback=done.append)
    deadline = time.monotonic() + THREAD_TIMEOUT
    while not done:
        todo.get(timeout=max(0.0, deadline - time.monotonic()))()
    assert done[0].unwrap() == "ping"
