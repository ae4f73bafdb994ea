"""A simulated Win32 kernel for the IOCP manager's tests: the ``KernelSurface`` of
``vivace._core._windows_cffi``, in Python, on any platform.

It models what the manager relies on, and lets a test decide every event:

* completion ports: FIFO queues of (key, bytes, OVERLAPPED address); ``post`` is safe
  from any thread (it also writes to a pipe, which a blocked ``dequeue`` watches);
* handles bound to a port (``associate``): their operations complete there, with the
  binding's key; an operation on an unbound handle completes nowhere, as on Windows;
* simulated sockets (``make_socket``), whose readiness the test sets
  (``set_ready``/``clear_ready``): an AFD poll completes, writing the events into the
  request's AFD_POLL_INFO, as soon as one asked-for event holds. Real fds (the run's
  own wakeup socketpair) are polled for real in ``dequeue``, so a run works whole;
* files (``make_file``) whose reads and writes stay pending until the test completes
  them (``complete_read``/``complete_write``/``fail_io``);
* CancelIoEx: by default the operation completes at once with STATUS_CANCELLED; with
  ``cancel_mode = "deferred"`` the cancel is only recorded, so the test can complete
  the operation normally afterwards (a completion racing the cancel) or let the cancel
  land (``finish_cancels``); ``cancel_mode = "missed"`` answers ERROR_NOT_FOUND;
* kernel objects (``make_object``, events) that ``wait_any`` blocks on until signaled.

``calls`` logs the interesting calls, for tests to assert on.
"""

from __future__ import annotations

import os
import select
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from vivace._core import _windows_cffi as w
from vivace._core._windows_cffi import ffi

STATUS_INVALID_HANDLE = 0xC0000008 - 2**32
STATUS_CONNECTION_RESET = 0xC000020D - 2**32
ERROR_NETNAME_DELETED = 64
_NT_TO_WIN = {
    w.STATUS_SUCCESS: 0,
    w.STATUS_CANCELLED: w.ERROR_OPERATION_ABORTED,
    STATUS_INVALID_HANDLE: w.ERROR_INVALID_HANDLE,
    STATUS_CONNECTION_RESET: ERROR_NETNAME_DELETED,
}
# A blocking dequeue with nothing that could end it fails after this long, so a broken
# test fails instead of hanging; no passing test comes near it.
HANG_GUARD_S = 20.0
_FIRST_FAKE_HANDLE = 0x10000


@dataclass
class _Op:
    kind: str  # "poll", "read", "write"
    handle: int  # the handle it was issued on (the AFD handle for polls)
    overlapped: Any
    buffer: Any = None
    size: int = 0
    sock: int = 0  # polls: the socket
    events: int = 0  # polls: asked-for events
    cancel_requested: bool = False


@dataclass
class FakeSocket:
    base: int
    ready: int = 0
    closed: bool = False
    poll_error: int = 0  # nonzero: afd_poll refuses the socket with this Win32 error


@dataclass
class FakeObject:
    signaled: bool = False


@dataclass
class FakeFile:
    written: bytearray = field(default_factory=bytearray)


class FakeKernel:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._next = _FIRST_FAKE_HANDLE
        self.ports: dict[int, deque[tuple[int, int, int]]] = {}
        self.bindings: dict[int, tuple[int, int]] = {}
        self.afd_handles: set[int] = set()
        self.sockets: dict[int, FakeSocket] = {}
        self.files: dict[int, FakeFile] = {}
        self.objects: dict[int, FakeObject] = {}
        self.ops: dict[int, _Op] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.cancel_mode = "immediate"
        self.blocking = threading.Event()  # set when a dequeue is about to block
        self.closed_handles: list[int] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def dispose(self) -> None:
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _new_handle(self) -> int:
        self._next += 4
        return self._next

    # -- test controls -------------------------------------------------------------------
    def make_socket(self, *, layered: bool = False) -> int:
        """A simulated socket; *layered*: its handle is a provider's wrapper whose base
        socket is another handle (the manager must key its waiters by the base)."""
        base = self._new_handle()
        self.sockets[base] = FakeSocket(base)
        if not layered:
            return base
        wrapper = self._new_handle()
        self.sockets[wrapper] = self.sockets[base]
        return wrapper

    def polls(self, sock: int | None = None) -> list[_Op]:
        """The pending AFD polls of simulated sockets (of *sock*'s base, if given); the
        run's own real sockets are left out."""
        base = None if sock is None else self.sockets[sock].base
        return [
            op
            for op in self.ops.values()
            if op.kind == "poll" and op.sock in self.sockets and base in (None, op.sock)
        ]

    def set_ready(self, sock: int, events: int) -> None:
        rec = self.sockets[sock]
        rec.ready |= events
        for op in self.polls(sock):
            self._check_poll(op, rec.ready)

    def clear_ready(self, sock: int, events: int) -> None:
        self.sockets[sock].ready &= ~events

    def close_socket(self, sock: int) -> None:
        """closesocket: pending polls complete with AFD_POLL_LOCAL_CLOSE."""
        rec = self.sockets[sock]
        rec.closed = True
        for op in self.polls(sock):
            self._finish_poll(op, w.AFD_POLL_LOCAL_CLOSE)

    def fail_polls(self, sock: int, status: int) -> None:
        for op in self.polls(sock):
            self._complete(op, status, 0)

    def make_file(self) -> int:
        handle = self._new_handle()
        self.files[handle] = FakeFile()
        return handle

    def pending(self, kind: str) -> list[_Op]:
        return [op for op in self.ops.values() if op.kind == kind]

    def complete_read(self, op: _Op, data: bytes) -> None:
        assert op.kind == "read" and len(data) <= op.size
        ffi.memmove(op.buffer, data, len(data))
        self._complete(op, w.STATUS_SUCCESS, len(data))

    def complete_write(self, op: _Op, count: int) -> None:
        assert op.kind == "write" and count <= op.size
        self.files[op.handle].written += ffi.buffer(op.buffer, count)[:]
        self._complete(op, w.STATUS_SUCCESS, count)

    def fail_io(self, op: _Op, status: int) -> None:
        self._complete(op, status, 0)

    def finish_cancels(self) -> None:
        """Let every requested cancellation land (deferred mode)."""
        for op in list(self.ops.values()):
            if op.cancel_requested:
                self._complete(op, w.STATUS_CANCELLED, 0)

    def make_object(self) -> int:
        handle = self._new_handle()
        self.objects[handle] = FakeObject()
        return handle

    def signal(self, handle: int) -> None:
        with self._cond:
            self.objects[handle].signaled = True
            self._cond.notify_all()

    def count(self, name: str) -> int:
        return sum(1 for call in self.calls if call[0] == name)

    # -- completions -----------------------------------------------------------------------
    def _complete(self, op: _Op, status: int, transferred: int) -> None:
        address = w.address_of(op.overlapped)
        del self.ops[address]
        op.overlapped.Internal = status & w.INVALID_HANDLE_VALUE
        op.overlapped.InternalHigh = transferred
        binding = self.bindings.get(op.handle)
        if binding is not None:  # an unbound handle's completion goes nowhere
            port, key = binding
            self._queue(port, key, transferred, address)

    def _queue(self, port: int, key: int, transferred: int, address: int) -> None:
        with self._lock:
            queue = self.ports.get(port)
            if queue is None:
                return  # the port is closed
            queue.append((key, transferred, address))
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass

    def _check_poll(self, op: _Op, ready: int) -> None:
        if ready & op.events:
            self._finish_poll(op, ready & op.events)

    def _finish_poll(self, op: _Op, events: int) -> None:
        info = ffi.cast("AFD_POLL_INFO *", op.buffer)
        info.Handles[0].Events = events
        self._complete(op, w.STATUS_SUCCESS, ffi.sizeof("AFD_POLL_INFO"))

    # -- the KernelSurface -------------------------------------------------------------
    def create_port(self) -> int:
        port = self._new_handle()
        self.ports[port] = deque()
        return port

    def _known(self, handle: int) -> bool:
        return (
            handle in self.files
            or handle in self.afd_handles
            or handle in self.objects
            or handle in self.ports
        )

    def associate(self, handle: int, port: int, key: int) -> None:
        self.calls.append(("associate", handle, port, key))
        if not self._known(handle) or port not in self.ports:
            raise w.winerror_exception(w.ERROR_INVALID_HANDLE)
        if handle in self.bindings:
            raise w.winerror_exception(w.ERROR_INVALID_PARAMETER)
        self.bindings[handle] = (port, key)

    def dequeue(self, port: int, entries: Any, count: int, timeout_ms: int) -> int:
        self._poll_real_fds(0)
        if not self.ports[port] and timeout_ms:
            self.calls.append(("block", timeout_ms, threading.current_thread().name))
            self.blocking.set()
            limit = HANG_GUARD_S if timeout_ms == w.INFINITE else timeout_ms / 1000
            self._poll_real_fds(min(limit, HANG_GUARD_S))
            if not self.ports[port] and limit >= HANG_GUARD_S:
                raise AssertionError("the fake completion port would block with nothing due")
        with self._lock:
            queue = self.ports[port]
            n = 0
            while queue and n < count:
                key, transferred, address = queue.popleft()
                entry = entries[n]
                entry.lpCompletionKey = key
                entry.lpOverlapped = ffi.cast("LPOVERLAPPED", address)
                entry.dwNumberOfBytesTransferred = transferred
                n += 1
        self.calls.append(("dequeue", timeout_ms, n, threading.current_thread().name))
        return n

    def _poll_real_fds(self, timeout_s: float) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        real = [op for op in self.ops.values() if op.kind == "poll" and op.sock not in self.sockets]
        by_fd: dict[int, list[_Op]] = {}
        masks: dict[int, int] = {}
        for op in real:
            mask = (select.POLLIN if op.events & w.AFD_POLL_RECEIVE else 0) | (
                select.POLLOUT if op.events & w.AFD_POLL_SEND else 0
            )
            masks[op.sock] = masks.get(op.sock, 0) | mask
            by_fd.setdefault(op.sock, []).append(op)
        for fd, mask in masks.items():
            poller.register(fd, mask)
        for fd, revents in poller.poll(timeout_s * 1000):
            if fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            events = (w.AFD_POLL_RECEIVE if revents & select.POLLIN else 0) | (
                w.AFD_POLL_SEND if revents & select.POLLOUT else 0
            )
            if revents & (select.POLLHUP | select.POLLERR):
                events |= w.AFD_POLL_ABORT
            for op in by_fd.get(fd, ()):
                if events & op.events:
                    self._finish_poll(op, events & op.events)

    def post(self, port: int, transferred: int, key: int, overlapped: int) -> None:
        self.calls.append(("post", key, overlapped))
        if port not in self.ports:
            raise w.winerror_exception(w.ERROR_INVALID_HANDLE)
        self._queue(port, key, transferred, overlapped)

    def cancel_io(self, handle: int, overlapped: Any) -> bool:
        address = w.address_of(overlapped)
        self.calls.append(("cancel_io", handle, address))
        op = self.ops.get(address)
        if op is None or op.handle != handle or self.cancel_mode == "missed":
            return False
        if self.cancel_mode == "deferred":
            op.cancel_requested = True
        else:
            self._complete(op, w.STATUS_CANCELLED, 0)
        return True

    def open_afd(self) -> int:
        handle = self._new_handle()
        self.afd_handles.add(handle)
        self.calls.append(("open_afd", handle))
        return handle

    def base_socket(self, sock: int) -> int:
        rec = self.sockets.get(sock)
        if rec is not None:
            if rec.closed:
                raise w.winerror_exception(w.WSAENOTSOCK)
            return rec.base
        if sock < _FIRST_FAKE_HANDLE:
            try:
                os.fstat(sock)
            except OSError:
                pass
            else:
                return sock  # a real fd: the run's own sockets
        raise w.winerror_exception(w.WSAENOTSOCK)

    def afd_poll(self, afd: int, poll_info: Any, overlapped: Any) -> None:
        assert afd in self.afd_handles and afd in self.bindings
        assert poll_info.NumberOfHandles == 1 and poll_info.Timeout == 2**63 - 1
        sock = w.address_of(poll_info.Handles[0].Handle)
        events = poll_info.Handles[0].Events
        self.calls.append(("afd_poll", sock, events))
        rec = self.sockets.get(sock)
        if rec is not None and rec.closed:
            raise w.winerror_exception(w.ERROR_INVALID_HANDLE)
        if rec is not None and rec.poll_error:
            raise w.winerror_exception(rec.poll_error)
        op = _Op("poll", afd, overlapped, buffer=poll_info, sock=sock, events=events)
        self.ops[w.address_of(overlapped)] = op
        if rec is not None:
            self._check_poll(op, rec.ready)

    def _start_io(self, kind: str, handle: int, buffer: Any, size: int, overlapped: Any) -> None:
        self.calls.append((kind, handle, size))
        if handle not in self.files:
            raise w.winerror_exception(w.ERROR_INVALID_HANDLE)
        op = _Op(kind, handle, overlapped, buffer=buffer, size=size)
        self.ops[w.address_of(overlapped)] = op

    def read_file(self, handle: int, buffer: Any, size: int, overlapped: Any) -> None:
        self._start_io("read", handle, buffer, size, overlapped)

    def write_file(self, handle: int, buffer: Any, size: int, overlapped: Any) -> None:
        self._start_io("write", handle, buffer, size, overlapped)

    def nt_status_to_winerror(self, status: int) -> int:
        return _NT_TO_WIN[status]

    def wait_for_object(self, handle: int, timeout_ms: int) -> int:
        assert timeout_ms == 0
        obj = self.objects.get(handle)
        if obj is None:
            raise w.winerror_exception(w.ERROR_INVALID_HANDLE)
        return w.WAIT_OBJECT_0 if obj.signaled else w.WAIT_TIMEOUT

    def wait_any(self, handles: Sequence[int], timeout_ms: int) -> int:
        assert timeout_ms == w.INFINITE
        with self._cond:
            self.calls.append(("wait_any", tuple(handles)))
            for _ in range(int(HANG_GUARD_S * 10)):
                for index, handle in enumerate(handles):
                    if self.objects[handle].signaled:
                        return w.WAIT_OBJECT_0 + index
                self._cond.wait(0.1)
        raise AssertionError("wait_any: nothing was signaled")

    def create_event(self) -> int:
        return self.make_object()

    def set_event(self, event: int) -> None:
        self.calls.append(("set_event", event))
        self.signal(event)

    def close_handle(self, handle: int) -> None:
        self.calls.append(("close_handle", handle))
        if not self._known(handle):
            raise w.winerror_exception(w.ERROR_INVALID_HANDLE)
        self.closed_handles.append(handle)
        with self._lock:
            self.ports.pop(handle, None)
            self.objects.pop(handle, None)
        self.afd_handles.discard(handle)
        self.files.pop(handle, None)


def run_over_fake(monkeypatch: Any) -> Iterator[FakeKernel]:
    """Fixture body: every ``vivace.run`` in the test gets a ``WindowsIOManager`` over
    one ``FakeKernel`` (through the run's backend factory), and must close it."""
    from vivace._core import _io_manager
    from vivace._core._io_windows import WindowsIOManager

    kernel = FakeKernel()
    managers: list[WindowsIOManager] = []

    def make() -> WindowsIOManager:
        managers.append(WindowsIOManager(kernel))
        return managers[-1]

    monkeypatch.setattr(_io_manager, "make_io_manager", make)
    yield kernel
    for manager in managers:
        assert manager._port is None, "the run did not close its manager"
    kernel.dispose()
