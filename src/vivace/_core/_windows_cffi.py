"""The Win32 calls of the IOCP backend, through cffi in ABI mode (no compiler needed).

Design notes
------------
* The declarations (``CDEF``) are written from Microsoft's documentation of each call
  and struct, with explicit widths: cffi parses them on any platform, and on Linux its
  ``long`` is 8 bytes where Windows' is 4, so no Windows type here is spelled with
  ``long`` or ``wchar_t``. The layouts are those of 64-bit Windows (LLP64), which
  ``tests/test_io_windows.py`` checks field by field. The AFD structs and ioctl are not
  documented by Microsoft; their layout is the one the wepoll and libuv projects and
  ReactOS's headers agree on.
* The module imports everywhere (the ``ffi`` object, the constants, the structs that
  ``ffi.new`` builds); only ``Win32Kernel()`` loads the DLLs, and only on Windows.
  That is what lets the manager's logic run on Linux over a simulated kernel.
* ``Win32Kernel`` is the "kernel surface": every system call the manager makes goes
  through one of its methods, which take handles as ints and raise the OSError of the
  call's error code. ``KernelSurface`` is its interface; the tests' fake implements
  it too. Keeping conversions here keeps the manager free of cffi call details.
* Errors: cffi saves GetLastError right after each call (``ffi.getwinerror``); reading
  it later through kernel32 could see a value clobbered by the interpreter.
  ``winerror_exception`` builds ``OSError(0, message, None, code)``, from which CPython
  on Windows picks errno and the OSError subclass; elsewhere (the simulated kernel) it
  builds a plain OSError and sets ``winerror`` so the same checks work.
"""

from __future__ import annotations

import errno
import sys
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

import cffi  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from collections.abc import Sequence

CData = Any  # cffi's cdata objects (cffi ships no type information)

CDEF: Final = r"""
typedef int32_t BOOL;
typedef uint8_t BOOLEAN;
typedef uint8_t UCHAR;
typedef uint32_t DWORD;
typedef uint32_t ULONG;
typedef int32_t NTSTATUS;
typedef uint64_t ULONG_PTR;
typedef int64_t LARGE_INTEGER;
typedef void *HANDLE;
typedef uintptr_t SOCKET;

typedef struct _OVERLAPPED {
    ULONG_PTR Internal;
    ULONG_PTR InternalHigh;
    union {
        struct {
            DWORD Offset;
            DWORD OffsetHigh;
        } DUMMYSTRUCTNAME;
        void *Pointer;
    } DUMMYUNIONNAME;
    HANDLE hEvent;
} OVERLAPPED, *LPOVERLAPPED;

typedef struct _OVERLAPPED_ENTRY {
    ULONG_PTR lpCompletionKey;
    LPOVERLAPPED lpOverlapped;
    ULONG_PTR Internal;
    DWORD dwNumberOfBytesTransferred;
} OVERLAPPED_ENTRY;

typedef struct _AFD_POLL_HANDLE_INFO {
    HANDLE Handle;
    ULONG Events;
    NTSTATUS Status;
} AFD_POLL_HANDLE_INFO;

typedef struct _AFD_POLL_INFO {
    LARGE_INTEGER Timeout;
    ULONG NumberOfHandles;
    ULONG Exclusive;
    AFD_POLL_HANDLE_INFO Handles[1];
} AFD_POLL_INFO;

/* kernel32 */
HANDLE WINAPI CreateIoCompletionPort(HANDLE FileHandle, HANDLE ExistingCompletionPort,
                                     ULONG_PTR CompletionKey,
                                     DWORD NumberOfConcurrentThreads);
BOOL WINAPI GetQueuedCompletionStatusEx(HANDLE CompletionPort,
                                        OVERLAPPED_ENTRY *lpCompletionPortEntries,
                                        ULONG ulCount, ULONG *ulNumEntriesRemoved,
                                        DWORD dwMilliseconds, BOOL fAlertable);
BOOL WINAPI PostQueuedCompletionStatus(HANDLE CompletionPort,
                                       DWORD dwNumberOfBytesTransferred,
                                       ULONG_PTR dwCompletionKey,
                                       LPOVERLAPPED lpOverlapped);
BOOL WINAPI SetFileCompletionNotificationModes(HANDLE FileHandle, UCHAR Flags);
BOOL WINAPI CancelIoEx(HANDLE hFile, LPOVERLAPPED lpOverlapped);
BOOL WINAPI DeviceIoControl(HANDLE hDevice, DWORD dwIoControlCode, void *lpInBuffer,
                            DWORD nInBufferSize, void *lpOutBuffer, DWORD nOutBufferSize,
                            DWORD *lpBytesReturned, LPOVERLAPPED lpOverlapped);
BOOL WINAPI ReadFile(HANDLE hFile, void *lpBuffer, DWORD nNumberOfBytesToRead,
                     DWORD *lpNumberOfBytesRead, LPOVERLAPPED lpOverlapped);
BOOL WINAPI WriteFile(HANDLE hFile, const void *lpBuffer, DWORD nNumberOfBytesToWrite,
                      DWORD *lpNumberOfBytesWritten, LPOVERLAPPED lpOverlapped);
HANDLE WINAPI CreateFileW(const uint16_t *lpFileName, DWORD dwDesiredAccess,
                          DWORD dwShareMode, void *lpSecurityAttributes,
                          DWORD dwCreationDisposition, DWORD dwFlagsAndAttributes,
                          HANDLE hTemplateFile);
HANDLE WINAPI CreateEventW(void *lpEventAttributes, BOOL bManualReset,
                           BOOL bInitialState, const uint16_t *lpName);
BOOL WINAPI SetEvent(HANDLE hEvent);
DWORD WINAPI WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);
DWORD WINAPI WaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles,
                                    BOOL bWaitAll, DWORD dwMilliseconds);
BOOL WINAPI CloseHandle(HANDLE hObject);

/* ntdll */
ULONG WINAPI RtlNtStatusToDosError(NTSTATUS Status);

/* ws2_32 */
int WINAPI WSAIoctl(SOCKET s, DWORD dwIoControlCode, void *lpvInBuffer, DWORD cbInBuffer,
                    void *lpvOutBuffer, DWORD cbOutBuffer, DWORD *lpcbBytesReturned,
                    void *lpOverlapped, void *lpCompletionRoutine);
int WINAPI WSAGetLastError(void);
"""

ffi: Final = cffi.FFI()
ffi.cdef(CDEF)

# ----------------------------------------------------------------------- the constants

INVALID_HANDLE_VALUE: Final = 2**64 - 1  # (HANDLE)-1, as an unsigned pointer value
INFINITE: Final = 0xFFFFFFFF

# Win32 error codes (winerror.h) and wait results.
ERROR_INVALID_HANDLE: Final = 6
ERROR_INVALID_PARAMETER: Final = 87
ERROR_OPERATION_ABORTED: Final = 995
ERROR_IO_PENDING: Final = 997
ERROR_NOT_FOUND: Final = 1168
WSAENOTSOCK: Final = 10038
WAIT_OBJECT_0: Final = 0x000
WAIT_ABANDONED_0: Final = 0x080
WAIT_TIMEOUT: Final = 0x102
WAIT_FAILED: Final = 0xFFFFFFFF

# NTSTATUS values an OVERLAPPED's Internal field may hold.
STATUS_SUCCESS: Final = 0
STATUS_CANCELLED: Final = 0xC0000120 - 2**32  # NTSTATUS is signed

# CreateFileW and SetFileCompletionNotificationModes arguments.
SYNCHRONIZE: Final = 0x00100000
FILE_SHARE_READ: Final = 0x1
FILE_SHARE_WRITE: Final = 0x2
OPEN_EXISTING: Final = 3
FILE_FLAG_OVERLAPPED: Final = 0x40000000
FILE_SKIP_SET_EVENT_ON_HANDLE: Final = 0x2

# WSAIoctl codes that find the provider's base socket under layered ones.
SIO_BASE_HANDLE: Final = 0x48000022
SIO_BSP_HANDLE_POLL: Final = 0x4800001D

# The AFD driver's poll request and its event bits (afd.h in wepoll, ReactOS).
IOCTL_AFD_POLL: Final = 0x00012024
AFD_POLL_RECEIVE: Final = 0x0001
AFD_POLL_RECEIVE_EXPEDITED: Final = 0x0002
AFD_POLL_SEND: Final = 0x0004
AFD_POLL_DISCONNECT: Final = 0x0008
AFD_POLL_ABORT: Final = 0x0010
AFD_POLL_LOCAL_CLOSE: Final = 0x0020
AFD_POLL_CONNECT: Final = 0x0040
AFD_POLL_ACCEPT: Final = 0x0080
AFD_POLL_CONNECT_FAIL: Final = 0x0100

# The device path of the AFD driver, through the NT namespace; the last component is
# free text that debugging tools show.
AFD_DEVICE_PATH: Final = "\\\\.\\GLOBALROOT\\Device\\Afd\\Vivace"

# ---------------------------------------------------------------------- small helpers

# What CPython's winerror_to_errno gives for the codes the simulated kernel raises
# (on Windows, CPython itself maps every code).
_ERRNO_OF = {
    ERROR_INVALID_HANDLE: errno.EBADF,
    ERROR_INVALID_PARAMETER: errno.EINVAL,
    WSAENOTSOCK: errno.ENOTSOCK,
}


def winerror_exception(code: int, message: str | None = None) -> OSError:
    """The OSError for Win32 error *code*, with ``winerror`` set on every platform."""
    if sys.platform == "win32":
        if message is None:
            message = ffi.getwinerror(code)[1]
        return OSError(0, message, None, code)
    exc = OSError(_ERRNO_OF.get(code, errno.EINVAL), message or f"[WinError {code}]")
    exc.winerror = code  # type: ignore[attr-defined,unused-ignore]
    return exc


def raise_last_error() -> NoReturn:
    """Raise the OSError of the last failed call in this thread (Windows only)."""
    code, message = ffi.getwinerror()
    raise winerror_exception(code, message)


def handle_value(obj: int | CData) -> int:
    """A handle argument (an int, or a cffi pointer of any type) as an unsigned
    pointer-sized int; negative ints wrap, as a C cast to HANDLE would."""
    if isinstance(obj, int):
        return obj & INVALID_HANDLE_VALUE
    return int(ffi.cast("uintptr_t", obj))


def address_of(ptr: CData) -> int:
    """A cffi pointer's address (0 for NULL)."""
    return int(ffi.cast("uintptr_t", ptr))


# ------------------------------------------------------------------ the kernel surface


class KernelSurface(Protocol):
    """Every system call the IOCP manager makes. Handles are ints; failures raise the
    OSError of the Win32 error (``winerror`` set). Implemented by ``Win32Kernel`` and by
    the tests' simulated kernel."""

    def create_port(self) -> int: ...
    def associate(self, handle: int, port: int, key: int) -> None:
        """Bind *handle* to *port*: its completions arrive with *key*."""
        ...

    def dequeue(self, port: int, entries: CData, count: int, timeout_ms: int) -> int:
        """Fill up to *count* OVERLAPPED_ENTRYs; the number filled (0 on timeout)."""
        ...

    def post(self, port: int, transferred: int, key: int, overlapped: int) -> None:
        """Queue a completion (*overlapped*: an address, 0 for NULL). Any thread."""
        ...

    def cancel_io(self, handle: int, overlapped: CData) -> bool:
        """Ask to cancel the operation; False if none is pending (ERROR_NOT_FOUND)."""
        ...

    def open_afd(self) -> int: ...
    def base_socket(self, sock: int) -> int: ...
    def afd_poll(self, afd: int, poll_info: CData, overlapped: CData) -> None:
        """Issue IOCTL_AFD_POLL; returns if it is pending (or done), else raises."""
        ...

    def read_file(self, handle: int, buffer: CData, size: int, overlapped: CData) -> None: ...
    def write_file(self, handle: int, buffer: CData, size: int, overlapped: CData) -> None: ...
    def nt_status_to_winerror(self, status: int) -> int: ...
    def wait_for_object(self, handle: int, timeout_ms: int) -> int: ...
    def wait_any(self, handles: Sequence[int], timeout_ms: int) -> int: ...
    def create_event(self) -> int: ...
    def set_event(self, event: int) -> None: ...
    def close_handle(self, handle: int) -> None: ...


class Win32Kernel:
    """The real kernel surface: kernel32, ntdll and ws2_32 through ``ffi``."""

    def __init__(self) -> None:
        if sys.platform != "win32":
            raise OSError(errno.ENOSYS, "the Win32 API exists only on Windows")
        self._k32: Any = ffi.dlopen("kernel32.dll")
        self._nt: Any = ffi.dlopen("ntdll.dll")
        self._ws2: Any = ffi.dlopen("ws2_32.dll")

    @staticmethod
    def _h(handle: int) -> CData:
        return ffi.cast("HANDLE", handle)

    def create_port(self) -> int:
        port = self._k32.CreateIoCompletionPort(self._h(INVALID_HANDLE_VALUE), ffi.NULL, 0, 0)
        if port == ffi.NULL:
            raise_last_error()
        return address_of(port)

    def associate(self, handle: int, port: int, key: int) -> None:
        if self._k32.CreateIoCompletionPort(self._h(handle), self._h(port), key, 0) == ffi.NULL:
            raise_last_error()
        # A handle on the port is never waited on directly, so the kernel need not
        # signal it on each completion.
        if not self._k32.SetFileCompletionNotificationModes(
            self._h(handle), FILE_SKIP_SET_EVENT_ON_HANDLE
        ):
            raise_last_error()

    def dequeue(self, port: int, entries: CData, count: int, timeout_ms: int) -> int:
        removed = ffi.new("ULONG *")
        if not self._k32.GetQueuedCompletionStatusEx(
            self._h(port), entries, count, removed, timeout_ms, 0
        ):
            code, message = ffi.getwinerror()
            if code == WAIT_TIMEOUT:
                return 0
            raise winerror_exception(code, message)
        return int(removed[0])

    def post(self, port: int, transferred: int, key: int, overlapped: int) -> None:
        ov = ffi.cast("LPOVERLAPPED", overlapped)
        if not self._k32.PostQueuedCompletionStatus(self._h(port), transferred, key, ov):
            raise_last_error()

    def cancel_io(self, handle: int, overlapped: CData) -> bool:
        if self._k32.CancelIoEx(self._h(handle), overlapped):
            return True
        code, message = ffi.getwinerror()
        if code == ERROR_NOT_FOUND:
            return False
        raise winerror_exception(code, message)

    def open_afd(self) -> int:
        path = ffi.from_buffer(AFD_DEVICE_PATH.encode("utf-16-le") + b"\0\0")
        handle = self._k32.CreateFileW(
            ffi.cast("const uint16_t *", path),
            SYNCHRONIZE,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            ffi.NULL,
            OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED,
            ffi.NULL,
        )
        if address_of(handle) == INVALID_HANDLE_VALUE:
            raise_last_error()
        return address_of(handle)

    def _socket_ioctl(self, sock: int, code: int) -> int:
        out = ffi.new("HANDLE *")
        size = ffi.new("DWORD *")
        if self._ws2.WSAIoctl(
            sock, code, ffi.NULL, 0, out, ffi.sizeof("HANDLE"), size, ffi.NULL, ffi.NULL
        ):
            raise winerror_exception(self._ws2.WSAGetLastError())
        return address_of(out[0])

    def base_socket(self, sock: int) -> int:
        # Layered service providers may refuse SIO_BASE_HANDLE (some do, to stop
        # anyone bypassing them) but answer SIO_BSP_HANDLE_POLL, one layer at a time.
        while True:
            try:
                return self._socket_ioctl(sock, SIO_BASE_HANDLE)
            except OSError as exc:
                if getattr(exc, "winerror", None) == WSAENOTSOCK:
                    raise
                below = self._socket_ioctl(sock, SIO_BSP_HANDLE_POLL)
                if below == sock:
                    raise RuntimeError(
                        "a layered network provider hides this socket's base handle "
                        "(SIO_BASE_HANDLE fails, SIO_BSP_HANDLE_POLL returns the same "
                        "socket); please report it to vivace with the output of "
                        "'netsh winsock show catalog'"
                    ) from exc
                sock = below

    def afd_poll(self, afd: int, poll_info: CData, overlapped: CData) -> None:
        size = ffi.sizeof("AFD_POLL_INFO")
        if not self._k32.DeviceIoControl(
            self._h(afd), IOCTL_AFD_POLL, poll_info, size, poll_info, size, ffi.NULL, overlapped
        ):
            code, message = ffi.getwinerror()
            if code != ERROR_IO_PENDING:
                raise winerror_exception(code, message)

    def read_file(self, handle: int, buffer: CData, size: int, overlapped: CData) -> None:
        if not self._k32.ReadFile(self._h(handle), buffer, size, ffi.NULL, overlapped):
            code, message = ffi.getwinerror()
            if code != ERROR_IO_PENDING:
                raise winerror_exception(code, message)

    def write_file(self, handle: int, buffer: CData, size: int, overlapped: CData) -> None:
        if not self._k32.WriteFile(self._h(handle), buffer, size, ffi.NULL, overlapped):
            code, message = ffi.getwinerror()
            if code != ERROR_IO_PENDING:
                raise winerror_exception(code, message)

    def nt_status_to_winerror(self, status: int) -> int:
        return int(self._nt.RtlNtStatusToDosError(status))

    def wait_for_object(self, handle: int, timeout_ms: int) -> int:
        result = int(self._k32.WaitForSingleObject(self._h(handle), timeout_ms))
        if result == WAIT_FAILED:
            raise_last_error()
        return result

    def wait_any(self, handles: Sequence[int], timeout_ms: int) -> int:
        array = ffi.new("HANDLE[]", [self._h(h) for h in handles])
        result = int(self._k32.WaitForMultipleObjects(len(handles), array, 0, timeout_ms))
        if result == WAIT_FAILED:
            raise_last_error()
        return result

    def create_event(self) -> int:
        event = self._k32.CreateEventW(ffi.NULL, 1, 0, ffi.NULL)  # manual reset, unset
        if event == ffi.NULL:
            raise_last_error()
        return address_of(event)

    def set_event(self, event: int) -> None:
        if not self._k32.SetEvent(self._h(event)):
            raise_last_error()

    def close_handle(self, handle: int) -> None:
        if not self._k32.CloseHandle(self._h(handle)):
            raise_last_error()
