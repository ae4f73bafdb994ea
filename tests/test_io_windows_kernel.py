"""``Win32Kernel``, the real kernel surface, on any platform: its DLLs are replaced by
cffi callbacks built from the declared signatures, so every call it makes is
converted to C exactly as a call into kernel32/ntdll/ws2_32 would be (an int where a
HANDLE is declared, a wrong argument count, a Python object for a pointer: all fail
here as they would on Windows). The callbacks act out the documented behaviour --
return values, the last error, the out-parameters -- and record what they were given.
What this cannot show is how Windows itself behaves; that is for a Windows machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vivace._core import _windows_cffi as w
from vivace._core._windows_cffi import ffi


class FakeDll:
    """The functions of the DLLs as C callbacks with the declared signatures."""

    def __init__(self) -> None:
        self.last_error = 0
        self.calls: list[tuple[Any, ...]] = []
        self.errors: list[BaseException] = []
        self.behaviour: dict[str, Callable[..., int]] = {}
        self._keep: list[Any] = []

    def fail(self, code: int) -> int:
        self.last_error = code
        return 0

    def __getattr__(self, name: str) -> Any:
        decl = ffi._parser._declarations[f"function {name}"][0]

        def call(*args: Any) -> int:
            self.calls.append((name, *args))
            return self.behaviour[name](*args)

        def onerror(exc_type: Any, exc: BaseException, tb: Any) -> None:
            self.errors.append(exc)

        callback = ffi.callback(decl.get_c_name(), call, onerror=onerror)
        self._keep.append(callback)
        setattr(self, name, callback)
        return callback


@pytest.fixture
def dll(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDll]:
    fake = FakeDll()

    def getwinerror(code: int = -1) -> tuple[int, str]:
        code = fake.last_error if code == -1 else code
        return code, f"message {code}"

    monkeypatch.setattr(ffi, "getwinerror", getwinerror, raising=False)
    yield fake
    assert fake.errors == [], "a call did not match its declaration"


@pytest.fixture
def kernel(dll: FakeDll) -> w.Win32Kernel:
    k = w.Win32Kernel.__new__(w.Win32Kernel)  # its __init__ would load the real DLLs
    k._k32 = k._nt = k._ws2 = dll
    return k


def _h(value: int) -> Any:
    return ffi.cast("HANDLE", value)


def test_create_port_and_associate(kernel: w.Win32Kernel, dll: FakeDll) -> None:
    dll.behaviour["CreateIoCompletionPort"] = lambda h, port, key, n: (
        _h(0x70) if port == ffi.NULL else port
    )
    dll.behaviour["SetFileCompletionNotificationModes"] = lambda h, flags: 1
    assert kernel.create_port() == 0x70
    kernel.associate(0x44, 0x70, 3)
    create, assoc, modes = dll.calls
    assert w.address_of(create[1]) == w.INVALID_HANDLE_VALUE and create[3:] == (0, 0)
    assert w.address_of(assoc[1]) == 0x44 and w.address_of(assoc[2]) == 0x70
    assert assoc[3:] == (3, 0)
    assert modes[2] == w.FILE_SKIP_SET_EVENT_ON_HANDLE
    dll.behaviour["CreateIoCompletionPort"] = lambda *args: dll.fail(6) or ffi.NULL
    with pytest.raises(OSError) as info:
        kernel.create_port()
    assert info.value.winerror == 6  # type: ignore[attr-defined,unused-ignore]


def test_dequeue_fills_entries_and_maps_the_timeout(kernel: w.Win32Kernel, dll: FakeDll) -> None:
    entries = ffi.new("OVERLAPPED_ENTRY[]", 4)

    def dequeue(port: Any, ents: Any, count: int, removed: Any, ms: int, alertable: int) -> int:
        assert (w.address_of(port), count, ms, alertable) == (0x70, 4, 250, 0)
        ents[0].lpCompletionKey = 9
        ents[0].dwNumberOfBytesTransferred = 12
        removed[0] = 1
        return 1

    dll.behaviour["GetQueuedCompletionStatusEx"] = dequeue
    assert kernel.dequeue(0x70, entries, 4, 250) == 1
    assert (entries[0].lpCompletionKey, entries[0].dwNumberOfBytesTransferred) == (9, 12)
    dll.behaviour["GetQueuedCompletionStatusEx"] = lambda *args: dll.fail(w.WAIT_TIMEOUT)
    assert kernel.dequeue(0x70, entries, 4, 250) == 0
    dll.behaviour["GetQueuedCompletionStatusEx"] = lambda *args: dll.fail(6)
    with pytest.raises(OSError):
        kernel.dequeue(0x70, entries, 4, 250)


def test_post_and_cancel(kernel: w.Win32Kernel, dll: FakeDll) -> None:
    dll.behaviour["PostQueuedCompletionStatus"] = lambda port, n, key, ov: 1
    kernel.post(0x70, 5, 3, 0x1000)
    _, port, n, key, ov = dll.calls[-1]
    assert (w.address_of(port), n, key, w.address_of(ov)) == (0x70, 5, 3, 0x1000)
    overlapped = ffi.new("OVERLAPPED *")
    dll.behaviour["CancelIoEx"] = lambda h, ov: 1
    assert kernel.cancel_io(0x44, overlapped) is True
    assert dll.calls[-1][2] == overlapped
    dll.behaviour["CancelIoEx"] = lambda h, ov: dll.fail(w.ERROR_NOT_FOUND)
    assert kernel.cancel_io(0x44, overlapped) is False
    dll.behaviour["CancelIoEx"] = lambda h, ov: dll.fail(6)
    with pytest.raises(OSError):
        kernel.cancel_io(0x44, overlapped)


def test_open_afd_passes_the_device_path(kernel: w.Win32Kernel, dll: FakeDll) -> None:
    seen: list[str] = []

    def create_file(
        path: Any, access: int, share: int, sa: Any, disp: int, flags: int, t: Any
    ) -> Any:
        units = []
        i = 0
        while path[i]:
            units.append(path[i])
            i += 1
        seen.append("".join(map(chr, units)))
        assert (access, share, disp, flags) == (
            w.SYNCHRONIZE,
            w.FILE_SHARE_READ | w.FILE_SHARE_WRITE,
            w.OPEN_EXISTING,
            w.FILE_FLAG_OVERLAPPED,
        )
        return _h(0x88)

    dll.behaviour["CreateFileW"] = create_file
    assert kernel.open_afd() == 0x88
    assert seen == ["\\\\.\\GLOBALROOT\\Device\\Afd\\Vivace"]
    dll.behaviour["CreateFileW"] = lambda *args: dll.fail(5) or _h(w.INVALID_HANDLE_VALUE)
    with pytest.raises(OSError):
        kernel.open_afd()


def test_afd_poll_and_file_io_accept_pending(kernel: w.Win32Kernel, dll: FakeDll) -> None:
    info = ffi.new("AFD_POLL_INFO *")
    overlapped = ffi.new("OVERLAPPED *")
    buf = ffi.new("char[]", 8)

    def ioctl(
        h: Any, code: int, inb: Any, insz: int, outb: Any, outsz: int, ret: Any, ov: Any
    ) -> int:
        assert code == w.IOCTL_AFD_POLL and insz == outsz == 32
        assert inb == outb == info and ov == overlapped and ret == ffi.NULL
        return dll.fail(w.ERROR_IO_PENDING)

    dll.behaviour["DeviceIoControl"] = ioctl
    kernel.afd_poll(0x88, info, overlapped)
    dll.behaviour["ReadFile"] = lambda h, b, n, got, ov: dll.fail(w.ERROR_IO_PENDING)
    dll.behaviour["WriteFile"] = lambda h, b, n, got, ov: 1  # done at once: still queued
    kernel.read_file(0x44, buf, 8, overlapped)
    kernel.write_file(0x44, buf, 8, overlapped)
    assert [c[3] for c in dll.calls[-2:]] == [8, 8]
    for name, call in (
        ("DeviceIoControl", lambda: kernel.afd_poll(0x88, info, overlapped)),
        ("ReadFile", lambda: kernel.read_file(0x44, buf, 8, overlapped)),
        ("WriteFile", lambda: kernel.write_file(0x44, buf, 8, overlapped)),
    ):
        dll.behaviour[name] = lambda *args: dll.fail(6)
        with pytest.raises(OSError) as exc:
            call()
        assert exc.value.winerror == 6  # type: ignore[attr-defined,unused-ignore]


def test_base_socket_digs_under_layered_providers(kernel: w.Win32Kernel, dll: FakeDll) -> None:
    layers = {0x10: 0x20, 0x20: 0x30}  # SIO_BSP_HANDLE_POLL answers, one layer each

    def ioctl(
        s: int, code: int, inb: Any, insz: int, out: Any, outsz: int, got: Any, ov: Any, cr: Any
    ) -> int:
        assert outsz == 8
        handle_out = ffi.cast("HANDLE *", out)
        if code == w.SIO_BASE_HANDLE:
            if s in layers:  # the provider refuses to reveal the base
                dll.last_error = 10022
                return -1
            handle_out[0] = _h(s)
            return 0
        assert code == w.SIO_BSP_HANDLE_POLL
        handle_out[0] = _h(layers[s])
        return 0

    dll.behaviour["WSAIoctl"] = ioctl
    dll.behaviour["WSAGetLastError"] = lambda: dll.last_error
    assert kernel.base_socket(0x10) == 0x30
    layers[0x40] = 0x40  # a provider that hides the base and points at itself
    with pytest.raises(RuntimeError, match="layered"):
        kernel.base_socket(0x40)
    dll.behaviour["WSAIoctl"] = lambda *args: dll.fail(w.WSAENOTSOCK) - 1
    with pytest.raises(OSError) as info:
        kernel.base_socket(0x50)
    assert info.value.winerror == w.WSAENOTSOCK  # type: ignore[attr-defined,unused-ignore]


def test_status_conversion_and_objects(kernel: w.Win32Kernel, dll: FakeDll) -> None:
    dll.behaviour["RtlNtStatusToDosError"] = lambda status: (
        995 if status == w.STATUS_CANCELLED else 0
    )
    assert kernel.nt_status_to_winerror(w.STATUS_CANCELLED) == 995
    dll.behaviour["CreateEventW"] = lambda sa, manual, initial, name: _h(0x90)
    assert kernel.create_event() == 0x90
    assert dll.calls[-1][2:4] == (1, 0)  # manual reset, not signaled
    dll.behaviour["SetEvent"] = lambda h: 1
    kernel.set_event(0x90)
    dll.behaviour["WaitForSingleObject"] = lambda h, ms: w.WAIT_TIMEOUT
    assert kernel.wait_for_object(0x60, 0) == w.WAIT_TIMEOUT

    def wait_many(n: int, handles: Any, wait_all: int, ms: int) -> int:
        assert [w.address_of(handles[i]) for i in range(n)] == [0x60, 0x90]
        assert (wait_all, ms) == (0, w.INFINITE)
        return w.WAIT_OBJECT_0 + 1

    dll.behaviour["WaitForMultipleObjects"] = wait_many
    assert kernel.wait_any((0x60, 0x90), w.INFINITE) == 1
    dll.behaviour["CloseHandle"] = lambda h: 1
    kernel.close_handle(0x90)
    for name, call in (
        ("WaitForSingleObject", lambda: kernel.wait_for_object(0x60, 0)),
        ("WaitForMultipleObjects", lambda: kernel.wait_any((0x60,), 0)),
    ):
        dll.behaviour[name] = lambda *args: (dll.fail(6), w.WAIT_FAILED)[1]
        with pytest.raises(OSError):
            call()
    for name, call, failed in (
        ("CreateEventW", kernel.create_event, ffi.NULL),
        ("SetEvent", lambda: kernel.set_event(0x90), 0),
        ("CloseHandle", lambda: kernel.close_handle(0x90), 0),
        ("PostQueuedCompletionStatus", lambda: kernel.post(0x70, 0, 0, 0), 0),
        ("SetFileCompletionNotificationModes", lambda: kernel.associate(1, 2, 3), 0),
    ):
        dll.behaviour["CreateIoCompletionPort"] = lambda h, port, key, n: port
        dll.behaviour[name] = lambda *args, failed=failed: dll.fail(6) or failed
        with pytest.raises(OSError):
            call()
