"""A socketpair used to wake a blocked I/O wait from another thread or a signal handler.

Design notes
------------
* One byte written to ``write_sock`` makes ``wakeup_sock`` readable; whoever waits on
  ``wakeup_sock`` (the I/O manager's epoll set, or the run_sync_soon task) then calls
  ``drain()``. A wakeup carries no data: N wakeups before a drain mean the same as one.
* So the buffers are made as small as the kernel allows, and a full buffer is simply
  ignored by the writer: a full buffer already guarantees the reader will wake. This
  is what makes ``wakeup_thread_and_signal_safe`` safe from any thread and from signal
  handlers: it never blocks, never allocates much, never raises for "full".
* ``wakeup_on_signals`` points ``signal.set_wakeup_fd`` at the write end, so a signal
  arriving while the run blocks in epoll_wait wakes it (CPython's C-level handler
  writes the signal number). ``warn_on_full_buffer=False`` for the same reason as
  above. ``close()`` puts back whatever was installed before, but only if the current
  wakeup fd is still ours -- a library that replaced ours after us keeps its own.
* A socketpair rather than an eventfd: set_wakeup_fd writes single bytes, which an
  eventfd rejects (it wants 8-byte writes).
"""

from __future__ import annotations

import signal
import socket
import threading
import warnings

_DRAIN_CHUNK = 1 << 16


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class WakeupSocketpair:
    """A non-blocking socketpair: ``wakeup_thread_and_signal_safe()`` makes
    ``wakeup_sock`` readable, ``drain()`` makes it unreadable again."""

    __slots__ = ("_closed", "old_wakeup_fd", "wakeup_sock", "write_sock")

    def __init__(self) -> None:
        pair = socket.socketpair()
        self.wakeup_sock: socket.socket = pair[0]
        self.write_sock: socket.socket = pair[1]
        try:
            self.wakeup_sock.setblocking(False)
            self.write_sock.setblocking(False)
            # Small buffers: a wakeup is one byte, and unread wakeups are redundant.
            # The kernel rounds these up to its minimum (a handful of 1-byte sends).
            self.wakeup_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            self.write_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        except BaseException:
            self.wakeup_sock.close()
            self.write_sock.close()
            raise
        # The fd that signal.set_wakeup_fd returned when we installed ours; None while
        # ours is not installed.
        self.old_wakeup_fd: int | None = None
        self._closed = False

    def wakeup_thread_and_signal_safe(self) -> None:
        """Make ``wakeup_sock`` readable. Safe from any thread and from signal handlers;
        a full buffer means a wakeup is already pending, so it is not an error."""
        try:
            self.write_sock.send(b"\x00")
        except BlockingIOError:
            pass

    async def wait_woken(self) -> None:
        """Block until a wakeup arrives, then consume every pending wakeup."""
        from ._run import wait_readable

        await wait_readable(self.wakeup_sock)
        self.drain()

    def drain(self) -> None:
        """Consume every pending wakeup byte without blocking."""
        recv = self.wakeup_sock.recv
        try:
            # b"" means the write end is gone: nothing more can arrive, stop.
            while recv(_DRAIN_CHUNK):
                pass
        except BlockingIOError:
            pass

    def wakeup_on_signals(self) -> None:
        """Also wake on any signal with a Python handler: install the write end with
        ``signal.set_wakeup_fd``. Only possible (and only done) in the main thread."""
        if self.old_wakeup_fd is not None:
            raise RuntimeError("wakeup_on_signals() was already called on this socketpair")
        if self._closed:
            raise RuntimeError("this wakeup socketpair is closed")
        if not _is_main_thread():
            return
        self.old_wakeup_fd = signal.set_wakeup_fd(
            self.write_sock.fileno(), warn_on_full_buffer=False
        )
        if self.old_wakeup_fd != -1:
            warnings.warn(
                RuntimeWarning(
                    # "signal handling code ... collided" is trio's wording; users
                    # filter warnings on it.
                    "vivace's signal handling code used signal.set_wakeup_fd() and "
                    f"collided with another library (its wakeup fd {self.old_wakeup_fd} "
                    "was replaced); signal delivery to that library may break while "
                    "vivace runs. If vivace "
                    "runs in guest mode on a host loop that uses set_wakeup_fd (asyncio "
                    "does), pass host_uses_signal_set_wakeup_fd=True to "
                    "start_guest_run(). Otherwise, please report this to vivace."
                ),
                stacklevel=2,
            )

    def close(self) -> None:
        """Close both sockets and restore the previous signal wakeup fd (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            old = self.old_wakeup_fd
            if old is not None:
                self.old_wakeup_fd = None
                # Put the old fd back before closing ours: a signal arriving in
                # between must not be written to a closed (maybe reused) fd number.
                current = signal.set_wakeup_fd(old)
                if current != self.write_sock.fileno():
                    # Someone replaced ours after us; theirs stays installed.
                    signal.set_wakeup_fd(current)
        finally:
            self.wakeup_sock.close()
            self.write_sock.close()
