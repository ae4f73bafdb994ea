"""The kqueue backend on Linux, over tests/_fake_kqueue.py's emulation of
``select.kqueue``: the emulation itself (kevent(2) as macOS/FreeBSD document it), the
reference poller ``_kqueue_py.KqueuePoller`` driven directly with a fake reschedule,
``KqueueIOManager`` inside a run of the loaded engine (its fd waits, trio's
``monitor_kevent``/``wait_kevent`` semantics, statistics), the backend's selection, and
that Linux's ``lowlevel`` has none of trio's kqueue names.

The reference poller subclasses the pure-Python ``ReadinessTable``, so it runs under
either engine; the compiled twin (``_ext/_kqueue``) is built only on macOS/BSD. The
manager is driven as a second manager in the test's own run (its events pumped by the
test), so it too runs under either engine; only a run *on* the kqueue backend needs the
reference engine here (the compiled engine refuses it with a clear error, tested).
"""

from __future__ import annotations

import errno
import math
import select
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

import _fake_kqueue as fk
import vivace
from _io_epoll_support import Harness, SocketPair, fill
from vivace import lowlevel
from vivace._core import _impl, _io_kqueue, _io_manager, _kqueue_py
from vivace._core._io_kqueue import KqueueIOManager, KqueueStatistics
from vivace.testing import wait_all_tasks_blocked

READ, WRITE = fk.KQ_FILTER_READ, fk.KQ_FILTER_WRITE


@pytest.fixture(autouse=True)
def fake_select(monkeypatch: pytest.MonkeyPatch) -> None:
    """``select`` with the emulation (already there when the site hook installed it)."""
    if not hasattr(select, "kqueue"):
        monkeypatch.setattr(select, "kqueue", fk.kqueue, raising=False)
        monkeypatch.setattr(select, "kevent", fk.kevent, raising=False)
        for name, value in fk.CONSTANTS.items():
            monkeypatch.setattr(select, name, value, raising=False)


@pytest.fixture(name="pair")
def pair_fixture() -> Iterator[SocketPair]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


@pytest.fixture(name="h")
def h_fixture() -> Iterator[Harness]:
    harness = Harness(_kqueue_py.KqueuePoller)
    try:
        yield harness
    finally:
        harness.close()


def _closed_fd() -> int:
    s = socket.socket()
    fd = s.fileno()
    s.close()
    return fd


def _keys(kq: Any) -> set[tuple[int, int]]:
    return set(kq._knotes)


# ------------------------------------------------------------------------ the emulation


def test_fake_kevent_fields_equality_and_constants() -> None:
    ev = fk.kevent(5)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata) == (5, READ, 1, 0, 0, 0)
    assert ev == fk.kevent(5, READ, fk.KQ_EV_ADD)
    assert ev != fk.kevent(5, WRITE)
    assert fk.kevent(4) < ev
    with pytest.raises(TypeError):
        hash(ev)
    with socket.socket() as s:
        assert fk.kevent(s).ident == s.fileno()
    assert (fk.KQ_EV_DELETE, fk.KQ_EV_ONESHOT, fk.KQ_EV_EOF) == (2, 0x10, 0x8000)


def test_fake_add_report_delete_and_enoent(pair: SocketPair) -> None:
    a, b = pair
    kq = fk.kqueue()
    try:
        assert kq.control([fk.kevent(a, READ, fk.KQ_EV_ADD)], 0) == []
        assert kq.control(None, 4, 0) == []
        b.send(b"abc")
        (ev,) = kq.control(None, 4, 0)
        assert (ev.ident, ev.filter, ev.data) == (a.fileno(), READ, 3)
        assert ev.flags & fk.KQ_EV_ADD and not ev.flags & fk.KQ_EV_EOF
        assert len(kq.control(None, 4, 0)) == 1  # level-triggered
        kq.control([fk.kevent(a, READ, fk.KQ_EV_DELETE)], 0)
        assert kq.control(None, 4, 0) == []
        with pytest.raises(FileNotFoundError) as info:
            kq.control([fk.kevent(a, READ, fk.KQ_EV_DELETE)], 0)
        assert info.value.errno == errno.ENOENT
    finally:
        kq.close()
    assert kq.closed
    with pytest.raises(ValueError, match="closed kqueue"):
        kq.control(None, 1, 0)


def test_fake_errors_and_receipts() -> None:
    kq = fk.kqueue()
    bad = _closed_fd()
    try:
        with pytest.raises(OSError, match=r"Bad file descriptor") as info:
            kq.control([fk.kevent(bad, READ)], 0)
        assert info.value.errno == errno.EBADF
        with socket.socket() as s:
            bad = _closed_fd()  # s took the old one
            # With room, errors and receipts come back as EV_ERROR events.
            got = kq.control(
                [fk.kevent(s, READ, fk.KQ_EV_ADD | fk.KQ_EV_RECEIPT), fk.kevent(bad, WRITE)], 2, 0
            )
            assert [(e.ident, e.flags & fk.KQ_EV_ERROR, e.data) for e in got] == [
                (s.fileno(), fk.KQ_EV_ERROR, 0),
                (bad, fk.KQ_EV_ERROR, errno.EBADF),
            ]
            err = kq.control([fk.kevent(s, fk.KQ_FILTER_TIMER)], 1, 0)[0]
            assert err.data == errno.EINVAL
        with pytest.raises(ValueError, match="must be 0 or positive"):
            kq.control(None, -1, 0)
        with pytest.raises(ValueError, match="timeout"):
            kq.control(None, 1, -1)
    finally:
        kq.close()


def test_fake_oneshot_disable_clear_eof_and_close(pair: SocketPair) -> None:
    a, b = pair
    kq = fk.kqueue()
    try:
        kq.control([fk.kevent(a, WRITE, fk.KQ_EV_ADD | fk.KQ_EV_ONESHOT)], 0)
        (ev,) = kq.control(None, 2, 0)
        assert ev.flags & fk.KQ_EV_ONESHOT
        assert _keys(kq) == set() and kq.control(None, 2, 0) == []
        kq.control([fk.kevent(a, WRITE, fk.KQ_EV_ADD | fk.KQ_EV_DISABLE)], 0)
        assert kq.control(None, 2, 0) == []
        kq.control([fk.kevent(a, WRITE, fk.KQ_EV_ENABLE)], 0)
        assert len(kq.control(None, 2, 0)) == 1
        kq.control([fk.kevent(a, WRITE, fk.KQ_EV_DELETE)], 0)
        kq.control([fk.kevent(a, READ, fk.KQ_EV_ADD | fk.KQ_EV_CLEAR)], 0)
        b.send(b"x")
        assert len(kq.control(None, 2, 0)) == 1
        assert kq.control(None, 2, 0) == []  # EV_CLEAR: reported once per change
        b.send(b"y")
        assert kq.control(None, 2, 0)[0].data == 2
        b.close()
        (ev,) = kq.control(None, 2, 0)
        assert ev.flags & fk.KQ_EV_EOF
        # Closing an fd removes its registrations.
        c, d = socket.socketpair()
        with d:
            kq.control([fk.kevent(c, READ)], 0)
            fd = c.fileno()
            c.close()
            with pytest.raises(OSError) as info:
                kq.control([fk.kevent(fd, READ, fk.KQ_EV_DELETE)], 0)
            assert info.value.errno == errno.EBADF
            assert (fd, READ) not in _keys(kq)
    finally:
        kq.close()


# --------------------------------------------------------------------------- the poller


def test_engine_binds_the_reference_poller_on_linux() -> None:
    assert _impl.KqueuePoller is _kqueue_py.KqueuePoller
    assert not next(t.built for t in _impl.TWINS if t.reference == "_kqueue_py")


def test_poller_is_final_and_watches_the_wakeup_fd(h: Harness) -> None:
    with pytest.raises(TypeError, match="not an acceptable base type"):
        type("Sub", (type(h.poller),), {})
    assert h.poller.backend == "kqueue"
    assert h.poller.fileno() == h.poller.current_kqueue().fileno() > 0
    assert (h.poller.ctl_calls, h.poller.registered_fds, h.poller.rebuilds) == (1, 0, 0)
    h.wakeup.wakeup_thread_and_signal_safe()
    assert h.poll() == ([], True)


def test_poller_wakes_reader_and_writer(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    assert h.poller.add_reader(a.fileno(), None, "R") is False
    assert h.poll() == ([], False)
    b.send(b"x")
    assert h.poll() == (["R"], False)
    assert h.poller.add_writer(a.fileno(), None, "W") is False
    assert h.poll() == (["W"], False)
    assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (0, 0)


def test_poller_one_waiter_per_direction(h: Harness, pair: SocketPair) -> None:
    a, _ = pair
    fill(a)
    fd = a.fileno()
    assert h.poller.add_reader(fd, None, "R1") is False
    assert h.poller.add_reader(fd, a, "R2") is True
    assert h.poller.add_writer(fd, None, "W1") is False
    assert h.poller.add_writer(fd, a, "W2") is True
    assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (1, 1)
    assert _keys(h.poller.current_kqueue()) >= {(fd, READ), (fd, WRITE)}
    assert h.poller.forget(fd) == ("R1", "W1")
    assert (fd, READ) not in _keys(h.poller.current_kqueue())
    assert (fd, WRITE) not in _keys(h.poller.current_kqueue())
    assert h.poller.forget(fd) is None


def test_poller_lazy_disarm_and_owner_cache(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    fd = a.fileno()
    h.poller.add_reader(fd, a, "R")
    b.send(b"x")
    calls = h.poller.ctl_calls
    assert h.poll() == (["R"], False)
    # Woken: still registered, so the next wait by the same socket costs nothing.
    h.poller.add_reader(fd, a, "R")
    assert h.poll() == (["R"], False)
    assert h.poller.ctl_calls == calls
    # Ready with nobody waiting: dropped on its first event.
    assert h.poll() == ([], False)
    assert h.poller.ctl_calls == calls + 1
    assert (fd, READ) not in _keys(h.poller.current_kqueue())
    assert h.poller.registered_fds == 0


def test_poller_refuses_a_closed_fd_at_once(h: Harness) -> None:
    fd = _closed_fd()
    with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$"):
        h.poller.add_reader(fd, None, "R")
    with pytest.raises(OSError, match="Bad file descriptor"):
        h.poller.add_writer(fd, None, "W")
    assert (h.poller.tasks_waiting_read, h.poller.tasks_waiting_write) == (0, 0)
    assert h.poller.registered_fds == 0
    with pytest.raises(ValueError, match=r"negative integer \(-1\)"):
        h.poller.add_reader(-1, None, "R")


def test_poller_forgets_an_fd_closed_behind_its_back(h: Harness) -> None:
    a, b = socket.socketpair()
    with b:
        fd = a.fileno()
        h.poller.add_reader(fd, None, "R")
        a.close()  # kqueue drops the registration: nothing wakes R (call notify_closing)
        assert h.poll() == ([], False)
        assert h.poller.forget(fd) == ("R", None)  # deleting what is gone is fine
        assert h.poller.registered_fds == 0


def test_poller_half_failed_arm_is_undone(h: Harness, pair: SocketPair) -> None:
    class NoWrite(fk.kqueue):
        def _change(self, ch: fk.kevent) -> int:
            if ch.filter == WRITE and ch.flags & fk.KQ_EV_ADD:
                return errno.EINVAL
            return super()._change(ch)

    h.poller._kq.close()
    h.poller._kq = NoWrite()
    a, _ = pair
    fd = a.fileno()
    h.poller.add_reader(fd, None, "R")
    with pytest.raises(OSError, match="Invalid argument"):
        h.poller.add_writer(fd, None, "W")
    # The record is gone, its reader woken with the error, the kernel holds nothing.
    assert [task for task, _ in h.resched.calls] == ["R"]
    assert _keys(h.poller._kq) == set()
    assert h.poller.registered_fds == 0


def test_poller_wait_timeouts_and_errors(h: Harness) -> None:
    assert h.poller.wait(0) == []
    assert h.poller.wait(0.001) == []
    with pytest.raises(ValueError, match="NaN"):
        h.poller.wait(math.nan)
    h.wakeup.wakeup_thread_and_signal_safe()
    assert h.poller.wait(math.inf)
    h.poller.close()
    h.poller.close()
    assert h.poller.fileno() == -1
    with pytest.raises(RuntimeError, match="kqueue poller is closed"):
        h.poller.wait(0)
    with pytest.raises(RuntimeError, match="closed"):
        h.poller.add_reader(0, None, "R")


def test_poller_waits_with_room_for_its_registrations_and_routes(h: Harness) -> None:
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for i, (a, b) in enumerate(pairs):
            h.poller.add_reader(a.fileno(), None, f"R{i}")
            b.send(b"x")
        h.wakeup.wakeup_thread_and_signal_safe()
        h.poller.add_route(pairs[0][1].fileno(), WRITE, lambda ev: None)
        h.poller.current_kqueue().control([fk.kevent(pairs[0][1], WRITE)], 0)
        assert len(h.poller.wait(0)) == 5
        # A registration of the caller's, unrouted: its event comes too (room is 8).
        h.poller.current_kqueue().control([fk.kevent(pairs[1][1], WRITE)], 0)
        assert len(h.poller.wait(0)) == 6
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# --------------------------------------------------------------------------- routes


def test_route_and_fd_waits_share_keys(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    fd = a.fileno()
    got: list[Any] = []
    assert h.poller.add_route(fd, READ, got.append) is False
    assert h.poller.add_route(fd, READ, got.append) is True
    assert h.poller.add_reader(fd, None, "R") is True
    assert h.poller.add_writer(fd, None, "W") is False  # the other key is free
    assert h.poller.add_route(fd, WRITE, got.append) is True
    h.poller.current_kqueue().control([fk.kevent(fd, READ)], 0)
    b.send(b"x")
    assert h.poll() == (["W"], False)
    assert [(ev.ident, ev.filter) for ev in got] == [(fd, READ)]
    h.poller.remove_route(fd, READ)
    h.poller.remove_route(fd, READ)
    assert h.poller.routes == 0


def test_claiming_an_armed_key_hands_it_over(h: Harness, pair: SocketPair) -> None:
    a, b = pair
    fd = a.fileno()
    h.poller.add_reader(fd, a, "R")
    b.send(b"x")
    assert h.poll() == (["R"], False)  # still armed, nobody waiting
    got: list[Any] = []
    assert h.poller.add_route(fd, READ, got.append) is False
    assert h.poller.registered_fds == 0
    assert h.poll() == ([], False)
    assert len(got) == 1  # the registration now reports to the route
    h.poller.remove_route(fd, READ)
    h.poller.current_kqueue().control([fk.kevent(fd, READ, fk.KQ_EV_DELETE)], 0)
    # Our next wait re-adds it (no stale cache hit).
    h.poller.add_reader(fd, a, "R")
    assert h.poll() == (["R"], False)


# ------------------------------------------------------------- the manager, in a run


async def _pump(mgr: KqueueIOManager) -> None:
    mgr.process_events(mgr.get_events(0))
    await wait_all_tasks_blocked()


def _manager_run(body: Any) -> Any:
    async def main() -> Any:
        mgr = KqueueIOManager(_current_task=lowlevel.current_task, _reschedule=lowlevel.reschedule)
        try:
            return await body(mgr)
        finally:
            mgr.close()

    return vivace.run(main)


def test_manager_fd_waits_busy_closing_and_ebadf(pair: SocketPair) -> None:
    a, b = pair

    async def body(mgr: KqueueIOManager) -> list[Any]:
        seen: list[Any] = []
        async with vivace.open_nursery() as nursery:

            async def reader() -> None:
                try:
                    await mgr.wait_readable(a)
                    seen.append("read")
                    await mgr.wait_readable(a)
                except vivace.ClosedResourceError:
                    seen.append("closed")

            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            seen.append(mgr.statistics())
            with pytest.raises(vivace.BusyResourceError):
                await mgr.wait_readable(a)
            b.send(b"x")
            await _pump(mgr)
            a.recv(1)
            mgr.notify_closing(a)
        with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$"):
            await mgr.wait_writable(_closed_fd())
        seen.append(mgr.statistics())
        return seen

    assert _manager_run(body) == [
        KqueueStatistics(tasks_waiting=1, monitors=0),
        "read",
        "closed",
        KqueueStatistics(tasks_waiting=0, monitors=0),
    ]


def test_monitor_kevent_queue_busy_and_statistics(pair: SocketPair) -> None:
    a, b = pair
    fd = a.fileno()

    async def body(mgr: KqueueIOManager) -> None:
        kq = mgr.current_kqueue()
        assert kq is mgr._poller.current_kqueue()
        with ExitStack() as stack:
            with pytest.warns(vivace.TrioDeprecationWarning):
                queue = stack.enter_context(mgr.monitor_kevent(fd, READ))
            # A refused claim makes no queue, so it does not warn (warnings are errors).
            assert mgr.statistics() == KqueueStatistics(tasks_waiting=0, monitors=1)
            with pytest.raises(vivace.BusyResourceError), mgr.monitor_kevent(fd, READ):
                pass  # pragma: no cover
            with pytest.raises(vivace.BusyResourceError):
                await mgr.wait_readable(a)
            with pytest.raises(vivace.BusyResourceError):
                await mgr.wait_kevent(fd, READ, lambda _: lowlevel.Abort.SUCCEEDED)
            with pytest.raises(NotImplementedError):
                mgr.notify_closing(a)
            kq.control([fk.kevent(fd, READ)], 0)
            b.send(b"xy")
            await _pump(mgr)
            await _pump(mgr)
            batch = queue.get_batch_nowait()
            assert [(ev.ident, ev.filter, ev.data) for ev in batch] == [(fd, READ, 2)] * 2
        assert mgr.statistics() == KqueueStatistics(tasks_waiting=0, monitors=0)
        kq.control([fk.kevent(fd, READ, fk.KQ_EV_DELETE)], 0)
        # A reader of the fd makes the key busy for a monitor too.
        async with vivace.open_nursery() as nursery:

            async def reader() -> None:
                # The manager's waits take the task that calls them, so call in the task.
                await mgr.wait_readable(a)

            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            with pytest.raises(vivace.BusyResourceError), mgr.monitor_kevent(fd, READ):
                pass  # pragma: no cover
            await _pump(mgr)  # data is still there: the reader wakes

    _manager_run(body)


def test_wait_kevent_returns_the_event_and_frees_the_key(pair: SocketPair) -> None:
    a, b = pair
    fd = a.fileno()

    async def body(mgr: KqueueIOManager) -> list[Any]:
        got: list[Any] = []
        mgr.current_kqueue().control([fk.kevent(fd, READ, fk.KQ_EV_ADD | fk.KQ_EV_ONESHOT)], 0)
        async with vivace.open_nursery() as nursery:

            async def waiter() -> None:
                got.append(await mgr.wait_kevent(fd, READ, lambda _: lowlevel.Abort.SUCCEEDED))

            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            assert mgr.statistics().tasks_waiting == 1
            b.send(b"x")
            await _pump(mgr)
        assert mgr.statistics().tasks_waiting == 0
        assert mgr._poller.routes == 0
        return [(ev.ident, ev.filter, bool(ev.flags & fk.KQ_EV_ONESHOT)) for ev in got]

    assert _manager_run(body) == [(fd, READ, True)]


def test_wait_kevent_cancelled_consumed_nothing(pair: SocketPair) -> None:
    a, b = pair
    fd = a.fileno()

    async def body(mgr: KqueueIOManager) -> list[Any]:
        log: list[Any] = []

        def abort(raise_cancel: Any) -> Any:
            log.append("abort")
            return lowlevel.Abort.SUCCEEDED

        mgr.current_kqueue().control([fk.kevent(fd, READ)], 0)
        with vivace.CancelScope() as scope:
            scope.cancel()
            await mgr.wait_kevent(fd, READ, abort)
        assert scope.cancelled_caught
        assert mgr._poller.routes == 0 and mgr.statistics().tasks_waiting == 0
        b.send(b"x")
        await _pump(mgr)  # nobody claims the key: the event is left to the kernel
        async with vivace.open_nursery() as nursery:

            async def waiter() -> None:
                ev = await mgr.wait_kevent(fd, READ, abort)
                log.append((ev.ident, ev.data))

            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            await _pump(mgr)
        return log

    assert _manager_run(body) == ["abort", (fd, 1)]


def test_wait_kevent_failed_abort_and_notify_closing(pair: SocketPair) -> None:
    a, b = pair
    fd = a.fileno()

    async def body(mgr: KqueueIOManager) -> list[Any]:
        log: list[Any] = []
        kq = mgr.current_kqueue()
        kq.control([fk.kevent(fd, READ)], 0)
        scope = vivace.CancelScope()
        async with vivace.open_nursery() as nursery:

            async def stubborn() -> None:
                def abort(raise_cancel: Any) -> Any:
                    log.append("refused")
                    return lowlevel.Abort.FAILED

                with scope:
                    log.append((await mgr.wait_kevent(fd, READ, abort)).ident)

            nursery.start_soon(stubborn)
            await wait_all_tasks_blocked()
            scope.cancel()
            await wait_all_tasks_blocked()
            assert mgr.statistics().tasks_waiting == 1
            b.send(b"x")  # the wait did not end: the event still wakes it
            await _pump(mgr)
        async with vivace.open_nursery() as nursery:

            async def closed() -> None:
                with pytest.raises(vivace.ClosedResourceError):
                    await mgr.wait_kevent(fd, WRITE, lambda _: lowlevel.Abort.SUCCEEDED)
                log.append("closed")

            nursery.start_soon(closed)
            await wait_all_tasks_blocked()
            kq.control([fk.kevent(fd, WRITE, fk.KQ_EV_ADD | fk.KQ_EV_DISABLE)], 0)
            mgr.notify_closing(fd)
        # notify_closing deleted the waiter's registration.
        assert (fd, WRITE) not in _keys(kq)
        return log

    assert _manager_run(body) == ["refused", fd, "closed"]


# ----------------------------------------------------- selection and the public names


def test_kqueue_is_available_on_linux_only_with_the_emulation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(_io_manager.ENV_VAR, raising=False)
    assert _io_manager.available_backends() == ("epoll", "poll", "kqueue")
    assert _io_manager.selected_backend() == "epoll"
    monkeypatch.delattr(select, "kqueue")
    assert _io_manager.available_backends() == ("epoll", "poll")


def test_run_on_the_kqueue_backend(monkeypatch: pytest.MonkeyPatch, pair: SocketPair) -> None:
    monkeypatch.setenv(_io_manager.ENV_VAR, "kqueue")
    a, b = pair

    async def main() -> Any:
        kq = _io_kqueue.current_kqueue()
        kq.control([fk.kevent(a, READ)], 0)
        b.send(b"x")
        with pytest.warns(vivace.TrioDeprecationWarning):
            with _io_kqueue.monitor_kevent(a.fileno(), READ) as queue:
                (ev,) = (await queue.get_batch())[:1]
        got = await _io_kqueue.wait_kevent(a.fileno(), READ, lambda _: lowlevel.Abort.SUCCEEDED)
        await lowlevel.wait_writable(b)
        return ev.ident, got.ident, lowlevel.current_statistics().io_statistics

    if _impl.ENGINE == "compiled":
        with pytest.raises(RuntimeError, match="reference engine only; set VIVACE_NO_EXTENSIONS=1"):
            vivace.run(main)
    else:
        fd = a.fileno()
        assert vivace.run(main) == (fd, fd, KqueueStatistics(tasks_waiting=1, monitors=0))


def test_kqueue_api_needs_the_kqueue_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_io_manager.ENV_VAR, "poll")

    async def main() -> None:
        with pytest.raises(
            RuntimeError, match="needs the kqueue I/O backend; this run uses 'poll'"
        ):
            _io_kqueue.current_kqueue()

    vivace.run(main)
    with pytest.raises(RuntimeError, match="async context"):
        _io_kqueue.current_kqueue()


def test_linux_lowlevel_has_no_kqueue_names() -> None:
    import trio.lowlevel

    names = {"current_kqueue", "monitor_kevent", "wait_kevent"}
    assert not names & set(dir(lowlevel))
    assert not names & set(dir(vivace._core))
    assert not names & set(dir(trio.lowlevel))


def test_make_io_manager_outcome_matches_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_io_manager.ENV_VAR, "kqueue")
    if _impl.ENGINE == "compiled":
        with pytest.raises(RuntimeError, match="emulation used for tests"):
            _io_manager.make_io_manager()
        return
    manager = _io_manager.make_io_manager()
    try:
        assert type(manager) is KqueueIOManager
        assert manager.statistics() == KqueueStatistics(0, 0)
        assert manager.statistics().backend == "kqueue"
        with pytest.raises(TypeError):
            KqueueStatistics(0, 0, "poll")  # type: ignore[call-arg]
    finally:
        manager.close()
