"""The I/O manager interface (``vivace._core._io_manager``): every backend this platform
has satisfies it on both engines, the shared readiness bookkeeping behaves the same in
its two twins, and ``VIVACE_IO_BACKEND`` picks the backend or says what is available.

Pairs compared: ``_io_readiness_py.ReadinessTable`` with the compiled
``_ext/_io_readiness.ReadinessTable`` (one script, identical traces), and each
backend's reference poller with its compiled one (both conform to ``ReadinessPoller``
and are built on their engine's shared table).
"""

from __future__ import annotations

import inspect
import os
import select
import socket
import sys
from collections.abc import Iterator
from typing import Any

import outcome
import pytest

import vivace
from vivace import lowlevel
from vivace._core import _impl, _io_manager, _io_readiness_py
from vivace._core._io_manager import (
    IOManager,
    IOStatistics,
    ReadinessIOManager,
    ReadinessPoller,
)

# backend name -> its poller: (reference module, compiled module, class name)
_POLLER_TWINS = {
    "epoll": ("vivace._core._epoll_py", "vivace._core._ext._epoll", "EpollPoller"),
    "poll": ("vivace._core._poll_py", "vivace._core._ext._poll", "PollPoller"),
    # On Linux only under the tests' emulation of select.kqueue (reference engine only,
    # so the compiled module is never asked for here); natively on macOS and the BSDs.
    "kqueue": ("vivace._core._kqueue_py", "vivace._core._ext._kqueue", "KqueuePoller"),
}


def _compiled(module: str) -> Any:
    """A compiled module, or None when the build lacks it on a reference-only pass."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        if _impl.ENGINE == "compiled":  # pragma: no cover
            raise
        return None


def _table_twins() -> list[Any]:
    params = [pytest.param(_io_readiness_py, id="reference")]
    compiled = _compiled("vivace._core._ext._io_readiness")
    if compiled is not None:
        params.append(pytest.param(compiled, id="compiled"))
    return params


def _poller_classes() -> list[Any]:
    import importlib

    params = []
    for name in _io_manager.available_backends():
        ref_mod, c_mod, cls_name = _POLLER_TWINS[name]
        reference = getattr(importlib.import_module(ref_mod), cls_name)
        params.append(pytest.param(name, reference, _io_readiness_py, id=f"{name}-reference"))
        compiled = _compiled(c_mod)
        if compiled is not None:
            table = _compiled("vivace._core._ext._io_readiness")
            params.append(
                pytest.param(name, getattr(compiled, cls_name), table, id=f"{name}-compiled")
            )
    return params


def _protocol_methods(proto: type) -> list[str]:
    return sorted(
        name
        for name, value in vars(proto).items()
        if not name.startswith("_") and inspect.isfunction(value)
    )


def _param_names(func: Any) -> list[str]:
    return [p.name for p in inspect.signature(func).parameters.values() if p.name != "self"]


# ----------------------------------------------------------------- every backend conforms


def test_this_platform_has_a_backend_and_it_is_the_default() -> None:
    available = _io_manager.available_backends()
    # On Linux, select.kqueue exists only when the tests' emulation is installed
    # (tests/fake_kqueue_site); it never becomes the default there.
    emulated = ("kqueue",) if hasattr(select, "kqueue") else ()
    if sys.platform.startswith("linux"):
        assert available == ("epoll", "poll", *emulated)
    elif os.name == "posix":
        assert available == ("kqueue", "poll")
    assert set(available) <= set(_POLLER_TWINS)


@pytest.fixture(name="manager", params=_io_manager.available_backends())
def manager_fixture(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    monkeypatch.setenv(_io_manager.ENV_VAR, request.param)
    manager = _io_manager.make_io_manager()
    try:
        yield manager
    finally:
        manager.close()


def test_manager_satisfies_the_interface(manager: Any) -> None:
    assert isinstance(manager, IOManager)
    for name in _protocol_methods(IOManager):
        assert _param_names(getattr(manager, name)) == _param_names(getattr(IOManager, name)), name
    stats = manager.statistics()
    assert isinstance(stats, IOStatistics)
    assert stats.backend == os.environ[_io_manager.ENV_VAR]


def test_readiness_manager_parks_sockets_on_a_conforming_poller(manager: Any) -> None:
    # The compiled socket operations reach the poller as io_manager._poller.
    assert isinstance(manager, ReadinessIOManager)
    poller = manager._poller
    assert isinstance(poller, ReadinessPoller)
    assert poller.backend == manager.statistics().backend
    ref_mod, c_mod, cls_name = _POLLER_TWINS[poller.backend]
    assert type(poller).__name__ == cls_name
    assert type(poller).__module__ == (c_mod if _impl.ENGINE == "compiled" else ref_mod)


@pytest.mark.parametrize(("backend", "cls", "table"), _poller_classes())
def test_poller_twin_conforms_and_is_built_on_the_shared_table(
    backend: str, cls: Any, table: Any
) -> None:
    assert issubclass(cls, table.ReadinessTable)
    for name in _protocol_methods(ReadinessPoller):
        assert _param_names(getattr(cls, name)) == _param_names(getattr(ReadinessPoller, name)), (
            name
        )
    a, b = socket.socketpair()
    poller = cls(a.fileno(), None)
    try:
        assert isinstance(poller, ReadinessPoller)
        assert poller.backend == backend
        assert (poller.tasks_waiting_read, poller.tasks_waiting_write, poller.closed) == (
            0,
            0,
            False,
        )
    finally:
        poller.close()
        a.close()
        b.close()
    assert poller.closed


def test_run_reports_the_backend_in_use() -> None:
    async def main() -> object:
        return lowlevel.current_statistics().io_statistics

    stats = vivace.run(main)
    assert isinstance(stats, IOStatistics)
    assert stats.backend == _io_manager.selected_backend()


# ----------------------------------------------------------------- the shared table twins


class _Rescheduled:
    def __init__(self) -> None:
        self.calls: list[tuple[object, object]] = []

    def __call__(self, task: object, value: object = None) -> None:
        self.calls.append((task, value))

    def take(self) -> list[object]:
        out = []
        for task, value in self.calls:
            if isinstance(value, outcome.Error):
                value = (type(value.error).__name__, str(value.error))
            out.append((task, value))
        self.calls.clear()
        return out


def _table_script(mod: Any) -> list[object]:
    """Drive a bare shared table (no kernel behind it) through every bookkeeping rule."""
    resched = _Rescheduled()
    t = mod.ReadinessTable("test", 99, resched)
    R, W, E, H = mod.READABLE, mod.WRITABLE, mod.ERROR, mod.HANGUP
    trace: list[object] = []

    def note(label: str, value: object = None) -> None:
        trace.append(
            (
                label,
                value,
                resched.take(),
                t.tasks_waiting_read,
                t.tasks_waiting_write,
                t.registered_fds,
                t.ctl_calls,
                t.rebuilds,
                t.closed,
            )
        )

    def error(call: Any, *args: Any) -> tuple[str, str]:
        try:
            call(*args)
        except Exception as exc:  # noqa: BLE001  (the trace records it)
            return type(exc).__name__, str(exc)
        raise AssertionError("no error")

    note("backend", t.backend)
    note("add reader", t.add_reader(5, None, "r5"))
    note("second reader is busy", t.add_reader(5, None, "other"))
    note("add writer", t.add_writer(5, None, "w5"))
    note("second writer is busy", t.add_writer(5, None, "other"))
    note("wakeup fd", t.ready(99, R))
    note("unknown fd is a zombie", t.ready(7, R))
    note("read ready wakes the reader only", t.ready(5, R))
    note("read ready, no reader: read disarmed", t.ready(5, R))
    note("write ready wakes the writer", t.ready(5, W))
    note("bits never asked for", t.ready(5, R))
    note("write ready, no writer: record dropped", t.ready(5, W))
    note("add both again", (t.add_reader(5, None, "r5b"), t.add_writer(5, None, "w5b")))
    note("hangup wakes both", t.ready(5, H))
    note("error with no waiters drops the record", t.ready(5, E))
    note("remove: wrong task", (t.add_reader(6, None, "r6"), t.remove_reader(6, "nope")))
    note("remove: right task", t.remove_reader(6, "r6"))
    note("remove writer of unknown fd", t.remove_writer(8, "x"))
    note("forget with waiters", (t.add_writer(6, None, "w6"), t.forget(6)))
    note("forget unknown", t.forget(6))
    note("negative fd", error(t.add_reader, -1, None, "x"))
    note("batch", (t.add_reader(20, None, "r20"), t.ready_batch([(99, R), (21, W), (20, R)])))
    note("many", [t.add_reader(fd, None, f"r{fd}") for fd in (10, 11, 12)])
    note("close", t.close())
    note("closed add", error(t.add_writer, 10, None, "x"))
    note("closed forget", t.forget(10))
    note("close again", t.close())

    # A wake-up that closes the table ends the batch: later events are not applied.
    def close_on_wake(task: object, value: object = None) -> None:
        resched(task, value)
        closing.close()

    closing = mod.ReadinessTable("test", 99, close_on_wake)
    closing.add_reader(1, None, "r1")
    closing.add_reader(2, None, "r2")
    note("closed by a wake-up", (closing.ready_batch([(1, R), (2, R)]), closing.closed))
    return trace


@pytest.mark.parametrize("mod", _table_twins())
def test_shared_table_rules(mod: Any) -> None:
    trace = _table_script(mod)
    by_label = {label: rest for label, *rest in trace}  # type: ignore[misc]
    assert by_label["second reader is busy"][0] is True
    assert by_label["wakeup fd"][0] == mod.WAKEUP
    assert by_label["unknown fd is a zombie"][0] == mod.REBUILD
    assert by_label["read ready wakes the reader only"][:2] == [0, [("r5", None)]]
    assert by_label["read ready, no reader: read disarmed"][:2] == [0, []]
    assert by_label["bits never asked for"][0] == mod.REBUILD
    assert by_label["write ready, no writer: record dropped"][4] == 0  # registered_fds
    assert by_label["hangup wakes both"][1] == [("r5b", None), ("w5b", None)]
    assert by_label["error with no waiters drops the record"][4] == 0
    assert by_label["forget with waiters"][0] == (False, (None, "w6"))
    assert by_label["negative fd"][0] == (
        "ValueError",
        "file descriptor cannot be a negative integer (-1)",
    )
    assert by_label["closed add"][0] == ("RuntimeError", "the test poller is closed")
    assert by_label["batch"][:2] == [(False, mod.WAKEUP | mod.REBUILD), [("r20", None)]]
    assert by_label["close"][2:4] == [0, 0]  # counters reset
    assert by_label["closed by a wake-up"][:2] == [(0, True), [("r1", None)]]


def test_shared_table_twins_trace_identically() -> None:
    twins = [p.values[0] for p in _table_twins()]
    if _impl.ENGINE == "compiled":
        assert len(twins) == 2
    if len(twins) == 2:
        assert _table_script(twins[0]) == _table_script(twins[1])
        for name in ("READABLE", "WRITABLE", "ERROR", "HANGUP", "WAKEUP", "REBUILD"):
            assert getattr(twins[0], name) == getattr(twins[1], name), name


def test_shared_table_wakes_through_each_tasks_runner_without_reschedule() -> None:
    class Runner:
        def __init__(self) -> None:
            self.woken: list[object] = []

        def reschedule(self, task: object, value: object = None) -> None:
            self.woken.append((task, value))

    class Task:
        def __init__(self) -> None:
            self._runner = Runner()

    for mod in [p.values[0] for p in _table_twins()]:
        t = mod.ReadinessTable("test", 99, None)
        task = Task()
        assert t.add_reader(3, None, task) is False
        assert t.ready(3, mod.READABLE) == 0
        assert task._runner.woken == [(task, None)], mod


# ----------------------------------------------------------------- VIVACE_IO_BACKEND


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux's backend")
@pytest.mark.parametrize("value", ["", "epoll", " EPOLL "])
def test_io_backend_env_accepts_epoll_and_defaults_to_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vivace._core._io_epoll import EpollIOManager

    monkeypatch.setenv(_io_manager.ENV_VAR, value)
    assert _io_manager.selected_backend() == "epoll"
    manager = _io_manager.make_io_manager()
    try:
        assert type(manager) is EpollIOManager
    finally:
        manager.close()


@pytest.mark.parametrize(
    "value",
    [v for v in ("kqueue", "io_uring", "iocp", "bogus") if v not in _io_manager.available_backends()],
)
def test_io_backend_env_refuses_what_is_not_available(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_io_manager.ENV_VAR, value)
    available = ", ".join(_io_manager.available_backends()) or f"none on {sys.platform}"
    message = (
        f"VIVACE_IO_BACKEND={value!r} is not an I/O backend vivace can use here; "
        f"available: {available} (unset VIVACE_IO_BACKEND for the default)"
    )
    with pytest.raises(RuntimeError) as info:
        _io_manager.selected_backend()
    assert str(info.value) == message
    with pytest.raises(RuntimeError, match="not an I/O backend"):
        _io_manager.make_io_manager()


def test_run_with_an_unavailable_io_backend_fails_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    # The choice reaches vivace.run: a clear RuntimeError before the run starts, and
    # nothing left behind (the next run works).
    async def main() -> str:
        return "ran"

    monkeypatch.setenv(_io_manager.ENV_VAR, "bogus")
    with pytest.raises(RuntimeError, match="^VIVACE_IO_BACKEND='bogus' is not an I/O backend"):
        vivace.run(main)
    monkeypatch.delenv(_io_manager.ENV_VAR)
    assert vivace.run(main) == "ran"
