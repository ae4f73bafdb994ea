"""The poll(2) backend: the poller twins driven directly with a fake reschedule (the
reference, and the compiled one when it is built: same return values, counters and
errors), a fd closed behind our back (EBADF at arm time, POLLNVAL while parked),
``wait`` timeouts and errors, one script replayed on both twins, and the manager
through ``vivace.run`` under ``VIVACE_IO_BACKEND=poll``.
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import outcome
import pytest

import vivace
from _io_epoll_support import THREAD_TIMEOUT, Harness, SocketPair, drain, fill
from vivace import lowlevel
from vivace._core import _impl, _io_manager, _poll_py
from vivace._core._io_poll import PollIOManager, PollStatistics
from vivace.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.skipif(not hasattr(select, "poll"), reason="needs poll(2)")


def _compiled_twin() -> Any:
    try:
        from vivace._core._ext._poll import PollPoller  # type: ignore[import-not-found]
    except ImportError:
        if _impl.ENGINE == "compiled":  # pragma: no cover
            raise
        return None
    return PollPoller


def _twins() -> list[Any]:
    params = [pytest.param(_poll_py.PollPoller, id="reference")]
    compiled = _compiled_twin()
    if compiled is not None:
        params.append(pytest.param(compiled, id="compiled"))
    return params


@pytest.fixture(name="h", params=_twins())
def h_fixture(request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness = Harness(request.param)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(name="pair")
def pair_fixture() -> Iterator[SocketPair]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


def _closed_fd() -> int:
    """A number that is not open now (the lowest free one, so nothing reuses it
    before the test opens something)."""
    s = socket.socket()
    fd = s.fileno()
    s.close()
    return fd


# --------------------------------------------------------------------------- the poller


def test_engine_uses_its_own_poller_twin() -> None:
    if _impl.ENGINE == "compiled":
        assert _impl.PollPoller is _compiled_twin()
    else:
        assert _impl.PollPoller is _poll_py.PollPoller


def test_poller_is_final_and_has_no_kernel_object(h: Harness) -> None:
    cls = type(h.poller)
    with pytest.raises(TypeError, match="not an acceptable base type"):
        type("Sub", (cls,), {})
    assert h.poller.backend == "poll"
    assert h.poller.fileno() == -1
    # Adding the wakeup fd is the one set edit a new poller made, as on epoll.
    assert (h.poller.ctl_calls, h.poller.registered_fds, h.poller.rebuilds) == (1, 0, 0)


def test_poller_wakes_reader_when_data_arrives(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    assert h.poller.add_reader(a.fileno(), None, "R") is False
    assert (h.poller.tasks_waiting_read, h.poller.registered_fds) == (1, 1)
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
    fill(a)
    assert h.poller.add_reader(fd, None, "R1") is False
    assert h.poller.add_reader(fd, a, "R2") is True
    assert h.poller.add_writer(fd, None, "W1") is False
    assert h.poller.add_writer(fd, a, "W2") is True
    assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (1, 1)
    assert h.poll() == ([], False)


def test_poller_counts_each_edit_of_the_set(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    fd = a.fileno()
    fill(a)
    base = h.poller.ctl_calls
    h.poller.add_reader(fd, a, "R")  # register
    h.poller.add_writer(fd, a, "W")  # modify: both directions
    assert h.poller.ctl_calls == base + 2
    b.send(b"x")
    assert h.poll() == (["R"], False)
    # Lazy disarm: the same socket object waits again without touching the set.
    h.poller.add_reader(fd, a, "R")
    assert h.poller.ctl_calls == base + 2
    # Without an owner there is no proof the file is the same: it re-arms.
    h.poller.remove_reader(fd, "R")
    h.poller.add_reader(fd, None, "R")
    assert h.poller.ctl_calls == base + 3
    assert h.poller.forget(fd) == ("R", "W")  # unregister
    assert (h.poller.ctl_calls, h.poller.registered_fds) == (base + 4, 0)
    assert h.poller.forget(fd) is None
    assert h.poller.ctl_calls == base + 4


def test_poller_drops_a_ready_direction_nobody_waits_for(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    fd = a.fileno()
    h.poller.add_reader(fd, a, "R")
    h.poller.remove_reader(fd, "R")
    b.send(b"x")
    base = h.poller.ctl_calls
    assert h.poll() == ([], False)  # one spurious event: the direction is dropped
    assert (h.poller.ctl_calls, h.poller.registered_fds) == (base + 1, 0)
    assert not h.poller.wait(0)  # and not reported again: no busy loop


def test_poller_hangup_wakes_both_directions(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    fill(a)
    h.poller.add_reader(a.fileno(), a, "R")
    h.poller.add_writer(a.fileno(), a, "W")
    b.close()
    assert h.poll() == (["R", "W"], False)


def test_poller_wakeup_fd_reports_woke(h: Harness) -> None:
    h.wakeup.wakeup_thread_and_signal_safe()
    assert h.poll() == ([], True)
    assert h.poll() == ([], False)


def test_poller_refuses_a_closed_fd_at_once(h: Harness) -> None:
    fd = _closed_fd()
    base = h.poller.ctl_calls
    with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$") as info:
        h.poller.add_reader(fd, None, "R")
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError, match="Bad file descriptor"):
        h.poller.add_writer(fd, None, "W")
    # Each refused arm was one call, as a refused epoll_ctl is; nothing was kept.
    assert h.poller.ctl_calls == base + 2
    assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (0, 0)
    assert h.poller.registered_fds == 0


def test_poller_rejects_a_negative_fd(h: Harness) -> None:
    with pytest.raises(ValueError, match=r"negative integer \(-1\)"):
        h.poller.add_reader(-1, None, "R")


def test_poller_accepts_regular_files_as_always_ready(h: Harness, tmp_path: Any) -> None:
    # epoll refuses them (EPERM); poll(2) reports them ready, as kqueue and trio's
    # backends there do.
    with open(tmp_path / "f", "wb") as f:
        assert h.poller.add_writer(f.fileno(), None, "W") is False
        assert h.poll() == (["W"], False)
        h.poller.forget(f.fileno())


# ------------------------------------------------------------ closed behind our back


def test_fd_closed_while_parked_fails_its_waiters_with_ebadf(h: Harness) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    fd = a.fileno()
    fill(a)
    try:
        h.poller.add_reader(fd, None, "R")
        h.poller.add_writer(fd, None, "W")
        a.close()  # no notify_closing: the number is now closed (POLLNVAL)
        assert h.poller.dispatch(h.poller.wait(0)) is False
        calls = h.resched.calls
        assert [task for task, _ in calls] == ["R", "W"]
        assert all(isinstance(r, outcome.Error) for _, r in calls)
        errors = [(type(r.error), r.error.errno) for _, r in calls]  # type: ignore[union-attr]
        assert errors == [(OSError, errno.EBADF)] * 2
        calls.clear()
        assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (0, 0)
        assert (h.poller.registered_fds, h.poller.rebuilds) == (0, 0)
        assert not h.poller.wait(0)  # dropped from the set: no busy loop
    finally:
        a.close()
        b.close()


def test_fd_closed_with_no_waiters_left_is_dropped(h: Harness) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    try:
        h.poller.add_reader(fd, a, "R")
        h.poller.remove_reader(fd, "R")  # still armed (lazy disarm)
        assert h.poller.registered_fds == 1
        a.close()
        assert h.poll() == ([], False)
        assert h.resched.calls == []
        assert h.poller.registered_fds == 0
        assert not h.poller.wait(0)
    finally:
        b.close()


def test_fd_closed_and_other_fds_in_one_batch(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    c, d = socket.socketpair()
    try:
        h.poller.add_reader(a.fileno(), a, "Ra")
        h.poller.add_reader(c.fileno(), None, "Rc")
        c.close()
        b.send(b"x")
        h.wakeup.wakeup_thread_and_signal_safe()
        tasks, woke = h.poll()
        assert sorted(tasks) == ["Ra", "Rc"]  # type: ignore[type-var]
        assert woke is True
        assert h.poller.registered_fds == 1
    finally:
        c.close()
        d.close()


def test_stale_event_needs_no_rebuild(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    h.poller.add_reader(a.fileno(), a, "R")
    b.send(b"x")
    events = h.poller.wait(0)
    assert events
    h.poller.forget(a.fileno())  # the batch is now stale
    assert h.poller.dispatch(events) is False
    assert h.resched.calls == []
    assert h.poller.rebuilds == 0


# --------------------------------------------------------------------------- waiting


@pytest.mark.parametrize("timeout", [0, -1.0, -math.inf, 1e-9])
def test_wait_with_a_short_timeout_returns_nothing(h: Harness, timeout: float) -> None:
    assert not h.poller.wait(timeout)


@pytest.mark.parametrize("timeout", [math.inf, 1e300, 2**31, 2147483.647])
def test_wait_with_a_long_timeout_returns_when_woken(h: Harness, timeout: float) -> None:
    # Clamped to poll(2)'s int of milliseconds (or no limit), never an OverflowError.
    h.wakeup.wakeup_thread_and_signal_safe()
    assert h.poller.dispatch(h.poller.wait(timeout)) is True


def test_wait_rejects_nan(h: Harness) -> None:
    with pytest.raises(ValueError, match="^timeout must not be NaN$"):
        h.poller.wait(math.nan)


def test_wait_from_a_second_thread_is_refused(h: Harness) -> None:
    results: list[object] = []
    entered = threading.Event()

    def blocked() -> None:
        entered.set()
        while True:
            try:
                results.append(h.poller.wait(math.inf))
            except RuntimeError:
                continue  # the main thread's wait(0) below was in the poller: retry
            return

    thread = threading.Thread(target=blocked)
    thread.start()
    entered.wait(THREAD_TIMEOUT)
    # Either the thread is in poll(2) (refused), or it has not got there yet: retry
    # until the refusal is seen, then wake it; no fixed delay.
    refused = None
    while refused is None and thread.is_alive():
        try:
            events = h.poller.wait(0)
        except RuntimeError as exc:
            refused = exc
        else:
            h.poller.dispatch(events)
            threading.Event().wait(0.001)
    h.wakeup.wakeup_thread_and_signal_safe()
    thread.join(THREAD_TIMEOUT)
    assert not thread.is_alive()
    assert str(refused) == "another thread is already waiting in this poller"
    assert results and h.poller.dispatch(results[0]) is True


def test_closed_poller_refuses_waits_and_waiters(h: Harness, pair: SocketPair) -> None:
    a, _ = pair
    h.poller.add_reader(a.fileno(), a, "R")
    h.poller.close()
    assert h.poller.closed
    assert (h.poller.tasks_waiting_read, h.poller.registered_fds) == (0, 0)
    with pytest.raises(RuntimeError, match="^the poll poller is closed$"):
        h.poller.wait(0)
    with pytest.raises(RuntimeError, match="^the poll poller is closed$"):
        h.poller.add_writer(a.fileno(), a, "W")
    assert h.poller.forget(a.fileno()) is None
    assert h.poller.dispatch([]) is False
    assert h.poller.fileno() == -1
    h.poller.close()  # idempotent


# ------------------------------------------------------------------ the twins compared


def _script(cls: Any) -> list[object]:
    """Drive a twin through a fixed scenario; return everything observable."""
    trace: list[object] = []
    harness = Harness(cls)
    p = harness.poller

    def note(label: str, value: object = None) -> None:
        counters = (p.tasks_waiting_read, p.tasks_waiting_write, p.ctl_calls)
        trace.append((label, value, *counters, p.registered_fds, p.rebuilds))

    def step(label: str) -> None:
        woke = p.dispatch(p.wait(0))
        if woke:
            harness.wakeup.drain()
        calls = harness.resched.calls
        tasks = [task for task, _ in calls]
        errors = [
            (type(r.error).__name__, str(r.error)) for _, r in calls if isinstance(r, outcome.Error)
        ]
        calls.clear()
        note(label, (tasks, woke, errors))

    def attempt(label: str, fn: Callable[[], object]) -> None:
        try:
            note(label, fn())
        except Exception as exc:  # noqa: BLE001  (the trace records it)
            note(label, (type(exc).__name__, str(exc)))

    a, b = socket.socketpair()
    c, d = socket.socketpair()
    e, f = socket.socketpair()
    for s in (a, b, c, d, e, f):
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
        dead = _closed_fd()
        attempt("add r dead", lambda: p.add_reader(dead, None, "Rd"))
        attempt("add w -1", lambda: p.add_writer(-1, None, "Wd"))
        d.close()
        attempt("add r c hup", lambda: p.add_reader(c.fileno(), None, "Rc"))
        step("c hung up")
        step("c hung up, unwanted")
        fill(e)
        attempt("add r e", lambda: p.add_reader(e.fileno(), e, "Re"))
        attempt("add w e", lambda: p.add_writer(e.fileno(), e, "We"))
        e.close()
        step("e closed behind our back")
        step("e gone")
        attempt("wait nan", lambda: p.wait(float("nan")))
        attempt("fileno", p.fileno)
        p.close()
        attempt("add after close", lambda: p.add_reader(a.fileno(), a, "R"))
        attempt("wait after close", lambda: p.wait(0))
        attempt("fileno after close", p.fileno)
    finally:
        harness.close()
        for s in (a, b, c, d, e, f):
            s.close()
    return trace


def test_reference_script_trace() -> None:
    trace = {label: rest for label, *rest in _script(_poll_py.PollPoller)}  # type: ignore[misc]
    assert trace["a readable"][0] == (["Ra"], False, [])
    assert trace["add r dead"][0] == ("OSError", "[Errno 9] Bad file descriptor")
    assert trace["e closed behind our back"][0] == (
        ["Re", "We"],
        False,
        [("OSError", "[Errno 9] Bad file descriptor")] * 2,
    )
    assert trace["e gone"][0] == ([], False, [])
    assert trace["wait after close"][0] == ("RuntimeError", "the poll poller is closed")
    assert all(rest[-1] == 0 for rest in trace.values())  # never a rebuild


def test_twins_behave_identically() -> None:
    compiled = _compiled_twin()
    if compiled is None:
        pytest.skip("the compiled poll poller is not built")
    assert _script(compiled) == _script(_poll_py.PollPoller)


# -------------------------------------------------------------- the manager, through run


@pytest.fixture(name="poll_backend")
def poll_backend_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_io_manager.ENV_VAR, "poll")


def test_poll_is_available_wherever_poll_exists() -> None:
    assert "poll" in _io_manager.available_backends()


@pytest.mark.usefixtures("poll_backend")
def test_run_uses_poll_and_wakes_a_reader() -> None:
    async def main() -> tuple[object, object, bytes]:
        a, b = socket.socketpair()
        a.setblocking(False)
        with a, b:
            seen: list[object] = []
            async with vivace.open_nursery() as nursery:

                async def reader() -> None:
                    await lowlevel.wait_readable(a)
                    seen.append(a.recv(10))

                nursery.start_soon(reader)
                await wait_all_tasks_blocked()
                during = lowlevel.current_statistics().io_statistics
                b.send(b"hi")
            after = lowlevel.current_statistics().io_statistics
            return during, after, seen[0]  # type: ignore[return-value]

    during, after, data = vivace.run(main)
    assert isinstance(during, PollStatistics) and isinstance(after, PollStatistics)
    assert during.backend == "poll"
    assert during.tasks_waiting_read == after.tasks_waiting_read + 1
    assert data == b"hi"


@pytest.mark.usefixtures("poll_backend")
def test_run_on_poll_notify_closing_and_busy() -> None:
    async def main() -> list[str]:
        got: list[str] = []
        a, b = socket.socketpair()
        a.setblocking(False)
        with a, b:
            async with vivace.open_nursery() as nursery:

                async def reader() -> None:
                    try:
                        await lowlevel.wait_readable(a)
                    except vivace.ClosedResourceError:
                        got.append("closed")

                nursery.start_soon(reader)
                await wait_all_tasks_blocked()
                with pytest.raises(vivace.BusyResourceError):
                    await lowlevel.wait_readable(a)
                got.append("busy")
                lowlevel.notify_closing(a)
        return got

    assert vivace.run(main) == ["busy", "closed"]


@pytest.mark.usefixtures("poll_backend")
def test_run_on_poll_refuses_a_closed_fd() -> None:
    async def main() -> None:
        with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$"):
            await lowlevel.wait_readable(_closed_fd())

    vivace.run(main)


@pytest.mark.usefixtures("poll_backend")
def test_make_io_manager_gives_the_poll_manager() -> None:
    manager = _io_manager.make_io_manager()
    try:
        assert type(manager) is PollIOManager
        assert manager.statistics() == PollStatistics(0, 0)
        assert manager.statistics().backend == "poll"
    finally:
        manager.close()
    assert os.environ[_io_manager.ENV_VAR] == "poll"
