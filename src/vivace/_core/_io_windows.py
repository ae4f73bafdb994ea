"""The Windows I/O manager: an I/O completion port (IOCP), through cffi.

Design notes
------------
* Completion, not readiness: an operation is started (ReadFile, an AFD poll, ...) with
  an OVERLAPPED struct that names it, and the port later delivers a completion entry:
  the completion key (chosen when the handle was bound to the port), the OVERLAPPED's
  address and a byte count. ``get_events`` dequeues up to ``MAX_EVENTS`` entries into
  a buffer it owns; ``process_events`` dispatches each on its key:

  ``KEY_AFD_POLL``        socket readiness (``_io_windows_afd``: wait_readable and
                          wait_writable, one AFD poll per socket);
  ``KEY_WAIT_OVERLAPPED`` operations on handles bound with ``register_with_iocp``,
                          woken by their OVERLAPPED's address;
  ``KEY_LATE_CANCEL``     our own post after a cancel came too late (below);
  ``KEY_FORCE_WAKEUP``    ``force_wakeup``'s post: nothing to do;
  ``KEY_WAIT_OBJECT``     a WaitForSingleObject worker's answer;
  ``KEY_USER`` and up     handed out by ``monitor_completion_key``.

* All system calls go through one ``KernelSurface`` object (``_windows_cffi``): the
  real one on Windows, a simulated port in the tests on any platform.

* Cancellation means the operation did not happen. Cancelling ``wait_overlapped``
  asks the kernel to cancel (``CancelIoEx``) and keeps waiting for the completion,
  which always comes: if it reports the cancellation, the task gets Cancelled; if the
  operation completed anyway, its result is delivered (the task sees the cancel at its
  next checkpoint). If the kernel finds nothing to cancel, either the completion is
  already on its way or the handle was never bound to our port (then it never comes):
  we post a ``KEY_LATE_CANCEL`` entry for the same OVERLAPPED; if it arrives while the
  task still waits, the handle was not registered, and the task gets
  TrioInternalError rather than hang forever (trio raises it out of the run loop; in
  the task it carries the task's traceback and the run ends the same way). A completion reporting
  ERROR_OPERATION_ABORTED that we did not ask for means the handle was closed:
  ClosedResourceError.

* ``WaitForSingleObject`` (process handles) has no completion-port form in the
  documented API, so a worker thread waits for the object or a cancel event and posts
  the result to the port as a ``KEY_WAIT_OBJECT`` entry; cancelling sets the event and
  keeps waiting for that post, so it too is delivered or cancelled, never lost.

* The OVERLAPPED structs of pending operations stay referenced until their completion
  is dequeued (the kernel writes into them), including those of cancelled ones.

Threads. ``get_events`` may run in a worker thread (guest mode) while the run's thread
leaves the manager alone; ``force_wakeup`` is safe from any thread (a post). The rest
runs in the run's thread.
"""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import outcome

from . import _run, _windows_cffi as w
from ._abort import Abort
from ._exceptions import BusyResourceError, ClosedResourceError, TrioInternalError
from ._impl import cancel_shielded_checkpoint, wait_task_rescheduled
from ._io_windows_afd import AfdPoller
from ._ki import enable_ki_protection
from ._thread_cache import start_thread_soon
from ._unbounded_queue import UnboundedQueue
from ._windows_cffi import ffi

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from _typeshed import ReadableBuffer as Buffer

    from ._io_manager import HasFileno, IOManager
    from ._windows_cffi import CData, KernelSurface

KEY_AFD_POLL: Final = 0
KEY_WAIT_OVERLAPPED: Final = 1
KEY_LATE_CANCEL: Final = 2
KEY_FORCE_WAKEUP: Final = 3
KEY_WAIT_OBJECT: Final = 4
KEY_USER: Final = 5

# Entries dequeued per get_events (the buffer is 32 bytes per entry).
MAX_EVENTS: Final = 1000
# The longest finite wait GetQueuedCompletionStatusEx takes (INFINITE is one more).
_MAX_TIMEOUT_MS: Final = w.INFINITE - 1


@dataclass(frozen=True, slots=True)
class WindowsStatistics:
    """``current_statistics().io_statistics`` on Windows."""

    tasks_waiting_read: int
    tasks_waiting_write: int
    tasks_waiting_overlapped: int
    completion_key_monitors: int
    backend: Literal["iocp"] = field(default="iocp", init=False)


@dataclass(frozen=True, slots=True)
class CompletionKeyEventInfo:
    """One completion: what ``wait_overlapped`` returns and what
    ``monitor_completion_key``'s queue receives."""

    lpOverlapped: Any  # the OVERLAPPED (wait_overlapped) or its address (monitors)
    dwNumberOfBytesTransferred: int


class _OverlappedWait:
    __slots__ = ("overlapped", "raise_cancel", "task")

    def __init__(self, task: Any, overlapped: CData) -> None:
        self.task = task
        self.overlapped = overlapped  # keeps the caller's struct alive until completion
        self.raise_cancel: Callable[[], object] | None = None


def _default_kernel() -> KernelSurface:
    return w.Win32Kernel()


def _timeout_ms(timeout: float) -> int:
    if math.isnan(timeout):
        raise ValueError("timeout must not be NaN")
    if timeout <= 0:
        return 0
    if timeout == math.inf:
        return w.INFINITE
    # Rounded up: a wait must not return before the deadline it was asked to reach.
    return min(max(1, math.ceil(timeout * 1000)), _MAX_TIMEOUT_MS)


class WindowsIOManager:
    """The run's I/O manager on Windows (see the module notes). *kernel* is the system
    call surface (tests pass a simulated one)."""

    def __init__(self, kernel: KernelSurface | None = None) -> None:
        self._kernel = kernel if kernel is not None else _default_kernel()
        self._port: int | None = None
        self._port = self._kernel.create_port()
        self._events = ffi.new("OVERLAPPED_ENTRY[]", MAX_EVENTS)
        self._afd = AfdPoller(self._kernel, self._register_afd, _run.reschedule)
        self._overlapped: dict[int, _OverlappedWait] = {}
        # Late-cancel posts not yet dequeued: their OVERLAPPED must not be reused
        # (a new operation at the same address would be mistaken for the old one).
        self._late_cancels: dict[int, CData] = {}
        self._monitors: dict[int, UnboundedQueue[object]] = {}
        self._next_key = itertools.count(KEY_USER)
        self._object_waits: dict[int, list[Any]] = {}  # id -> [task, result]
        self._next_wait_id = itertools.count(1)

    # -- lifetime and the run loop's calls -------------------------------------------
    def close(self) -> None:
        """Close the port and the AFD handles (idempotent)."""
        if self._port is None:
            return
        port, self._port = self._port, None
        try:
            self._kernel.close_handle(port)
        finally:
            self._afd.close()

    def _port_or_raise(self) -> int:
        if self._port is None:
            raise RuntimeError("the I/O completion port is closed")
        return self._port

    def _register_afd(self, handle: int) -> None:
        self._kernel.associate(handle, self._port_or_raise(), KEY_AFD_POLL)

    def statistics(self) -> WindowsStatistics:
        return WindowsStatistics(
            tasks_waiting_read=self._afd.tasks_waiting_read,
            tasks_waiting_write=self._afd.tasks_waiting_write,
            tasks_waiting_overlapped=len(self._overlapped),
            completion_key_monitors=len(self._monitors),
        )

    def force_wakeup(self) -> None:
        self._kernel.post(self._port_or_raise(), 0, KEY_FORCE_WAKEUP, 0)

    def get_events(self, timeout: float) -> int:
        return self._kernel.dequeue(
            self._port_or_raise(), self._events, MAX_EVENTS, _timeout_ms(timeout)
        )

    def process_events(self, received: int) -> None:
        # A falsy batch of another type may come in too: guest mode's first ticks
        # send [] as "no events", whatever the backend.
        if not received:
            return
        for i in range(received):
            entry = self._events[i]
            key = int(entry.lpCompletionKey)
            address = w.address_of(entry.lpOverlapped)
            if key == KEY_AFD_POLL:
                self._afd.completed(address)
            elif key == KEY_WAIT_OVERLAPPED:
                self._overlapped_completed(address, int(entry.dwNumberOfBytesTransferred))
            elif key == KEY_LATE_CANCEL:
                self._late_cancel_arrived(address)
            elif key == KEY_WAIT_OBJECT:
                self._object_wait_completed(address, int(entry.dwNumberOfBytesTransferred))
            elif key != KEY_FORCE_WAKEUP:
                queue = self._monitors.get(key)
                # Entries for a monitor that has exited have nobody to go to.
                if queue is not None:
                    info = CompletionKeyEventInfo(address, int(entry.dwNumberOfBytesTransferred))
                    queue.put_nowait(info)

    # -- socket readiness ----------------------------------------------------------------
    async def _wait_socket(self, sock: int | HasFileno, readable: bool) -> None:
        handle = w.handle_value(sock if isinstance(sock, int) else sock.fileno())
        task = _run.current_task()
        base = self._afd.add_waiter(handle, task, readable)
        if base is None:
            # The readiness backends' messages, so a test matching them passes anywhere.
            raise BusyResourceError(
                "another task is already "
                + ("reading from" if readable else "writing to")
                + " this fd"
            )

        def abort(_: Any) -> Abort:
            self._afd.remove_waiter(base, task, readable)
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    @enable_ki_protection
    async def wait_readable(self, sock: int | HasFileno) -> None:
        """Block until *sock* (a SOCKET handle, or an object whose ``fileno()`` is one)
        is readable. BusyResourceError if another task already waits to read it;
        ClosedResourceError if ``notify_closing`` is called on it meanwhile."""
        await self._wait_socket(sock, True)

    @enable_ki_protection
    async def wait_writable(self, sock: int | HasFileno) -> None:
        """As ``wait_readable``, for writing."""
        await self._wait_socket(sock, False)

    @enable_ki_protection
    def notify_closing(self, sock: int | HasFileno) -> None:
        """*sock* is about to be closed: its waiters get ClosedResourceError and its
        poll is cancelled. Fine with sockets never waited on, and with -1."""
        value = sock if isinstance(sock, int) else sock.fileno()
        if value < 0:
            return
        self._afd.close_socket(w.handle_value(value))

    # -- operations on handles bound to the port -------------------------------------
    def current_iocp(self) -> int:
        """The completion port's handle, as an int."""
        return self._port_or_raise()

    def register_with_iocp(self, handle: int | CData) -> None:
        """Bind *handle* to the port, so its overlapped operations complete here."""
        self._kernel.associate(w.handle_value(handle), self._port_or_raise(), KEY_WAIT_OVERLAPPED)

    @enable_ki_protection
    async def wait_overlapped(self, handle: int | CData, lpOverlapped: CData | int) -> object:
        """Wait for the overlapped operation *lpOverlapped* on *handle* (bound with
        ``register_with_iocp``) to complete; returns a ``CompletionKeyEventInfo``.
        Cancellation cancels the operation (module notes)."""
        handle_int = w.handle_value(handle)
        if isinstance(lpOverlapped, int):
            lpOverlapped = ffi.cast("LPOVERLAPPED", lpOverlapped)
        overlapped = ffi.cast("LPOVERLAPPED", lpOverlapped)
        address = w.address_of(overlapped)
        if address in self._overlapped:
            raise BusyResourceError("another task is already waiting on that lpOverlapped")
        wait = _OverlappedWait(_run.current_task(), lpOverlapped)
        self._overlapped[address] = wait

        def abort(raise_cancel: Callable[[], object]) -> Abort:
            wait.raise_cancel = raise_cancel
            try:
                requested = self._kernel.cancel_io(handle_int, overlapped)
            except OSError as exc:
                raise TrioInternalError("CancelIoEx failed unexpectedly") from exc
            if not requested:
                self._kernel.post(self._port_or_raise(), 0, KEY_LATE_CANCEL, address)
                self._late_cancels[address] = lpOverlapped
            return Abort.FAILED

        info = await wait_task_rescheduled(abort)
        status = int(ffi.cast("NTSTATUS", overlapped.Internal))
        if status != w.STATUS_SUCCESS:
            code = self._kernel.nt_status_to_winerror(status)
            if code != w.ERROR_OPERATION_ABORTED:
                raise w.winerror_exception(code)
            if wait.raise_cancel is not None:
                wait.raise_cancel()
            raise ClosedResourceError("another task closed this resource")
        return info

    def _overlapped_completed(self, address: int, transferred: int) -> None:
        wait = self._overlapped.pop(address, None)
        if wait is None:
            return  # an operation nobody waits for (started without wait_overlapped)
        info = CompletionKeyEventInfo(wait.overlapped, transferred)
        _run.reschedule(wait.task, outcome.Value(info))

    def _late_cancel_arrived(self, address: int) -> None:
        self._late_cancels.pop(address, None)
        wait = self._overlapped.pop(address, None)
        if wait is None:
            return  # the completion came first: the expected case
        # Raised in the waiting task (whose traceback shows the call), not out of the
        # run loop: the operation may still complete some day, but nobody will see it.
        exc = TrioInternalError(
            "could not cancel an overlapped operation, and its completion never "
            "arrived: was its handle registered with register_with_iocp()?"
        )
        _run.reschedule(wait.task, outcome.Error(exc))

    async def _perform(
        self,
        handle: int | CData,
        buffer: Buffer,
        file_offset: int,
        writable: bool,
    ) -> int:
        # Checked first: whether the kernel can cancel the operation once started
        # depends on the device, so a cancelled task must not start it.
        await _run.checkpoint_if_cancelled()
        handle_int = w.handle_value(handle)
        with ffi.from_buffer(buffer, require_writable=writable) as cbuf:
            overlapped = ffi.new("OVERLAPPED *")
            offsets = overlapped.DUMMYUNIONNAME.DUMMYSTRUCTNAME
            offsets.Offset = file_offset & 0xFFFFFFFF
            offsets.OffsetHigh = file_offset >> 32
            if writable:
                self._kernel.read_file(handle_int, cbuf, len(cbuf), overlapped)
            else:
                self._kernel.write_file(handle_int, cbuf, len(cbuf), overlapped)
            await self.wait_overlapped(handle_int, overlapped)
            return int(overlapped.InternalHigh)

    @enable_ki_protection
    async def readinto_overlapped(
        self, handle: int | CData, buffer: Buffer, file_offset: int = 0
    ) -> int:
        """Read into *buffer* from *handle* at *file_offset*; the bytes read."""
        return await self._perform(handle, buffer, file_offset, True)

    @enable_ki_protection
    async def write_overlapped(
        self, handle: int | CData, data: Buffer, file_offset: int = 0
    ) -> int:
        """Write *data* to *handle* at *file_offset*; the bytes written."""
        return await self._perform(handle, data, file_offset, False)

    @contextmanager
    def monitor_completion_key(self) -> Iterator[tuple[int, UnboundedQueue[object]]]:
        """A fresh completion key and the queue that receives its entries (as
        ``CompletionKeyEventInfo`` with the OVERLAPPED's address), while in the block."""
        key = next(self._next_key)
        queue: UnboundedQueue[object] = UnboundedQueue()
        self._monitors[key] = queue
        try:
            yield key, queue
        finally:
            del self._monitors[key]

    # -- waiting for a kernel object -------------------------------------------------
    @enable_ki_protection
    async def wait_for_single_object(self, handle: int | CData) -> None:
        """Block until the object *handle* names is signaled (module notes)."""
        await _run.checkpoint_if_cancelled()
        handle_int = w.handle_value(handle)
        if self._kernel.wait_for_object(handle_int, 0) != w.WAIT_TIMEOUT:
            await cancel_shielded_checkpoint()
            return
        port = self._port_or_raise()
        kernel = self._kernel
        cancel_event = kernel.create_event()
        wait_id = next(self._next_wait_id)
        record: list[Any] = [_run.current_task(), None]  # the task, then the outcome

        def wait_in_thread() -> int:
            return kernel.wait_any((handle_int, cancel_event), w.INFINITE)

        def deliver(result: outcome.Outcome[int]) -> None:
            record[1] = result
            # The port is still open: the run cannot end while the task waits for
            # this post (its abort never succeeds).
            kernel.post(port, 0, KEY_WAIT_OBJECT, wait_id)

        raise_cancel: list[Callable[[], object]] = []

        def abort(raise_cancel_: Callable[[], object]) -> Abort:
            raise_cancel.append(raise_cancel_)
            kernel.set_event(cancel_event)
            return Abort.FAILED

        self._object_waits[wait_id] = record
        try:
            start_thread_soon(wait_in_thread, deliver, name="vivace WaitForSingleObject")
            result: outcome.Outcome[int] = await wait_task_rescheduled(abort)
        finally:
            self._object_waits.pop(wait_id, None)
            kernel.close_handle(cancel_event)
        index = result.unwrap()
        if index in (w.WAIT_OBJECT_0, w.WAIT_ABANDONED_0):
            return  # signaled: delivered even if a cancel was asked for meanwhile
        if raise_cancel:
            raise_cancel[0]()
        raise TrioInternalError(f"WaitForMultipleObjects returned {index:#x}")

    def _object_wait_completed(self, wait_id: int, _: int) -> None:
        record = self._object_waits.pop(wait_id, None)
        if record is not None:
            _run.reschedule(record[0], outcome.Value(record[1]))


# ------------------------------------------------- the public functions (Windows only)


def _manager() -> WindowsIOManager:
    manager = _run._runner().io_manager
    if not isinstance(manager, WindowsIOManager):
        raise RuntimeError("this run does not use the Windows I/O manager")
    return manager


def current_iocp() -> int:
    """The run's I/O completion port handle, as an int."""
    return _manager().current_iocp()


def register_with_iocp(handle: int | CData) -> None:
    """Bind *handle* to the run's completion port, for ``wait_overlapped``."""
    _manager().register_with_iocp(handle)


@enable_ki_protection
async def wait_overlapped(handle: int | CData, lpOverlapped: CData | int) -> object:
    """Wait for the overlapped operation *lpOverlapped* on *handle* to complete."""
    return await _manager().wait_overlapped(handle, lpOverlapped)


@enable_ki_protection
async def readinto_overlapped(handle: int | CData, buffer: Buffer, file_offset: int = 0) -> int:
    """Read from *handle* into *buffer* with overlapped I/O; the bytes read."""
    return await _manager().readinto_overlapped(handle, buffer, file_offset)


@enable_ki_protection
async def write_overlapped(handle: int | CData, data: Buffer, file_offset: int = 0) -> int:
    """Write *data* to *handle* with overlapped I/O; the bytes written."""
    return await _manager().write_overlapped(handle, data, file_offset)


@contextmanager
def monitor_completion_key() -> Iterator[tuple[int, UnboundedQueue[object]]]:
    """A fresh completion key of the run's port and the queue of its completions."""
    with _manager().monitor_completion_key() as pair:
        yield pair


async def WaitForSingleObject(obj: int | CData) -> None:  # noqa: N802 (trio's name)
    """Block until the Win32 object *obj* (a handle, e.g. a process's) is signaled.
    Cancellable; OSError if the handle is invalid."""
    await _manager().wait_for_single_object(obj)


if TYPE_CHECKING:
    # The interface, checked by mypy.
    def _manager_conforms(manager: WindowsIOManager) -> IOManager:
        return manager
