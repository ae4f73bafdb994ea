"""FdStream: a Stream over a Unix file descriptor (a pipe, a tty, ...).

Design notes:
- The fd is owned: it is switched to non-blocking mode, and on close its original
  blocking mode is restored before ``os.close`` (the fd may be shared with a child
  process that expects blocking I/O). An fd holder object owns the int, so closing
  twice, or closing after the number was reused for another file, can never close the
  wrong fd: the holder forgets the number the moment it closes it.
- Like sockets: try the syscall, park on EAGAIN, checkpoint either way.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import NoReturn

from ._abc import Stream
from ._busy import OneAtATime
from ._core import (
    BrokenResourceError,
    ClosedResourceError,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    final,
    in_trio_run,
    notify_closing,
    wait_readable,
    wait_writable,
)

__all__ = ["FdStream"]

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("FdStream is only available on Unix")

# Large enough to drain a pipe buffer in one read.
DEFAULT_RECEIVE_SIZE = 65536


class _FdHolder:
    """Owns one fd number; ``fd == -1`` once closed.

    The number is forgotten the instant it is closed, so a stale stream can only
    ever get EBADF -- never act on an unrelated file that reused the number.
    """

    # Class-level default: __del__ must find *some* value even when __init__ raised.
    fd: int = -1

    def __init__(self, fd: int) -> None:
        if not isinstance(fd, int):
            raise TypeError("file descriptor must be an int")
        self._restore_blocking = os.get_blocking(fd)
        self.fd = fd
        os.set_blocking(fd, False)

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def _release(self) -> None:
        # Restore blocking mode and close, without notifying the run loop. That makes
        # it usable from __del__, where no task can be waiting on the fd (a waiter
        # would be keeping this holder alive).
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.set_blocking(fd, self._restore_blocking)
            os.close(fd)

    def __del__(self) -> None:
        self._release()

    def close(self) -> None:
        if self.fd >= 0:
            if in_trio_run():
                notify_closing(self.fd)
            self._release()


def _reraise_os_error(exc: OSError) -> NoReturn:
    """Translate a failed read/write: EBADF means the stream was closed under us."""
    if exc.errno == errno.EBADF:
        raise ClosedResourceError("file was already closed") from None
    raise BrokenResourceError from exc


@final
class FdStream(Stream):
    """A Stream that reads and writes a Unix file descriptor, such as a pipe end.

    The stream takes ownership of *fd*: it is set non-blocking while the stream uses it,
    and closed (after its blocking mode is restored) by ``aclose()``. Pass a dup of an
    fd you need to keep (e.g. ``os.dup(0)`` for stdin).
    """

    def __init__(self, fd: int) -> None:
        self._fd_holder = _FdHolder(fd)
        self._send_guard = OneAtATime("another task is using this stream for send")
        self._receive_guard = OneAtATime("another task is using this stream for receive")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_guard:
            # Checked before anything else so that even send_all(b"") notices a close.
            if self._fd_holder.closed:
                raise ClosedResourceError("file was already closed")
            await checkpoint()
            total = len(data)
            with memoryview(data) as view:
                written = 0
                while written < total:
                    with view[written:] as rest:
                        try:
                            written += os.write(self._fd_holder.fd, rest)
                        except BlockingIOError:
                            await wait_writable(self._fd_holder.fd)
                        except OSError as exc:
                            _reraise_os_error(exc)

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_guard:
            if self._fd_holder.closed:
                raise ClosedResourceError("file was already closed")
            try:
                await wait_writable(self._fd_holder.fd)
            except BrokenPipeError as exc:
                raise BrokenResourceError from exc

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        with self._receive_guard:
            if max_bytes is not None:
                if not isinstance(max_bytes, int):
                    raise TypeError("max_bytes must be integer >= 1")
                if max_bytes < 1:
                    raise ValueError("max_bytes must be integer >= 1")
            size = DEFAULT_RECEIVE_SIZE if max_bytes is None else max_bytes
            await checkpoint_if_cancelled()
            chunk: bytes | None = None
            while chunk is None:
                try:
                    chunk = os.read(self._fd_holder.fd, size)
                except BlockingIOError:
                    await wait_readable(self._fd_holder.fd)
                except OSError as exc:
                    _reraise_os_error(exc)
            await cancel_shielded_checkpoint()
            return chunk

    def close(self) -> None:
        """Close the fd now (synchronously)."""
        self._fd_holder.close()

    async def aclose(self) -> None:
        self.close()
        await checkpoint()

    def fileno(self) -> int:
        """The fd, or -1 once closed."""
        return self._fd_holder.fd
