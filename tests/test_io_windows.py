"""The Windows IOCP backend, checked on any platform: the cffi declarations (they parse;
the structs have 64-bit Windows' documented layout; the functions have the documented
signatures), the backend's registration and exports, and the manager's socket
readiness in real ``vivace.run`` calls over a simulated kernel
(``_fake_win32.FakeKernel``): AFD polls, one per socket, re-issued as waiters change,
busy and closed sockets, statistics, force_wakeup. Overlapped I/O, completion-key
monitors and WaitForSingleObject are in ``test_io_windows_overlapped.py``. What only a
Windows machine can check (the DLL calls, the AFD driver) is listed in issue 14.
"""

from __future__ import annotations

import ast
import errno
import math
import pathlib
import queue
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import vivace
from _fake_win32 import STATUS_CONNECTION_RESET, FakeKernel, run_over_fake
from vivace._core import _io_manager, _io_windows, _io_windows_afd, _windows_cffi as w
from vivace._core._io_windows import (
    KEY_FORCE_WAKEUP,
    WindowsIOManager,
    WindowsStatistics,
)
from vivace._core._io_windows_afd import READ_EVENTS, WRITE_EVENTS
from vivace._core._windows_cffi import ffi
from vivace.testing import wait_all_tasks_blocked

# A run at rest: its own wakeup socket (run_sync_soon's) waits to be readable.
IDLE = WindowsStatistics(1, 0, 0, 0)
RECEIVE = w.AFD_POLL_RECEIVE
SEND = w.AFD_POLL_SEND

# ------------------------------------------------------------------ the declarations

# (type, field, offset) on 64-bit Windows, from the documented struct definitions.
LAYOUT = [
    ("OVERLAPPED", "Internal", 0),
    ("OVERLAPPED", "InternalHigh", 8),
    ("OVERLAPPED", "DUMMYUNIONNAME", 16),
    ("OVERLAPPED", "hEvent", 24),
    ("OVERLAPPED_ENTRY", "lpCompletionKey", 0),
    ("OVERLAPPED_ENTRY", "lpOverlapped", 8),
    ("OVERLAPPED_ENTRY", "Internal", 16),
    ("OVERLAPPED_ENTRY", "dwNumberOfBytesTransferred", 24),
    ("AFD_POLL_HANDLE_INFO", "Handle", 0),
    ("AFD_POLL_HANDLE_INFO", "Events", 8),
    ("AFD_POLL_HANDLE_INFO", "Status", 12),
    ("AFD_POLL_INFO", "Timeout", 0),
    ("AFD_POLL_INFO", "NumberOfHandles", 8),
    ("AFD_POLL_INFO", "Exclusive", 12),
    ("AFD_POLL_INFO", "Handles", 16),
]
SIZES = {
    "OVERLAPPED": 32,
    "OVERLAPPED_ENTRY": 32,
    "AFD_POLL_HANDLE_INFO": 16,
    "AFD_POLL_INFO": 32,
    "HANDLE": 8,
    "SOCKET": 8,
    "ULONG_PTR": 8,
    "DWORD": 4,
    "ULONG": 4,
    "BOOL": 4,
    "NTSTATUS": 4,
    "UCHAR": 1,
    "LARGE_INTEGER": 8,
}
# name -> (result, argument types), as the Microsoft documentation declares them.
FUNCTIONS = {
    "CreateIoCompletionPort": ("HANDLE", ["HANDLE", "HANDLE", "ULONG_PTR", "DWORD"]),
    "GetQueuedCompletionStatusEx": (
        "BOOL",
        ["HANDLE", "OVERLAPPED_ENTRY *", "ULONG", "ULONG *", "DWORD", "BOOL"],
    ),
    "PostQueuedCompletionStatus": ("BOOL", ["HANDLE", "DWORD", "ULONG_PTR", "LPOVERLAPPED"]),
    "SetFileCompletionNotificationModes": ("BOOL", ["HANDLE", "UCHAR"]),
    "CancelIoEx": ("BOOL", ["HANDLE", "LPOVERLAPPED"]),
    "DeviceIoControl": (
        "BOOL",
        ["HANDLE", "DWORD", "void *", "DWORD", "void *", "DWORD", "DWORD *", "LPOVERLAPPED"],
    ),
    "ReadFile": ("BOOL", ["HANDLE", "void *", "DWORD", "DWORD *", "LPOVERLAPPED"]),
    "WriteFile": ("BOOL", ["HANDLE", "void *", "DWORD", "DWORD *", "LPOVERLAPPED"]),
    "CreateFileW": (
        "HANDLE",
        ["uint16_t *", "DWORD", "DWORD", "void *", "DWORD", "DWORD", "HANDLE"],
    ),
    "CreateEventW": ("HANDLE", ["void *", "BOOL", "BOOL", "uint16_t *"]),
    "SetEvent": ("BOOL", ["HANDLE"]),
    "WaitForSingleObject": ("DWORD", ["HANDLE", "DWORD"]),
    "WaitForMultipleObjects": ("DWORD", ["DWORD", "HANDLE *", "BOOL", "DWORD"]),
    "CloseHandle": ("BOOL", ["HANDLE"]),
    "RtlNtStatusToDosError": ("ULONG", ["NTSTATUS"]),
    "WSAIoctl": (
        "int",
        ["SOCKET", "DWORD", "void *", "DWORD", "void *", "DWORD", "DWORD *", "void *", "void *"],
    ),
    "WSAGetLastError": ("int", []),
}


@pytest.mark.parametrize("name,size", sorted(SIZES.items()))
def test_type_sizes_are_windows_x64(name: str, size: int) -> None:
    assert ffi.sizeof(name) == size


@pytest.mark.parametrize("struct,member,offset", LAYOUT)
def test_struct_offsets_are_windows_x64(struct: str, member: str, offset: int) -> None:
    assert ffi.offsetof(struct, member) == offset


def test_overlapped_offset_fields_share_the_pointer_union() -> None:
    ov = ffi.new("OVERLAPPED *")
    ov.DUMMYUNIONNAME.DUMMYSTRUCTNAME.Offset = 0x11223344
    ov.DUMMYUNIONNAME.DUMMYSTRUCTNAME.OffsetHigh = 0x55667788
    assert w.address_of(ov.DUMMYUNIONNAME.Pointer) == 0x5566778811223344


def _declared(name: str) -> Any:
    # cffi keeps the parsed declarations here; ABI mode resolves them only on dlopen.
    return ffi._parser._declarations[f"function {name}"][0]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_signatures_match_the_documentation(name: str) -> None:
    result, args = FUNCTIONS[name]
    decl = _declared(name)
    assert ffi.sizeof(ffi.typeof(result)) == ffi.sizeof(decl.result.get_c_name())
    assert len(decl.args) == len(args)
    for declared, documented in zip(decl.args, args):
        c_name = declared.get_c_name().replace(" const", "").replace("const ", "")
        expected = ffi.typeof(documented)
        assert ffi.typeof(c_name).kind == expected.kind, (name, c_name, documented)
        assert ffi.sizeof(ffi.typeof(c_name)) == ffi.sizeof(expected), (name, c_name)


def test_the_kernel_refuses_to_load_off_windows() -> None:
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("loads the real DLLs on Windows")
    with pytest.raises(OSError) as info:
        w.Win32Kernel()
    assert info.value.errno == errno.ENOSYS


def test_winerror_exception_carries_the_code() -> None:
    exc = w.winerror_exception(w.ERROR_INVALID_HANDLE)
    assert exc.winerror == w.ERROR_INVALID_HANDLE  # type: ignore[attr-defined,unused-ignore]
    assert isinstance(exc, OSError)
    if sys.platform != "win32":
        assert exc.errno == errno.EBADF


def test_handle_values() -> None:
    assert w.handle_value(5) == 5
    assert w.handle_value(-1) == w.INVALID_HANDLE_VALUE
    assert w.handle_value(ffi.cast("HANDLE", 0x1234)) == 0x1234
    assert w.handle_value(ffi.cast("OVERLAPPED *", 0x40)) == 0x40


def test_iocp_is_the_only_and_default_backend_on_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delenv(_io_manager.ENV_VAR, raising=False)
    assert _io_manager.available_backends() == ("iocp",)
    assert _io_manager.selected_backend() == "iocp"
    assert _io_manager._manager_class("iocp") is WindowsIOManager


# trio 0.35's Windows-only names in trio.lowlevel.
WINDOWS_NAMES = {
    "WaitForSingleObject",
    "current_iocp",
    "monitor_completion_key",
    "readinto_overlapped",
    "register_with_iocp",
    "wait_overlapped",
    "write_overlapped",
}


def _win32_imports(path: pathlib.Path) -> set[str]:
    """The names imported under ``sys.platform == "win32"`` (an if or its else, when
    the test is ``!= "win32"``) in *path*."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.If):
            continue
        # A comparison == or != "win32", maybe inside an `or` (trio's has one), but not,
        # say, the kqueue block's `sys.platform not in ("linux", "win32", ...)`.
        ops = [
            cmp.ops[0]
            for cmp in ast.walk(node.test)
            if isinstance(cmp, ast.Compare)
            and len(cmp.ops) == 1
            and isinstance(cmp.ops[0], (ast.Eq, ast.NotEq))
            and isinstance(cmp.comparators[0], ast.Constant)
            and cmp.comparators[0].value == "win32"
        ]
        if not ops:
            continue
        body = node.orelse if isinstance(ops[0], ast.NotEq) else node.body
        for stmt in body:
            if isinstance(stmt, ast.ImportFrom):
                names.update(alias.asname or alias.name for alias in stmt.names)
    return names


def test_the_windows_names_are_trios_and_exported_only_on_windows() -> None:
    import trio

    src = pathlib.Path(vivace.__file__).parent
    assert _win32_imports(src / "lowlevel.py") == WINDOWS_NAMES
    assert _win32_imports(src / "_core" / "__init__.py") == WINDOWS_NAMES
    assert _win32_imports(pathlib.Path(trio.__file__).parent / "lowlevel.py") == WINDOWS_NAMES
    for name in WINDOWS_NAMES:
        assert callable(getattr(_io_windows, name))
    if sys.platform == "win32":  # pragma: no cover
        assert vivace.lowlevel.current_iocp is _io_windows.current_iocp
    else:
        for name in WINDOWS_NAMES:
            assert not hasattr(vivace.lowlevel, name)


@pytest.mark.parametrize(
    "timeout,ms",
    [
        (0, 0),
        (-1, 0),
        (1e-6, 1),
        (0.0015, 2),
        (1.5, 1500),
        (1e12, w.INFINITE - 1),
        (math.inf, w.INFINITE),
    ],
)
def test_timeouts_in_milliseconds_round_up(timeout: float, ms: int) -> None:
    assert _io_windows._timeout_ms(timeout) == ms


def test_nan_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        _io_windows._timeout_ms(math.nan)


# ------------------------------------------------------------- runs over the fake


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKernel]:
    yield from run_over_fake(monkeypatch)


def _manager() -> WindowsIOManager:
    return _io_windows._manager()


def test_run_uses_the_manager_and_closes_its_handles(fake: FakeKernel) -> None:
    async def main() -> tuple[int, Any]:
        await wait_all_tasks_blocked()
        return _io_windows.current_iocp(), vivace.lowlevel.current_statistics().io_statistics

    port, stats = vivace.run(main)
    assert stats == IDLE
    assert stats.backend == "iocp"
    assert port in fake.closed_handles


def test_wait_readable_wakes_when_the_socket_is_ready(fake: FakeKernel) -> None:
    sock = fake.make_socket()
    done: list[str] = []

    async def reader() -> None:
        await vivace.lowlevel.wait_readable(sock)
        done.append("read")

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            assert [(p.sock, p.events) for p in fake.polls()] == [(sock, READ_EVENTS)]
            assert vivace.lowlevel.current_statistics().io_statistics.tasks_waiting_read == 2
            fake.set_ready(sock, SEND)  # not what the reader asked for
            await wait_all_tasks_blocked()
            assert done == []
            fake.set_ready(sock, RECEIVE)
        assert done == ["read"]
        assert fake.polls() == []
        assert vivace.lowlevel.current_statistics().io_statistics.tasks_waiting_read == 1

    vivace.run(main)


def test_wait_on_an_already_ready_socket_still_checkpoints(fake: FakeKernel) -> None:
    sock = fake.make_socket()
    fake.set_ready(sock, RECEIVE | SEND)

    async def main() -> None:
        await vivace.lowlevel.wait_writable(sock)
        with vivace.CancelScope() as scope:
            scope.cancel()
            await vivace.lowlevel.wait_readable(sock)
        assert scope.cancelled_caught

    vivace.run(main)


def test_one_poll_per_socket_covers_both_directions(fake: FakeKernel) -> None:
    sock = fake.make_socket()

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(vivace.lowlevel.wait_readable, sock)
            await wait_all_tasks_blocked()
            first = fake.polls()[0]
            nursery.start_soon(vivace.lowlevel.wait_writable, sock)
            await wait_all_tasks_blocked()
            # The read-only poll was cancelled and replaced by one for both.
            assert ("cancel_io", first.handle, w.address_of(first.overlapped)) in fake.calls
            assert [p.events for p in fake.polls()] == [READ_EVENTS | WRITE_EVENTS]
            stats = vivace.lowlevel.current_statistics().io_statistics
            assert (stats.tasks_waiting_read, stats.tasks_waiting_write) == (2, 1)
            # The writer wakes; the reader keeps waiting on a re-issued read-only poll.
            fake.set_ready(sock, SEND)
            await wait_all_tasks_blocked()
            assert [p.events for p in fake.polls()] == [READ_EVENTS]
            fake.set_ready(sock, RECEIVE)

    vivace.run(main)


def test_cancelling_one_waiter_reissues_the_poll_for_the_other(fake: FakeKernel) -> None:
    sock = fake.make_socket()

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            reader_scope = vivace.CancelScope()

            async def reader() -> None:
                with reader_scope:
                    await vivace.lowlevel.wait_readable(sock)

            nursery.start_soon(reader)
            nursery.start_soon(vivace.lowlevel.wait_writable, sock)
            await wait_all_tasks_blocked()
            assert [p.events for p in fake.polls()] == [READ_EVENTS | WRITE_EVENTS]
            cancels = fake.count("cancel_io")
            reader_scope.cancel()
            await wait_all_tasks_blocked()
            assert reader_scope.cancelled_caught
            assert fake.count("cancel_io") == cancels + 1
            assert [p.events for p in fake.polls()] == [WRITE_EVENTS]
            fake.set_ready(sock, SEND)

    vivace.run(main)


def test_a_superseded_poll_completing_late_wakes_nobody(fake: FakeKernel) -> None:
    # The cancel of the old poll is deferred, and the old poll then completes with
    # events (it raced its cancellation): it must be ignored as stale.
    sock = fake.make_socket()
    fake.cancel_mode = "deferred"
    woken: list[str] = []

    async def waiter(direction: str) -> None:
        wait = vivace.lowlevel.wait_readable if direction == "r" else vivace.lowlevel.wait_writable
        await wait(sock)
        woken.append(direction)

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter, "r")
            await wait_all_tasks_blocked()
            old = fake.polls()[0]
            nursery.start_soon(waiter, "w")
            await wait_all_tasks_blocked()
            assert old.cancel_requested
            fake._finish_poll(old, RECEIVE)  # the old, read-only poll fires anyway
            await wait_all_tasks_blocked()
            assert woken == []  # the current poll decides, not the stale one
            assert len(fake.polls()) == 1
            fake.set_ready(sock, RECEIVE | SEND)
        assert sorted(woken) == ["r", "w"]

    vivace.run(main)


def test_second_waiter_in_one_direction_is_busy(fake: FakeKernel) -> None:
    sock = fake.make_socket(layered=True)

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(vivace.lowlevel.wait_readable, sock)
            await wait_all_tasks_blocked()
            polls = fake.count("afd_poll")
            with pytest.raises(vivace.BusyResourceError):
                await vivace.lowlevel.wait_readable(sock)
            assert fake.count("afd_poll") == polls  # nothing changed
            fake.set_ready(sock, RECEIVE)

    vivace.run(main)


def test_waiters_are_keyed_by_the_base_socket(fake: FakeKernel) -> None:
    wrapper = fake.make_socket(layered=True)
    base = fake.sockets[wrapper].base

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(vivace.lowlevel.wait_readable, wrapper)
            await wait_all_tasks_blocked()
            assert [p.sock for p in fake.polls()] == [base]
            with pytest.raises(vivace.BusyResourceError):
                await vivace.lowlevel.wait_readable(base)
            fake.set_ready(base, RECEIVE)

    vivace.run(main)


def test_notify_closing_wakes_both_waiters_with_closed_resource_error(fake: FakeKernel) -> None:
    sock = fake.make_socket(layered=True)
    errors: list[BaseException] = []

    async def waiter(wait: Any) -> None:
        try:
            await wait(sock)
        except vivace.ClosedResourceError as exc:
            errors.append(exc)

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter, vivace.lowlevel.wait_readable)
            nursery.start_soon(waiter, vivace.lowlevel.wait_writable)
            await wait_all_tasks_blocked()
            vivace.lowlevel.notify_closing(sock)
            assert fake.polls() == []  # the poll was cancelled
        assert len(errors) == 2 and errors[0] is not errors[1]
        await wait_all_tasks_blocked()
        assert vivace.lowlevel.current_statistics().io_statistics == IDLE
        # Unknown sockets, closed ones (-1) and non-sockets are fine.
        vivace.lowlevel.notify_closing(fake.make_socket())
        vivace.lowlevel.notify_closing(-1)
        vivace.lowlevel.notify_closing(fake.make_file())

    vivace.run(main)


def test_socket_closed_under_a_poll_wakes_its_waiters(fake: FakeKernel) -> None:
    # AFD completes the poll with LOCAL_CLOSE; both directions count it as ready, and
    # the next wait is refused at once (the socket is gone).
    sock = fake.make_socket()

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(vivace.lowlevel.wait_readable, sock)
            nursery.start_soon(vivace.lowlevel.wait_writable, sock)
            await wait_all_tasks_blocked()
            fake.close_socket(sock)
        with pytest.raises(OSError) as info:
            await vivace.lowlevel.wait_readable(sock)
        assert info.value.winerror == w.WSAENOTSOCK  # type: ignore[attr-defined,unused-ignore]

    vivace.run(main)


def test_a_failed_poll_fails_its_waiters_with_the_error(fake: FakeKernel) -> None:
    sock = fake.make_socket()
    errors: list[Any] = []

    async def waiter(wait: Any) -> None:
        try:
            await wait(sock)
        except OSError as exc:
            errors.append(exc.winerror)  # type: ignore[attr-defined,unused-ignore]

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter, vivace.lowlevel.wait_readable)
            nursery.start_soon(waiter, vivace.lowlevel.wait_writable)
            await wait_all_tasks_blocked()
            fake.fail_polls(sock, STATUS_CONNECTION_RESET)
        assert errors == [64, 64]
        assert sock not in _manager()._afd.sockets

    vivace.run(main)


def test_a_refused_poll_raises_at_once_and_fails_the_other_waiter(fake: FakeKernel) -> None:
    sock = fake.make_socket()
    errors: list[Any] = []

    async def reader() -> None:
        try:
            await vivace.lowlevel.wait_readable(sock)
        except OSError as exc:
            errors.append(exc)

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            fake.sockets[sock].poll_error = w.ERROR_INVALID_HANDLE
            with pytest.raises(OSError) as info:
                await vivace.lowlevel.wait_writable(sock)
            assert info.value.winerror == w.ERROR_INVALID_HANDLE  # type: ignore[attr-defined,unused-ignore]
        assert len(errors) == 1 and errors[0] is not info.value
        await wait_all_tasks_blocked()
        assert vivace.lowlevel.current_statistics().io_statistics == IDLE

    vivace.run(main)


def test_a_poll_that_cannot_be_reissued_fails_the_remaining_waiter(fake: FakeKernel) -> None:
    sock = fake.make_socket()
    outcomes: dict[str, Any] = {}

    async def waiter(name: str, wait: Any) -> None:
        try:
            await wait(sock)
        except OSError as exc:
            outcomes[name] = exc.winerror  # type: ignore[attr-defined,unused-ignore]
        else:
            outcomes[name] = "ready"

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter, "r", vivace.lowlevel.wait_readable)
            nursery.start_soon(waiter, "w", vivace.lowlevel.wait_writable)
            await wait_all_tasks_blocked()
            fake.sockets[sock].poll_error = w.ERROR_INVALID_HANDLE
            fake.set_ready(sock, SEND)  # the writer wakes; re-polling for the reader fails
        assert outcomes == {"w": "ready", "r": w.ERROR_INVALID_HANDLE}
        # A stray entry with the AFD key (no poll of ours at that address) is ignored.
        fake.post(_io_windows.current_iocp(), 0, _io_windows.KEY_AFD_POLL, 0x999)
        await vivace.lowlevel.checkpoint()

    vivace.run(main)


def test_waiting_on_a_non_socket_is_refused_without_a_poll(fake: FakeKernel) -> None:
    async def main() -> None:
        polls = fake.count("afd_poll")
        with pytest.raises(OSError) as info:
            await vivace.lowlevel.wait_readable(fake.make_file())
        assert info.value.winerror == w.WSAENOTSOCK  # type: ignore[attr-defined,unused-ignore]
        assert fake.count("afd_poll") == polls

    vivace.run(main)


def test_sockets_are_spread_over_afd_handles(
    fake: FakeKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_io_windows_afd, "MAX_GROUP", 2)
    socks = [fake.make_socket() for _ in range(5)]

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            for sock in socks:
                nursery.start_soon(vivace.lowlevel.wait_readable, sock)
            await wait_all_tasks_blocked()
            assert fake.count("open_afd") == 3
            per_handle: dict[int, int] = {}
            for poll in fake.polls():
                per_handle[poll.handle] = per_handle.get(poll.handle, 0) + 1
            assert sorted(per_handle.values()) == [1, 2, 2]
            # Every AFD handle is bound to the port with the AFD key.
            assert all(fake.bindings[h][1] == 0 for h in per_handle)
            for sock in socks[:2]:
                fake.set_ready(sock, RECEIVE)
            await wait_all_tasks_blocked()
            nursery.start_soon(vivace.lowlevel.wait_writable, socks[0])
            await wait_all_tasks_blocked()
            assert fake.count("open_afd") == 3  # a vacancy was reused
            for sock in socks:
                fake.set_ready(sock, RECEIVE | SEND)
        await wait_all_tasks_blocked()
        assert _manager().statistics() == IDLE

    vivace.run(main)
    assert len([h for h in fake.closed_handles if h not in fake.ports]) >= 4


def test_run_sync_soon_from_a_thread_wakes_the_run(fake: FakeKernel) -> None:
    # The run's own wakeup socket is polled through the manager like any socket.
    async def main() -> str:
        token = vivace.lowlevel.current_trio_token()
        got: list[str] = []
        event = vivace.Event()

        def in_thread() -> None:
            token.run_sync_soon(lambda: (got.append("called"), event.set()))

        thread = threading.Thread(target=in_thread)
        thread.start()
        await event.wait()
        thread.join()
        return got[0]

    assert vivace.run(main) == "called"


def test_socket_operations_run_over_the_manager(fake: FakeKernel) -> None:
    # The socket operations Windows uses (the reference twins: no compiled _sockio is
    # built there) park through the manager's wait_readable/wait_writable; here the
    # fake polls the real socketpair for them.
    from vivace._core import _sockio_py

    async def main() -> bytes:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b:
            got: list[bytes] = []

            async def receiver() -> None:
                got.append(await _sockio_py.sock_recv(a, 100))

            async with vivace.open_nursery() as nursery:
                nursery.start_soon(receiver)
                await wait_all_tasks_blocked()
                assert [p.sock for p in fake.ops.values() if p.kind == "poll"].count(
                    a.fileno()
                ) == 1
                await _sockio_py.sock_send_all(b, b"over AFD")
            return got[0]

    assert vivace.run(main) == b"over AFD"


def test_guest_mode_waits_on_the_port_in_a_worker_thread(fake: FakeKernel) -> None:
    todo: queue.Queue[Any] = queue.Queue()
    done: list[Any] = []
    sock = fake.make_socket()

    async def main() -> str:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(vivace.lowlevel.wait_readable, sock)
            await wait_all_tasks_blocked()
            # From another thread, once the guest blocks in the port (in its worker
            # thread: guest mode never blocks the host's).
            token = vivace.lowlevel.current_trio_token()
            fake.blocking.clear()

            def wake() -> None:
                assert fake.blocking.wait(60)
                token.run_sync_soon(fake.set_ready, sock, RECEIVE)

            thread = threading.Thread(target=wake)
            thread.start()
        thread.join()
        return "done"

    vivace.lowlevel.start_guest_run(
        main, run_sync_soon_threadsafe=todo.put, done_callback=done.append
    )
    while not done:
        todo.get(timeout=60)()
    assert done[0].unwrap() == "done"
    main_thread = threading.main_thread().name
    assert [c for c in fake.calls if c[0] == "block"][-1][2] != main_thread


def test_force_wakeup_posts_to_the_port_from_any_thread() -> None:
    fake = FakeKernel()
    manager = WindowsIOManager(fake)
    try:
        assert isinstance(manager, _io_manager.IOManager)
        assert isinstance(manager.statistics(), _io_manager.IOStatistics)
        thread = threading.Thread(target=manager.force_wakeup)
        thread.start()
        assert manager.get_events(math.inf) == 1  # blocks until the post arrives
        thread.join()
        assert ("post", KEY_FORCE_WAKEUP, 0) in fake.calls
        manager.process_events(1)  # nothing to do
        assert manager.get_events(0) == 0
    finally:
        manager.close()
        manager.close()
        fake.dispose()
    with pytest.raises(RuntimeError, match="closed"):
        manager.get_events(0)


def test_the_windows_functions_need_the_windows_manager() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="Windows I/O manager"):
            _io_windows.current_iocp()

    vivace.run(main)  # the platform's own backend
    with pytest.raises(RuntimeError, match="async context"):
        _io_windows.current_iocp()
