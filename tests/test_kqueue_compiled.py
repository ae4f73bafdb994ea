"""The compiled kqueue poller (``_ext/_kqueue.pyx``), checked where there is no kqueue.

setup.py builds the module only on macOS and the BSDs. Here it is built by the tests,
once per session, into a temporary directory (never the in-place build): cythonized,
then compiled by the system compiler against ``tests/kqueue_shim/sys/event.h`` (the
documented declarations of kevent(2), in macOS's struct layout and in FreeBSD's), which
must give no error and none of the warnings that mean a type disagrees with the header.
Linked with ``tests/kqueue_shim/kqueue_emulation.c`` (kqueue over epoll), the module
is then imported and driven like the reference twin, ``_kqueue_py.KqueuePoller`` over
``tests/_fake_kqueue.py``: the same scenarios, compared step by step (woken tasks and
errors, wake-up flags, counters, kevent(2) change calls). On macOS and the BSDs the
same tests run on the real header, the module setup.py built and the real kqueue.
"""

from __future__ import annotations

import errno
import importlib.util
import math
import os
import pathlib
import select
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

import outcome
import pytest

import _fake_kqueue as fk
import vivace
from _io_epoll_support import THREAD_TIMEOUT, Harness, drain, fill
from _kqueue_compiled_support import (  # noqa: F401  (fixtures, found by name)
    LINUX,
    MODULE,
    NATIVE,
    READ,
    ROOT,
    WRITE,
    adopting_fixture,
    batch_size,
    cc,
    closed_fd,
    compiled_class_fixture,
    compiled_harness_fixture,
    compiled_module_fixture,
    emulation_fixture,
    fake_select,
    guarded_harness,
    h_fixture,
    header_warnings,
    kqueue_c_fixture,
    manager_class_fixture,
    pump,
    run,
)
from vivace import lowlevel
from vivace._core import _kqueue_py
from vivace.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.skipif(
    not (LINUX or NATIVE), reason="kqueue's twins are checked on Linux, macOS and the BSDs"
)


# ------------------------------------------------------------------------- compiling


def test_compiles_against_the_documented_header(
    kqueue_c: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    diagnostics = cc(["-c", str(kqueue_c), "-o", str(tmp_path / "kqueue.o")])
    assert header_warnings(diagnostics) == []
    assert (tmp_path / "kqueue.o").stat().st_size > 0


@pytest.mark.skipif(not LINUX, reason="the shim's FreeBSD layout stands in for the real one")
def test_compiles_against_freebsds_struct_layout(
    kqueue_c: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # FreeBSD's struct kevent is bigger (ext[4]) and its data 64-bit: the module must
    # rely on neither.
    diagnostics = cc(["-DVV_SHIM_FREEBSD", "-c", str(kqueue_c), "-o", str(tmp_path / "kqueue.o")])
    assert header_warnings(diagnostics) == []


def test_setup_py_builds_the_module_only_where_kqueue_is() -> None:
    spec = importlib.util.spec_from_file_location("_vivace_setup_py_kq", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)
    assert setup_py._builds_here("_kqueue") is NATIVE
    names = {ext.name for ext in setup_py._extensions()}
    assert (MODULE in names) is NATIVE


def test_compiled_module_has_the_reference_exports(compiled_module: Any) -> None:
    assert compiled_module.__all__ == _kqueue_py.__all__
    cls = compiled_module.KqueuePoller
    with pytest.raises(TypeError, match="not an acceptable base type"):
        type("Sub", (cls,), {})


# ------------------------------------------------------------------ the twins compared


def _script(cls: Any) -> list[object]:
    """Drive a twin through a fixed scenario; return everything observable. The order
    in which a kqueue reports different keys is the kernel's (here two different
    emulations), so each step's woken tasks are compared as sorted lists."""
    trace: list[object] = []
    harness = guarded_harness(cls)
    p = harness.poller
    routed: list[tuple[int, int]] = []

    def note(label: str, value: object = None) -> None:
        counters = (p.tasks_waiting_read, p.tasks_waiting_write, p.ctl_calls)
        trace.append((label, value, *counters, p.registered_fds, p.rebuilds, p.routes))

    def step(label: str, timeout: float = 0) -> None:
        batch = p.wait(timeout)
        size = batch_size(batch)
        woke = p.dispatch(batch)
        if woke:
            harness.wakeup.drain()
        calls = harness.resched.calls
        tasks = sorted(str(task) for task, _ in calls)
        errors = sorted(
            (type(r.error).__name__, str(r.error)) for _, r in calls if isinstance(r, outcome.Error)
        )
        calls.clear()
        note(label, (size, tasks, woke, errors, sorted(routed)))
        routed.clear()

    def attempt(label: str, fn: Callable[[], object]) -> None:
        try:
            note(label, fn())
        except Exception as exc:  # noqa: BLE001  (the trace records it)
            note(label, (type(exc).__name__, str(exc)))

    def route(ev: Any) -> None:
        routed.append((ev.ident, ev.filter))

    socks = [s for _ in range(4) for s in socket.socketpair()]
    a, b, c, d, e, f, g, k = socks
    for s in socks:
        s.setblocking(False)
    try:
        note("new")
        attempt("add r a", lambda: p.add_reader(a.fileno(), a, "Ra"))
        attempt("busy r a", lambda: p.add_reader(a.fileno(), a, "Rx"))
        fill(a)
        attempt("add w a", lambda: p.add_writer(a.fileno(), None, "Wa"))
        step("idle")
        b.send(b"1")
        step("a readable")
        attempt("re-add r a", lambda: p.add_reader(a.fileno(), a, "Ra"))
        drain(b)
        step("a readable and writable")
        a.recv(10)
        step("nothing")
        attempt("re-add w a, no owner", lambda: p.add_writer(a.fileno(), None, "Wa"))
        attempt("remove w a", lambda: p.remove_writer(a.fileno(), "Wa"))
        step("a writable, unwanted")
        step("a quiet")
        attempt("add w c", lambda: p.add_writer(c.fileno(), c, "Wc"))
        step("c writable")
        step("c writable, unwanted")
        harness.wakeup.wakeup_thread_and_signal_safe()
        step("wakeup")
        attempt("add r c", lambda: p.add_reader(c.fileno(), c, "Rc"))
        attempt("forget c", lambda: p.forget(c.fileno()))
        attempt("forget c again", lambda: p.forget(c.fileno()))
        dead = closed_fd()
        attempt("add r dead", lambda: p.add_reader(dead, None, "Rd"))
        attempt("add w dead", lambda: p.add_writer(dead, None, "Wd"))
        attempt("add w -1", lambda: p.add_writer(-1, None, "Wd"))
        d.close()
        attempt("add r c, peer gone", lambda: p.add_reader(c.fileno(), None, "Rc"))
        step("c at eof")
        step("c at eof, unwanted")
        fill(e)
        efd = e.fileno()
        attempt("add r e", lambda: p.add_reader(efd, e, "Re"))
        attempt("add w e", lambda: p.add_writer(efd, e, "We"))
        e.close()  # kqueue drops the registrations silently: nobody is woken
        step("e closed behind our back")
        attempt("forget e", lambda: p.forget(efd))  # deleting what is gone is fine
        # Routes: a waiter's key is taken; an armed key without a waiter is handed over.
        attempt("add r g", lambda: p.add_reader(g.fileno(), g, "Rg"))
        attempt("route g r, taken", lambda: p.add_route(g.fileno(), READ, route))
        attempt("remove r g", lambda: p.remove_reader(g.fileno(), "Rg"))
        attempt("route g r", lambda: p.add_route(g.fileno(), READ, route))
        attempt("route g r again", lambda: p.add_route(g.fileno(), READ, route))
        attempt("add r g, routed", lambda: p.add_reader(g.fileno(), g, "Rg"))
        attempt("add w g", lambda: p.add_writer(g.fileno(), g, "Wg"))
        k.send(b"k")
        step("g routed readable and writable")
        attempt("unroute g r", lambda: p.remove_route(g.fileno(), READ))
        attempt("unroute g r again", lambda: p.remove_route(g.fileno(), READ))
        attempt("route other filter", lambda: p.add_route(12345, -7, route))
        step("g unrouted")
        attempt("add r g after route", lambda: p.add_reader(g.fileno(), g, "Rg"))
        step("g readable")
        attempt("wait nan", lambda: p.wait(float("nan")))
        attempt("fileno open", lambda: p.fileno() >= 0)
        p.close()
        attempt("add after close", lambda: p.add_reader(a.fileno(), a, "R"))
        attempt("wait after close", lambda: p.wait(0))
        attempt("dispatch after close", lambda: p.dispatch([]))
        attempt("fileno after close", p.fileno)
        attempt("close again", p.close)
    finally:
        harness.close()
        for s in socks:
            s.close()
    return trace


def test_reference_script_trace() -> None:
    entries: list[Any] = _script(_kqueue_py.KqueuePoller)
    trace = {entry[0]: list(entry[1:]) for entry in entries}
    # label -> [value, waiting read, waiting write, ctl_calls, fds, rebuilds, routes]
    assert trace["new"][1:4] == [0, 0, 1]
    assert trace["add w a"][3] == 3  # one kevent(2) call for both directions
    assert trace["a readable"][0] == (1, ["Ra"], False, [], [])
    assert trace["add r dead"][0] == ("OSError", "[Errno 9] Bad file descriptor")
    assert trace["e closed behind our back"][0] == (0, [], False, [], [])
    assert trace["forget e"][0] == ("Re", "We")
    assert trace["route g r"][0] is False
    assert trace["add r g, routed"][0] is True
    _, woken, _, _, routed = trace["g routed readable and writable"][0]
    assert woken == ["Wg"] and [filt for _, filt in routed] == [READ]
    assert trace["wait after close"][0] == ("RuntimeError", "the kqueue poller is closed")
    assert all(rest[-2] == 0 for rest in trace.values())  # never a rebuild


def test_twins_behave_identically(compiled_class: Any) -> None:
    compiled = _script(compiled_class)
    reference = _script(_kqueue_py.KqueuePoller)
    for got, want in zip(compiled, reference, strict=True):
        assert got == want


# ---------------------------------------------------------------- both twins, directly


@pytest.mark.parametrize("timeout", [0, -1.0, -math.inf, 1e-9])
def test_wait_with_a_short_timeout_returns_nothing(h: Harness, timeout: float) -> None:
    assert not h.poller.wait(timeout)


@pytest.mark.parametrize("timeout", [math.inf, 1e300, 2**31, 2147483.647, 0.5])
def test_wait_with_a_long_timeout_returns_when_woken(h: Harness, timeout: float) -> None:
    # Clamped (or no limit), never an OverflowError.
    h.wakeup.wakeup_thread_and_signal_safe()
    assert h.poller.dispatch(h.poller.wait(timeout)) is True


def test_wait_rejects_nan_and_a_closed_poller(h: Harness) -> None:
    with pytest.raises(ValueError, match="^timeout must not be NaN$"):
        h.poller.wait(math.nan)
    h.poller.close()
    with pytest.raises(RuntimeError, match="^the kqueue poller is closed$"):
        h.poller.wait(0)


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
    # Either the thread is in kevent(2) (refused), or it has not got there yet: retry
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


class _Boom(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
@pytest.mark.parametrize("raises", [True, False], ids=["handler-raises", "handler-returns"])
def test_a_signal_during_a_wait_runs_its_handler(h: Harness, raises: bool) -> None:
    # kevent(2) fails with EINTR; the handler runs; what it raises propagates, else the
    # wait goes on (here until the handler's own wake-up).
    ran: list[int] = []

    def handler(signum: int, frame: object) -> None:
        ran.append(signum)
        if raises:
            raise _Boom
        h.wakeup.wakeup_thread_and_signal_safe()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        if raises:
            with pytest.raises(_Boom):
                signal.setitimer(signal.ITIMER_REAL, 0.01)
                h.poller.wait(THREAD_TIMEOUT)
        else:
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            assert h.poll(THREAD_TIMEOUT) == ([], True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert ran == [signal.SIGALRM]
    assert not h.poller.wait(0)  # and the poller still waits


def test_regular_files_are_always_ready(h: Harness, tmp_path: pathlib.Path) -> None:
    with open(tmp_path / "f", "wb") as f:
        assert h.poller.add_writer(f.fileno(), None, "W") is False
        assert h.poll() == (["W"], False)
        assert h.poller.forget(f.fileno()) == (None, None)


def test_a_dispatch_takes_the_batch_of_the_last_wait(h: Harness) -> None:
    h.wakeup.wakeup_thread_and_signal_safe()
    batch = h.poller.wait(0)
    assert batch_size(batch) == 1
    assert h.poller.dispatch(batch) is True
    assert h.poller.dispatch([]) is False
    assert h.poller.dispatch(0) is False


def test_a_stale_batch_needs_no_rebuild(h: Harness) -> None:
    a, b = socket.socketpair()
    with a, b:
        h.poller.add_reader(a.fileno(), a, "R")
        b.send(b"x")
        batch = h.poller.wait(0)
        assert batch_size(batch) == 1
        h.poller.forget(a.fileno())  # the batch is now stale
        assert h.poller.dispatch(batch) is False
        assert h.resched.calls == []
        assert h.poller.rebuilds == 0


def test_a_reschedule_that_closes_the_poller_ends_the_batch(h: Harness) -> None:
    woken: list[object] = []

    def closing(task: object, value: object = None) -> None:
        woken.append(task)
        poller.close()

    pairs = [socket.socketpair() for _ in range(2)]
    poller = type(h.poller)(h.wakeup.wakeup_sock.fileno(), closing)
    try:
        for i, (a, b) in enumerate(pairs):
            poller.add_reader(a.fileno(), None, f"R{i}")
            b.send(b"x")
        batch = poller.wait(0)
        assert batch_size(batch) == 2
        assert poller.dispatch(batch) is False
        assert len(woken) == 1  # the first wake-up closed it: the rest is dropped
        assert poller.closed
        assert (poller.tasks_waiting_read, poller.registered_fds) == (0, 0)
        assert poller.dispatch(batch) is False
    finally:
        poller.close()
        for a, b in pairs:
            a.close()
            b.close()


# ----------------------------------------------------------- the compiled twin's own


def test_compiled_ctl_calls_are_kevent_calls_with_changes(ch: Harness, emulation: Any) -> None:
    a, b = socket.socketpair()
    with a, b:
        calls = emulation.vv_emu_count(0) - ch.poller.ctl_calls
        ch.poller.add_reader(a.fileno(), None, "R")
        ch.poller.add_writer(a.fileno(), None, "W")
        assert emulation.vv_emu_filters(ch.poller.fileno(), a.fileno()) == 3
        assert ch.poll() == (["W"], False)
        ch.poller.forget(a.fileno())
        assert emulation.vv_emu_filters(ch.poller.fileno(), a.fileno()) == 0
        assert emulation.vv_emu_count(0) - ch.poller.ctl_calls == calls


def test_compiled_half_failed_arm_is_undone(ch: Harness, emulation: Any) -> None:
    # As the reference's test over a fake that refuses EVFILT_WRITE.
    a, b = socket.socketpair()
    with a, b:
        fd = a.fileno()
        ch.poller.add_reader(fd, None, "R")
        base = ch.poller.ctl_calls
        emulation.vv_emu_refuse(fd, WRITE, errno.EINVAL)
        with pytest.raises(OSError, match=r"^\[Errno 22\] Invalid argument$"):
            ch.poller.add_writer(fd, None, "W")
        # One call adding both, one deleting the read that took: the kernel holds
        # nothing, the record is gone and its reader woken with the error.
        assert ch.poller.ctl_calls == base + 2
        assert emulation.vv_emu_filters(ch.poller.fileno(), fd) == 0
        calls = ch.resched.calls
        assert [task for task, _ in calls] == ["R"]
        assert isinstance(calls[0][1], outcome.Error)
        assert (ch.poller.registered_fds, ch.poller.tasks_waiting_read) == (0, 0)


def test_compiled_reads_a_full_batch_once(ch: Harness, emulation: Any) -> None:
    # Every registration ready at once fills the room (2 per record + the wakeup fd):
    # level-triggered, a second read would return the same events again.
    a, b = socket.socketpair()
    with a, b:
        ch.poller.add_reader(a.fileno(), None, "R")
        ch.poller.add_writer(a.fileno(), None, "W")
        b.send(b"x")
        ch.wakeup.wakeup_thread_and_signal_safe()
        reads = emulation.vv_emu_count(1)
        batch = ch.poller.wait(0)
        assert emulation.vv_emu_count(1) == reads + 1
        assert batch == 3
        assert ch.poller.dispatch(batch) is True


@pytest.mark.usefixtures("adopting")
def test_compiled_current_kqueue_adopts_the_fd(ch: Harness) -> None:
    fd = ch.poller.fileno()
    kq = ch.poller.current_kqueue()
    assert kq.fileno() == fd
    assert ch.poller.current_kqueue() is kq
    ch.poller.close()
    assert kq.closed
    assert ch.poller.fileno() == -1
    with pytest.raises(OSError):
        os.fstat(fd)  # closed once, through the object


def test_compiled_dispatch_takes_the_count_of_the_last_wait_once(ch: Harness) -> None:
    ch.wakeup.wakeup_thread_and_signal_safe()
    n = ch.poller.wait(0)
    assert n == 1
    with pytest.raises(ValueError, match=r"the last wait\(\) returned \(1\), once; got 2"):
        ch.poller.dispatch(2)
    assert ch.poller.dispatch(n) is True
    with pytest.raises(ValueError, match=r"returned \(0\), once; got 1"):
        ch.poller.dispatch(n)


def test_compiled_poller_closes_its_kqueue(compiled_class: Any) -> None:
    harness = Harness(compiled_class)
    fd = harness.poller.fileno()
    assert fd >= 0
    assert os.get_inheritable(fd) is False
    harness.close()
    with pytest.raises(OSError):
        os.fstat(fd)


# --------------------------------------------------- the manager over each twin, in a run


def test_manager_fd_waits(manager_class: Any) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)

    async def body(mgr: Any) -> list[object]:
        seen: list[object] = []
        async with vivace.open_nursery() as nursery:

            async def reader() -> None:
                try:
                    await mgr.wait_readable(a)
                    seen.append(a.recv(10))
                    await mgr.wait_readable(a)
                except vivace.ClosedResourceError:
                    seen.append("closed")

            async def writer() -> None:
                await mgr.wait_writable(a)
                seen.append("writable")

            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            nursery.start_soon(writer)
            await wait_all_tasks_blocked()
            seen.append(mgr.statistics().tasks_waiting)
            with pytest.raises(vivace.BusyResourceError):
                await mgr.wait_readable(a)
            await pump(mgr)
            b.send(b"hi")
            await pump(mgr)
            mgr.notify_closing(a)
        with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$"):
            await mgr.wait_writable(closed_fd())
        seen.append(mgr.statistics().tasks_waiting)
        return seen

    with a, b:
        assert run(manager_class, body) == [2, "writable", b"hi", "closed", 0]


def test_manager_kevent_api(manager_class: Any) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    fd = a.fileno()

    async def body(mgr: Any) -> list[object]:
        seen: list[object] = []
        kq = mgr.current_kqueue()
        assert kq is mgr.current_kqueue()
        kq.control([select.kevent(fd, READ, fk.KQ_EV_ADD)], 0)  # type: ignore[attr-defined]
        with pytest.warns(vivace.TrioDeprecationWarning), mgr.monitor_kevent(fd, READ) as queue:
            seen.append(mgr.statistics().monitors)
            with pytest.raises(vivace.BusyResourceError):
                await mgr.wait_readable(a)
            b.send(b"x")
            await pump(mgr)
            seen.append([(ev.ident, ev.filter) for ev in queue.get_batch_nowait()])
        async with vivace.open_nursery() as nursery:

            async def waiter() -> None:
                ev = await mgr.wait_kevent(fd, READ, lambda _: lowlevel.Abort.SUCCEEDED)
                seen.append((ev.ident, ev.filter))

            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            seen.append(mgr.statistics().tasks_waiting)
            await pump(mgr)
        kq.control([select.kevent(fd, READ, fk.KQ_EV_DELETE)], 0)  # type: ignore[attr-defined]
        seen.append((mgr.statistics().tasks_waiting, mgr.statistics().monitors))
        seen.append(mgr._poller.routes)
        return seen

    with a, b:
        assert run(manager_class, body) == [
            1,
            [(fd, READ)],
            1,
            (fd, READ),
            (0, 0),
            0,
        ]
