"""Child processes: ``lowlevel.open_process``, ``run_process`` and ``Process``.

The child is started by ``subprocess.Popen`` in a worker thread (fork+exec can take a
while for a large parent). Its pipes are ``FdStream``s, and its exit is awaited through a
pidfd on the engine's I/O manager, or a ``waitid`` thread where pidfds are unavailable
(see ``_subprocess_wait``). ``Popen`` always does the reaping, so there is exactly one
owner of the exit status and no zombie survives a ``wait``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from functools import partial
from typing import TYPE_CHECKING, Any

from ._abc import ReceiveStream, SendStream
from ._core import (
    TASK_STATUS_IGNORED,
    BrokenResourceError,
    CancelScope,
    ClosedResourceError,
    NoPublicConstructor,
    TaskStatus,
    final,
    notify_closing,
    open_nursery,
    wait_readable,
)
from ._highlevel_generic import StapledStream
from ._subprocess_wait import wait_child_exiting
from ._sync import Event, Lock
from ._threads import to_thread_run_sync
from ._timeouts import sleep

if TYPE_CHECKING:
    import signal
    from typing import Self

if sys.platform != "win32":
    from ._unix_pipes import FdStream

# Tests (and kernels without pidfds) turn this off to exercise the waitid fallback.
can_try_pidfd_open = hasattr(os, "pidfd_open")

StrOrBytesPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]


@final
class Process(metaclass=NoPublicConstructor):
    """A child process started by :func:`vivace.lowlevel.open_process` or handed out by
    ``nursery.start(vivace.run_process, ...)``.

    ``stdin``/``stdout``/``stderr`` are streams when the matching argument was
    ``subprocess.PIPE`` (else ``None``); ``stdio`` joins stdin and stdout when both are.
    """

    def __init__(
        self,
        child: subprocess.Popen[bytes],
        pipes: tuple[SendStream | None, ReceiveStream | None, ReceiveStream | None],
    ) -> None:
        self._proc = child
        to_child, from_child, stderr = pipes
        self.stdin: SendStream | None = to_child
        self.stdout: ReceiveStream | None = from_child
        self.stderr: ReceiveStream | None = stderr
        self.stdio: StapledStream[SendStream, ReceiveStream] | None = (
            StapledStream(to_child, from_child)
            if to_child is not None and from_child is not None
            else None
        )
        self._wait_lock = Lock()
        self._exit_event: Event | None = None
        self._pidfd: int | None = None
        if can_try_pidfd_open:
            try:
                self._pidfd = os.pidfd_open(child.pid)
            except OSError:
                # Old kernel or a sandbox refusing the syscall: the waitid thread works.
                pass
        self.args: StrOrBytesPath | Sequence[StrOrBytesPath] = child.args
        self.pid: int = child.pid

    def __repr__(self) -> str:
        code = self.returncode
        if code is None:
            status = f"running with PID {self.pid}"
        elif code < 0:
            status = f"exited with signal {-code}"
        else:
            status = f"exited with status {code}"
        # The public module name, as the other reprs do (vivace.Process, or
        # trio.Process under vivace.install()).
        cls = type(self)
        return f"<{cls.__module__}.{cls.__qualname__} {self.args!r}: {status}>"

    def __del__(self) -> None:
        # Only reached if the Process is dropped while its pidfd is still open.
        fd = self.__dict__.get("_pidfd")
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def returncode(self) -> int | None:
        """The exit status, or ``None`` while the child runs; always current (no need to
        call ``poll`` first). Negative ``-N`` means the child died from signal N."""
        code = self._proc.poll()
        if code is not None:
            self._close_pidfd()
        return code

    def poll(self) -> int | None:
        """Same as :attr:`returncode` (kept for code ported from ``subprocess``)."""
        return self.returncode

    def _close_pidfd(self) -> None:
        fd = self._pidfd
        if fd is not None:
            self._pidfd = None
            # A task parked on the fd must be woken (with ClosedResourceError) first.
            notify_closing(fd)
            os.close(fd)

    async def wait(self) -> int:
        """Wait for the child to exit, reap it, and return its exit status.

        Always a checkpoint. Cancelling a wait leaves the child running.
        """
        async with self._wait_lock:
            if self.poll() is None:
                if self._pidfd is not None:
                    # poll() from another task may close the pidfd under us: that also
                    # means the child is gone.
                    with contextlib.suppress(ClosedResourceError):
                        await wait_readable(self._pidfd)
                else:
                    await wait_child_exiting(self)
                # The child has exited, so this does not block (beyond a kernel race of
                # microseconds on some systems); it reaps and records the status.
                self._proc.wait()
                self._close_pidfd()
        code = self._proc.returncode
        assert code is not None
        return code

    def send_signal(self, sig: signal.Signals | int) -> None:
        """Send signal *sig* to the child."""
        self._proc.send_signal(sig)

    def terminate(self) -> None:
        """Ask the child to exit (SIGTERM on Unix)."""
        self._proc.terminate()

    def kill(self) -> None:
        """Kill the child (SIGKILL on Unix); use :meth:`wait` to know it is gone."""
        self._proc.kill()

    async def aclose(self) -> None:
        """Close the pipes, then wait for the child; if that wait is cancelled, kill the
        child and reap it before letting the cancellation through."""
        try:
            for stream in (self.stdin, self.stdout, self.stderr):
                if stream is not None:
                    await stream.aclose()
        finally:
            try:
                await self.wait()
            finally:
                if self._proc.returncode is None:
                    self.kill()
                    with CancelScope(shield=True):
                        await self.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _pipe_to_child() -> tuple[SendStream, int]:
    read_fd, write_fd = os.pipe()
    return FdStream(write_fd), read_fd


def _pipe_from_child() -> tuple[ReceiveStream, int]:
    read_fd, write_fd = os.pipe()
    return FdStream(read_fd), write_fd


async def open_process(
    command: StrOrBytesPath | Sequence[StrOrBytesPath],
    *,
    stdin: int | Any | None = None,
    stdout: int | Any | None = None,
    stderr: int | Any | None = None,
    **options: Any,
) -> Process:
    """Start *command* as a child process and return its :class:`Process` at once.

    ``stdin``/``stdout``/``stderr`` take what ``subprocess.Popen`` takes; with
    ``subprocess.PIPE`` the matching attribute of the Process is a byte stream. Every
    other keyword goes to ``subprocess.Popen``, except the text-mode and buffering ones
    (the streams are unbuffered bytes). The caller owns the child: wait for it.
    """
    for key in ("universal_newlines", "text", "encoding", "errors", "bufsize"):
        if options.get(key):
            raise TypeError(
                "trio.Process only supports communicating over unbuffered byte streams; "
                f"the '{key}' option is not supported"
            )
    if os.name == "posix":
        is_string = isinstance(command, (str, bytes))
        if is_string and not options.get("shell"):
            raise TypeError(
                "command must be a sequence (not a string or bytes) if shell=False "
                "on UNIX systems"
            )
        if not is_string and options.get("shell"):
            raise TypeError(
                "command must be a string or bytes (not a sequence) if shell=True "
                "on UNIX systems"
            )

    our_stdin: SendStream | None = None
    our_stdout: ReceiveStream | None = None
    our_stderr: ReceiveStream | None = None
    # The child's ends are closed in the parent whatever happens; ours only on failure.
    with ExitStack() as child_ends, ExitStack() as ours_on_failure:
        if stdin == subprocess.PIPE:
            our_stdin, stdin = _pipe_to_child()
            child_ends.callback(os.close, stdin)
            ours_on_failure.callback(our_stdin.close)  # type: ignore[attr-defined]
        if stdout == subprocess.PIPE:
            our_stdout, stdout = _pipe_from_child()
            child_ends.callback(os.close, stdout)
            ours_on_failure.callback(our_stdout.close)  # type: ignore[attr-defined]
        if stderr == subprocess.STDOUT:
            # Share stdout's target (our pipe, a file, DEVNULL). With stdout inherited,
            # leave STDOUT for Popen to dup the inherited fd.
            if stdout is not None:
                stderr = stdout
        elif stderr == subprocess.PIPE:
            our_stderr, stderr = _pipe_from_child()
            child_ends.callback(os.close, stderr)
            ours_on_failure.callback(our_stderr.close)  # type: ignore[attr-defined]

        popen = await to_thread_run_sync(
            partial(
                subprocess.Popen, command, stdin=stdin, stdout=stdout, stderr=stderr, **options
            )
        )
        ours_on_failure.pop_all()

    return Process._create(popen, (our_stdin, our_stdout, our_stderr))


async def _posix_deliver_cancel(process: Process) -> None:
    try:
        process.terminate()
        await sleep(5)
        warnings.warn(
            RuntimeWarning(
                f"process {process!r} ignored SIGTERM for 5 seconds. (Maybe you should "
                "pass a custom deliver_cancel?) Trying SIGKILL."
            ),
            stacklevel=1,
        )
        process.kill()
    except OSError as exc:
        warnings.warn(
            RuntimeWarning(f"tried to kill process {process!r}, but failed with: {exc!r}"),
            stacklevel=1,
        )


async def _windows_deliver_cancel(process: Process) -> None:
    try:
        process.terminate()
    except OSError as exc:
        warnings.warn(
            RuntimeWarning(f"TerminateProcess on {process!r} failed with: {exc!r}"),
            stacklevel=1,
        )


async def run_process(
    command: StrOrBytesPath | Sequence[StrOrBytesPath],
    *,
    task_status: TaskStatus[Process] = TASK_STATUS_IGNORED,
    stdin: bytes | bytearray | memoryview | int | Any | None = b"",
    capture_stdout: bool = False,
    capture_stderr: bool = False,
    check: bool = True,
    deliver_cancel: Callable[[Process], Awaitable[object]] | None = None,
    **options: Any,
) -> subprocess.CompletedProcess[bytes]:
    """Run *command* to completion and return a ``subprocess.CompletedProcess``.

    *stdin* is bytes to feed the child (default: none, stdin closed at once) or anything
    ``Popen`` takes as stdin. ``capture_stdout``/``capture_stderr`` collect the output in
    the result. With *check* (default) a non-zero exit raises
    ``subprocess.CalledProcessError`` carrying the captured output.

    If cancelled, ``deliver_cancel(process)`` runs (default on Unix: SIGTERM, then
    SIGKILL after 5 seconds) and the child is always reaped before the cancellation
    propagates. Under ``nursery.start`` the :class:`Process` is what ``start`` returns.
    Other keywords go to :func:`vivace.lowlevel.open_process`.
    """
    if isinstance(stdin, str):
        raise UnicodeError("process stdin must be bytes, not str")
    if task_status is TASK_STATUS_IGNORED:
        if stdin is subprocess.PIPE:
            raise ValueError(
                "stdin=subprocess.PIPE is only valid with nursery.start, since that's "
                "the only way to access the pipe; use nursery.start or pass the data "
                "you want to write directly"
            )
        for name in ("stdout", "stderr"):
            if options.get(name) is subprocess.PIPE:
                raise ValueError(
                    f"{name}=subprocess.PIPE is only valid with nursery.start, since "
                    "that's the only way to access the pipe"
                )
    # Bytes for stdin are fed through a pipe; anything else goes to Popen as it is.
    to_feed = stdin if isinstance(stdin, (bytes, bytearray, memoryview)) else None
    options["stdin"] = subprocess.PIPE if to_feed is not None else stdin
    for stream_name, capture in (("stdout", capture_stdout), ("stderr", capture_stderr)):
        if not capture:
            continue
        if stream_name in options:
            raise ValueError(f"can't specify both {stream_name} and capture_{stream_name}")
        options[stream_name] = subprocess.PIPE
    if deliver_cancel is None:
        deliver_cancel = _windows_deliver_cancel if os.name == "nt" else _posix_deliver_cancel

    stdout_chunks: list[bytes | bytearray] = []
    stderr_chunks: list[bytes | bytearray] = []

    async def feed(stream: SendStream, data: bytes | bytearray | memoryview) -> None:
        async with stream:
            # A child that exits without reading its input is not an error.
            with contextlib.suppress(BrokenResourceError):
                await stream.send_all(data)

    async def collect(stream: ReceiveStream, chunks: list[bytes | bytearray]) -> None:
        async with stream:
            async for chunk in stream:
                chunks.append(chunk)

    proc = await open_process(command, **options)
    async with open_nursery() as nursery:
        try:
            if to_feed is not None:
                assert proc.stdin is not None
                nursery.start_soon(feed, proc.stdin, to_feed)
                proc.stdin = None
                proc.stdio = None
            if capture_stdout:
                assert proc.stdout is not None
                nursery.start_soon(collect, proc.stdout, stdout_chunks)
                proc.stdout = None
                proc.stdio = None
            if capture_stderr:
                assert proc.stderr is not None
                nursery.start_soon(collect, proc.stderr, stderr_chunks)
                proc.stderr = None
            task_status.started(proc)
            await proc.wait()
        except BaseException:
            # Whatever went wrong, the child must be stopped and reaped before we leave:
            # deliver_cancel runs beside a shielded wait, and stops once the child is gone.
            with CancelScope(shield=True):
                killer_scope = CancelScope(shield=True)

                async def killer() -> None:
                    with killer_scope:
                        await deliver_cancel(proc)

                nursery.start_soon(killer)
                await proc.wait()
                killer_scope.cancel()
                raise

    out = b"".join(stdout_chunks) if capture_stdout else None
    err = b"".join(stderr_chunks) if capture_stderr else None
    code = proc.returncode
    assert code is not None
    if code and check:
        raise subprocess.CalledProcessError(code, proc.args, output=out, stderr=err)
    return subprocess.CompletedProcess(proc.args, code, out, err)

