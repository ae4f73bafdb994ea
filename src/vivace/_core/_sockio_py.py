"""Socket operations, reference twin of ``_ext/_sockio.pyx``.

``sock_recv``/``sock_send``/``sock_send_all`` are the non-blocking core of vivace's
socket methods and of ``SocketStream``. Each returns an awaitable that

1. is a cancel point first (``checkpoint_if_cancelled``: if the task is cancelled it
   raises Cancelled, through a full checkpoint, before any syscall);
2. makes the syscall on the stdlib socket with MSG_DONTWAIT; if it completes -- or
   fails with anything but EAGAIN -- adds a cancel-shielded schedule point and returns
   (raises);
3. on EAGAIN waits for readiness (``wait_readable``/``wait_writable`` on the socket,
   the checkpoint) and retries, returning or raising the retry's outcome directly.

``sock_send_all`` repeats that for the rest of the data after a partial send (so each
send is a checkpoint of its own); it always makes at least one send, even of nothing.
``stream_recv``/``stream_send_all`` are the same with SocketStream's errors (OSError ->
ClosedResourceError/BrokenResourceError), the latter inside a ``BusyGuard``.
Bad arguments (a negative or non-integer recv size, non-integer flags or fd, a name,
argument tuple or guard of the wrong type) are refused by the call itself, with the
compiled twin's errors; the data of ``sock_send_all`` is checked (and its buffer taken)
on the first step, after the guard, as ``with memoryview(data)`` inside
SocketStream.send_all would. Design notes on why the compiled twin is one C awaitable
are in that module.
"""

from __future__ import annotations

import errno
import operator
import socket
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from . import _impl
from ._abort import Abort
from ._exceptions import BrokenResourceError, BusyResourceError, ClosedResourceError
from ._ki import enable_ki_protection
from ._run_context import GLOBAL_RUN_CONTEXT

# The engine exports: what ``_impl`` binds from this module or from ``_ext/_sockio``.
__all__ = [
    "BusyGuard",
    "sock_call",
    "sock_recv",
    "sock_send",
    "sock_send_all",
    "stream_recv",
    "stream_send_all",
    "wait_fd",
]

if TYPE_CHECKING:
    from collections.abc import Callable

_MSG_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)
_CLOSED_ERRNOS = (errno.EBADF, errno.ENOTSOCK)
_BUSY_READ = "another task is already reading from this fd"
_BUSY_WRITE = "another task is already writing to this fd"
_CLOSED_STREAM = "this socket was already closed"


class BusyGuard:
    """``with guard:`` raises BusyResourceError(*message*) if another task is already
    inside (it never waits: concurrent use is the caller's bug). ``stream_send_all``
    holds it for its whole duration."""

    __slots__ = ("_busy", "_message")  # private, as the compiled twin's C fields are

    def __init__(self, message: str) -> None:
        self._message = message
        self._busy = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        raise TypeError("type 'BusyGuard' is not an acceptable base type")  # final, like the twin

    def __enter__(self) -> None:
        if self._busy:
            raise BusyResourceError(self._message)
        self._busy = True

    def __exit__(self, *exc_info: object) -> None:
        self._busy = False


# Argument checks: the compiled twin's signatures type its arguments (Py_ssize_t, int,
# str, tuple, BusyGuard), so Cython refuses a bad one when the function is called, with
# these errors; doing the same here keeps the twins' errors identical. (This module is
# only a twin where the compiled one exists: Linux, where C long is ssize_t.)
def _as_ssize_t(value: Any) -> int:
    n = operator.index(value)
    if not -sys.maxsize - 1 <= n <= sys.maxsize:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return n


# What Cython's C-int conversion says beyond a C long: its wording follows the CPython
# API it calls, which changed in 3.13.
_TOO_LARGE_FOR_C_LONG = (
    "Python int too large to convert to C int"
    if sys.version_info >= (3, 13)
    else "Python int too large to convert to C long"
)


def _as_c_int(value: Any) -> int:
    # Cython converts a C int argument with the type's __int__ (not __index__).
    if not isinstance(value, int):
        to_int = getattr(type(value), "__int__", None)
        if to_int is None:
            raise TypeError("an integer is required")
        value = to_int(value)
    n = int(value)
    if not -sys.maxsize - 1 <= n <= sys.maxsize:
        raise OverflowError(_TOO_LARGE_FOR_C_LONG)
    if not -(2**31) <= n < 2**31:
        raise OverflowError("value too large to convert to int")
    return n


def _check_type(name: str, value: object, expected: type) -> None:
    # Cython checks a typed argument's exact type here (str, tuple; BusyGuard is final in
    # C), naming a non-builtin type with its module.
    if type(value) is not expected:
        module = "" if expected.__module__ == "builtins" else f"{expected.__module__}."
        raise TypeError(
            f"Argument '{name}' has incorrect type (expected {module}"
            f"{expected.__qualname__}, got {type(value).__name__})"
        )


def _stream_error(exc: OSError) -> BaseException:
    """What SocketStream raises for *exc* (raise it ``from`` the result's __cause__)."""
    if exc.errno in _CLOSED_ERRNOS:
        return ClosedResourceError(_CLOSED_STREAM)
    return BrokenResourceError(f"socket connection broken: {exc}")


async def _cancel_check() -> Any:
    """``checkpoint_if_cancelled``; returns the run's runner."""
    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    if runner is None or runner.current_task is None:
        raise RuntimeError("must be called from async context")
    task = runner.current_task
    if task._cancel_status.effectively_cancelled or (
        runner.ki_pending and task is runner.main_task
    ):
        await _impl.checkpoint()
    else:
        task._cancel_points += 1
    return runner


async def _once(
    sock: socket.socket, call: Callable[[], Any], readable: bool
) -> Any:
    runner = await _cancel_check()
    try:
        result = call()
    except BlockingIOError:
        pass
    except BaseException:
        await _impl.cancel_shielded_checkpoint()
        raise
    else:
        await _impl.cancel_shielded_checkpoint()
        return result
    io_manager = runner.io_manager
    while True:
        if readable:
            await io_manager.wait_readable(sock)
        else:
            await io_manager.wait_writable(sock)
        try:
            return call()
        except BlockingIOError:
            pass


def sock_recv(sock: socket.socket, nbytes: int, flags: int = 0) -> Coroutine[Any, Any, bytes]:
    """``await sock_recv(s, n, flags)``: ``s.recv(n, flags)`` on the non-blocking stdlib
    socket *s* as a checkpoint, waiting for readability on EAGAIN. *n* must be >= 0."""
    nbytes = _as_ssize_t(nbytes)
    flags = _as_c_int(flags)
    if nbytes < 0:
        raise ValueError("negative buffersize in recv")
    flags |= _MSG_DONTWAIT
    return _once(sock, lambda: sock.recv(nbytes, flags), True)


def sock_send(sock: socket.socket, data: Any, flags: int = 0) -> Coroutine[Any, Any, int]:
    """``await sock_send(s, data, flags)``: ``s.send(data, flags)`` as a checkpoint,
    waiting for writability on EAGAIN; returns the count sent."""
    flags = _as_c_int(flags) | _MSG_DONTWAIT
    return _once(sock, lambda: sock.send(data, flags), False)


def sock_call(
    sock: socket.socket, readable: bool, name: str, args: tuple[Any, ...]
) -> Coroutine[Any, Any, Any]:
    """``await sock_call(s, readable, name, args)``: ``getattr(s, name)(*args)`` on the
    non-blocking stdlib socket *s* as a checkpoint; on BlockingIOError it waits until
    *s* is readable (else writable) and calls again."""
    readable = bool(readable)
    _check_type("name", name, str)
    _check_type("args", args, tuple)
    return _once(sock, lambda: getattr(sock, name)(*args), readable)


def wait_fd(
    poller: Any, fd: int, owner: socket.socket | None, task: Any, readable: bool
) -> Coroutine[Any, Any, None]:
    """``await wait_fd(poller, fd, owner, task, readable)``: park *task* until *poller*
    reports *fd* readable (else writable), as ``wait_readable``/``wait_writable``; the
    wait is the checkpoint. *owner* is the stdlib socket *fd* came from, or None."""
    return _wait_fd(poller, _as_c_int(fd), owner, task, bool(readable))


# KI-protected: a KeyboardInterrupt between registering and parking would leave a
# stale waiter behind (the compiled twin runs no bytecode in between).
@enable_ki_protection
async def _wait_fd(poller: Any, fd: int, owner: Any, task: Any, readable: bool) -> None:
    if readable:
        if poller.add_reader(fd, owner, task):
            raise BusyResourceError(_BUSY_READ)
        remove = poller.remove_reader
    else:
        if poller.add_writer(fd, owner, task):
            raise BusyResourceError(_BUSY_WRITE)
        remove = poller.remove_writer

    def abort(_: Any) -> Any:
        remove(fd, task)
        return Abort.SUCCEEDED

    try:
        await _impl.wait_task_rescheduled(abort)
    except BaseException:
        # Thrown into or closed from outside the kernel. A wait the kernel parked the
        # task on stays registered until its wake-up or abort (else the task would be
        # stranded; the dead coroutine then ends it with RuntimeError, as in trio); a
        # wait driven by hand is dropped. After an abort, removing again is a no-op.
        if task._abort_func is not abort:
            remove(fd, task)
        raise


def sock_send_all(sock: socket.socket, data: Any) -> Coroutine[Any, Any, None]:
    """``await sock_send_all(s, data)``: ``sock_send`` in a loop until every byte of
    *data* (a C-contiguous buffer, held from the first step to the end) is sent. Each
    send is a checkpoint; if one fails or is cancelled, part of *data* may have been
    sent."""
    return _send_all(sock, data)


def stream_recv(sock: socket.socket, nbytes: int) -> Coroutine[Any, Any, bytes]:
    """``sock_recv(sock, nbytes)`` with SocketStream's errors: an OSError comes out as
    ClosedResourceError (EBADF, ENOTSOCK) or BrokenResourceError (caused by it)."""
    return _stream_recv(sock_recv(sock, nbytes))


async def _stream_recv(op: Coroutine[Any, Any, bytes]) -> bytes:
    try:
        return await op
    except OSError as exc:
        new = _stream_error(exc)
        raise new from (None if isinstance(new, ClosedResourceError) else exc)


def stream_send_all(
    sock: socket.socket, data: Any, guard: BusyGuard
) -> Coroutine[Any, Any, None]:
    """``sock_send_all(sock, data)`` with SocketStream's errors (as ``stream_recv``),
    inside *guard*: taken when the call starts (BusyResourceError if another task
    holds it), released when it ends, however it ends."""
    _check_type("guard", guard, BusyGuard)
    return _stream_send_all(sock, data, guard)


async def _stream_send_all(sock: socket.socket, data: Any, guard: BusyGuard) -> None:
    try:
        with guard:
            await _send_all(sock, data)
    except OSError as exc:
        new = _stream_error(exc)
        raise new from (None if isinstance(new, ClosedResourceError) else exc)


def _flat_view(data: Any) -> memoryview:
    # What PyObject_GetBuffer(data, PyBUF_SIMPLE) gives the compiled twin, same errors.
    try:
        view = memoryview(data)
    except TypeError:
        view = None
    if view is None:  # raised outside the handler: no __context__, as in C
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")
    if not view.c_contiguous:
        view.release()
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    if view.format != "B" or view.ndim != 1:
        flat = view.cast("B")
        view.release()  # the cast view keeps the buffer
        view = flat
    return view


async def _send_all(sock: socket.socket, data: Any) -> None:
    with _flat_view(data) as view:
        total = len(view)
        sent = 0
        while True:
            with view[sent:] as rest:
                sent += await _once(sock, lambda: sock.send(rest, _MSG_DONTWAIT), False)
            if sent >= total:
                return
