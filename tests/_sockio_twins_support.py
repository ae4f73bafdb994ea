"""Shared by ``test_twins_sockio*.py``: the two socket-operation twins
(``vivace._core._sockio_py`` and ``vivace._core._ext._sockio``), each on its OWN
engine, and a harness that runs their awaitables on real socketpairs in one process.

An engine here is a twin's sockio module plus the kernel and the epoll poller it is
written against: the compiled ops call the compiled ``KernelBase``/``TaskBase`` and
``EpollPoller`` in C, the reference ops call ``_impl``'s traps and the I/O manager's
``wait_readable``/``wait_writable``. ``Rig`` builds a tiny kernel from that engine's
``KernelBase``/``TaskBase`` (``_kernel_twins_support``), a poller of the same engine
that wakes tasks through that kernel, and a stand-in I/O manager whose waits are the
twin's own ``wait_fd`` (as ``EpollIOManager.wait_readable`` does). The reference twin
reads its traps from ``_impl`` (the loaded engine); while a reference rig runs, that
name in ``_sockio_py`` points at the reference kernel's traps instead, so both twins
run on their own engines whichever one the process loaded.

Every awaitable under test is wrapped in ``traced``, which forwards the yields and
throws unchanged and logs what the kernel saw: ``"checkpoint"`` (a cancel point that
yields), ``"csc"`` (cancel-shielded schedule point), ``"wait"`` (parked), then the
return value or the exception. The compiled twin is required when
``VIVACE_REQUIRE_EXTENSIONS=1``; with ``VIVACE_NO_EXTENSIONS=1`` only the reference runs.
"""

from __future__ import annotations

import os
import socket
import types
from collections.abc import Callable, Generator, Iterator
from typing import Any

import outcome
import pytest

from _kernel_twins_support import kernel
from vivace._core import _epoll_py, _impl, _kernel_py, _sockio_py
from vivace._core._exceptions import ClosedResourceError
from vivace._core._run_context import GLOBAL_RUN_CONTEXT
from vivace._core._wakeup import WakeupSocketpair

Pair = tuple[socket.socket, socket.socket]



class Twin:
    """One engine's socket operations with the kernel and poller they run on."""

    def __init__(self, name: str, ops: Any, K: Any, poller: Any) -> None:
        self.name = name
        self.ops = ops
        self.K = K
        self.Poller = poller

    def __repr__(self) -> str:
        return self.name


def _twins() -> list[Any]:
    params = [pytest.param(Twin("reference", _sockio_py, _kernel_py, _epoll_py.EpollPoller),
                           id="reference")]
    if not _impl._NO_EXT:
        try:
            from vivace._core._ext import _epoll, _kernel, _sockio
        except ImportError:
            if os.environ.get("VIVACE_REQUIRE_EXTENSIONS", "") not in ("", "0"):
                raise
        else:
            twin = Twin("compiled", _sockio, _kernel, _epoll.EpollPoller)
            params.append(pytest.param(twin, id="compiled"))
    return params


TWINS = _twins()


class _Traps:
    """What ``_sockio_py`` finds as ``_impl`` while a reference rig runs: the reference
    kernel's traps; anything else from the real switch."""

    checkpoint = staticmethod(_kernel_py.checkpoint)
    cancel_shielded_checkpoint = staticmethod(_kernel_py.cancel_shielded_checkpoint)
    wait_task_rescheduled = staticmethod(_kernel_py.wait_task_rescheduled)

    def __getattr__(self, name: str) -> Any:
        return getattr(_impl, name)


class _IOManager:
    """The parts of ``EpollIOManager`` the ops use: ``_poller`` (compiled) and
    ``wait_readable``/``wait_writable`` (reference), the latter through the twin's
    ``wait_fd`` exactly as the real manager calls it."""

    def __init__(self, rig: Rig) -> None:
        self._rig = rig
        self._poller = rig.poller

    def _wait(self, fd: Any, readable: bool) -> Any:
        owner = fd if type(fd) is socket.socket else None
        fdno = fd if isinstance(fd, int) else fd.fileno()
        rig = self._rig
        return rig.twin.ops.wait_fd(self._poller, fdno, owner, rig.k.current_task, readable)

    def wait_readable(self, fd: Any) -> Any:
        return self._wait(fd, True)

    def wait_writable(self, fd: Any) -> Any:
        return self._wait(fd, False)


def describe(exc: BaseException) -> tuple[Any, ...]:
    """An exception as the tests compare it: type, message, errno, cause and context."""
    return (
        type(exc).__name__,
        str(exc),
        getattr(exc, "errno", None),
        type(exc.__cause__).__name__ if exc.__cause__ is not None else None,
        type(exc.__context__).__name__ if exc.__context__ is not None else None,
        exc.__suppress_context__,
    )


def _kind(K: Any, msg: object) -> str:
    if msg is K.CHECKPOINT:
        return "checkpoint"
    if msg is K.CANCEL_SHIELDED_CHECKPOINT:
        return "csc"
    if type(msg) is K.WaitTaskRescheduled:
        return "wait"
    return f"other {msg!r}"


@types.coroutine
def traced(K: Any, awaitable: Any, log: list[Any]) -> Generator[Any, Any, Any]:
    """``await awaitable``, logging each yield and the outcome into *log*."""
    it = awaitable.__await__()
    value: Any = None
    throw = False
    while True:
        try:
            msg = it.throw(value) if throw else it.send(value)
        except StopIteration as stop:
            log.append(("return", stop.value))
            return stop.value
        except BaseException as exc:
            log.append(("raise", *describe(exc)))
            raise
        log.append(_kind(K, msg))
        try:
            value = yield msg
            throw = False
        except GeneratorExit:
            it.close()
            raise
        except BaseException as exc:
            value = exc
            throw = True


class Job:
    """A task of the rig running one traced awaitable."""

    def __init__(self, rig: Rig, name: str, make: Callable[[], Any]) -> None:
        self.log: list[Any] = []
        self.make = make
        self.task = rig.k.spawn(name, self._main(rig.twin.K))

    async def _main(self, K: Any) -> Any:
        return await traced(K, self.make(), self.log)

    @property
    def done(self) -> bool:
        return bool(self.log) and self.log[-1][0] in ("return", "raise")

    def points(self) -> tuple[int, int]:
        """(cancel points, schedule points) the task went through so far."""
        return (self.task._cancel_points, self.task._schedule_points)


_UNSET = object()


class Rig:
    """One twin's engine: a tiny kernel, a poller of the same engine and its I/O manager
    stand-in. ``with Rig(twin) as rig:`` installs it as the current run."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.ops = twin.ops
        self.k = kernel(twin.K)
        self.wakeup = WakeupSocketpair()
        # reschedule None: the poller wakes each task through its own runner (our kernel)
        self.poller = twin.Poller(self.wakeup.wakeup_sock.fileno(), None)
        self.k.io_manager = _IOManager(self)
        self._saved: list[Any] = []

    def __enter__(self) -> Rig:
        # A run is "active" while the attribute exists at all (run() checks hasattr).
        self._saved = [GLOBAL_RUN_CONTEXT.__dict__.get("runner", _UNSET), _sockio_py._impl]
        GLOBAL_RUN_CONTEXT.runner = self.k
        if self.ops is _sockio_py:
            _sockio_py._impl = _Traps()  # type: ignore[assignment]
        return self

    def __exit__(self, *exc_info: object) -> None:
        runner, _sockio_py._impl = self._saved
        if runner is _UNSET:
            GLOBAL_RUN_CONTEXT.__dict__.pop("runner", None)
        else:
            GLOBAL_RUN_CONTEXT.runner = runner
        self.poller.close()
        self.wakeup.close()
        # pytest keeps the fixture's value (this rig) until after every teardown, the
        # debug build's live-object check included: let go of the kernel now.
        self.k.io_manager = None
        del self.k

    def start(self, make: Callable[[], Any], name: str = "t") -> Job:
        return Job(self, name, make)

    def run(self) -> None:
        """Run every runnable task, once per batch, until none is runnable."""
        self.k.run_all(limit=10_000)

    def poll(self) -> None:
        """One non-blocking epoll round: wake the tasks whose fds are ready."""
        if self.poller.dispatch(self.poller.wait(0)):
            self.wakeup.drain()

    def settle(self, rounds: int = 10_000) -> None:
        """Alternate running and polling until nothing is runnable or ready."""
        for _ in range(rounds):
            self.run()
            self.poll()
            if not self.k.runq:
                return
        raise AssertionError("the rig did not settle")

    def cancel(self, job: Job) -> None:
        """Cancel the job's scope: if it is parked, its abort function runs now."""
        job.task._cancel_status.effectively_cancelled = True
        job.task._attempt_delivery_of_any_pending_cancel()

    def notify_closing(self, sock: socket.socket) -> None:
        """What ``EpollIOManager.notify_closing`` does to the fd's waiters."""
        for task in self.poller.forget(sock.fileno()) or ():
            if task is not None:
                self.k.reschedule(task, outcome.Error(ClosedResourceError("another task closed this fd")))

    def waiting(self) -> tuple[int, int]:
        return (self.poller.tasks_waiting_read, self.poller.tasks_waiting_write)


@pytest.fixture(name="twin", params=TWINS)
def twin_fixture(request: pytest.FixtureRequest) -> Twin:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(name="rig")
def rig_fixture(twin: Twin) -> Iterator[Rig]:
    with Rig(twin) as rig:
        yield rig


@pytest.fixture(name="pair")
def pair_fixture() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


# ------------------------------------------------------------------ expectations


def raised(type_name: str, message: str, errno: int | None = None, cause: str | None = None,
            context: str | None = None, suppress: bool = False) -> tuple[Any, ...]:
    """A traced job's log entry for an exception (the fields of ``describe``)."""
    return ("raise", type_name, message, errno, cause, context, suppress)


CANCELLED = raised("FakeCancelled", "cancelled")
NOTIFIED = raised("ClosedResourceError", "another task closed this fd")
BUSY_READ = raised("BusyResourceError", "another task is already reading from this fd")
BUSY_WRITE = raised("BusyResourceError", "another task is already writing to this fd")
EBADF = raised("OSError", "[Errno 9] Bad file descriptor", 9)
STREAM_CLOSED = raised("ClosedResourceError", "this socket was already closed", None, None,
                        "OSError", True)

# The operations that wait for readability / writability, as (ops, socket, guard) -> op.
READERS: dict[str, Callable[..., Any]] = {
    "sock_recv": lambda ops, s, g: ops.sock_recv(s, 100),
    "sock_call": lambda ops, s, g: ops.sock_call(s, True, "recv", (100,)),
    "stream_recv": lambda ops, s, g: ops.stream_recv(s, 100),
}
WRITERS: dict[str, Callable[..., Any]] = {
    "sock_send": lambda ops, s, g: ops.sock_send(s, b"data"),
    "sock_send_all": lambda ops, s, g: ops.sock_send_all(s, b"data"),
    "sock_call": lambda ops, s, g: ops.sock_call(s, False, "send", (b"data",)),
    "stream_send_all": lambda ops, s, g: ops.stream_send_all(s, b"data", g),
}
OPS = {**{f"{k} (read)": v for k, v in READERS.items()},
       **{f"{k} (write)": v for k, v in WRITERS.items()}}
STREAM_OPS = ("stream_recv (read)", "stream_send_all (write)")


def run(rig: Rig, make: Callable[[], Any]) -> Job:
    """Start a job of *make()* and settle the rig."""
    job = rig.start(make)
    rig.settle()
    return job


def guard_is_free(guard: Any) -> bool:
    """Whether *guard* can be entered now (entering and leaving it if so)."""
    try:
        with guard:
            return True
    except Exception:
        return False


def fill(sock: socket.socket) -> int:
    """Send until the socket buffers are full; return the count sent."""
    total = 0
    try:
        while True:
            total += sock.send(b"f" * 65536)
    except BlockingIOError:
        return total


def drain(sock: socket.socket) -> bytes:
    """Everything the socket can receive now (b"" if nothing)."""
    out = bytearray()
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            out += chunk
    except BlockingIOError:
        pass
    return bytes(out)
