"""The compiled and reference epoll pollers compared: the engine picks its own twin,
the compiled dispatch's event-count guard, and one fixed script replayed on both
twins whose observable traces must be identical.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

import outcome
import pytest

from _io_epoll_support import (
    Harness,
    _compiled_twin,
    drain,
    fill,
)
from vivace._core import _epoll_py, _impl

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux-only")


# --------------------------------------------------------------------------- engine


def test_engine_uses_its_own_poller_twin() -> None:
    if _impl.ENGINE == "compiled":
        assert _impl.EpollPoller is _compiled_twin()
    else:
        assert _impl.EpollPoller is _epoll_py.EpollPoller


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
