"""The socket-operation twins compared on their error paths: ``vivace._core._sockio_py``
(reference) and ``vivace._core._ext._sockio`` (compiled) -- errno to exception,
two tasks on one direction, BusyGuard, wait_fd, bad arguments and the awaitable
protocol (driven by hand, thrown into, awaited twice).

Each twin runs on its own engine in one process (see ``_sockio_twins_support``), with
the same literal expectations; the last test replays one script on each twin and
compares the traces, sizes included, with the reference's.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _sockio_twins_support import (  # noqa: F401  (fixtures)
    BUSY_READ,
    BUSY_WRITE,
    CANCELLED,
    EBADF,
    READERS,
    TWINS,
    WRITERS,
    Pair,
    Rig,
    Twin,
    drain,
    fill,
    guard_is_free,
    pair_fixture,
    raised,
    rig_fixture,
    run,
    twin_fixture,
)
from vivace._core._run_context import GLOBAL_RUN_CONTEXT


def _broken(errno_: int, message: str, cause: str) -> tuple[Any, ...]:
    return raised("BrokenResourceError", f"socket connection broken: [Errno {errno_}] {message}",
                   None, cause, cause, True)


@pytest.fixture(name="tcp")
def tcp_fixture() -> Iterator[Pair]:
    """A connected loopback TCP pair (client, server), non-blocking."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    with client, server:
        client.setblocking(False)
        server.setblocking(False)
        yield client, server


# ------------------------------------------------------------------ errno -> exception


@pytest.mark.parametrize("name", WRITERS)
def test_EPIPE_is_BrokenPipeError_or_a_broken_stream(rig: Rig, pair: Pair, name: str) -> None:
    a, b = pair
    b.close()
    guard = rig.ops.BusyGuard("g")
    job = run(rig, lambda: WRITERS[name](rig.ops, a, guard))
    expected = (
        _broken(32, "Broken pipe", "BrokenPipeError") if name.startswith("stream")
        else raised("BrokenPipeError", "[Errno 32] Broken pipe", 32)
    )
    assert job.log == ["csc", expected] and guard_is_free(guard)


@pytest.mark.parametrize("name", ["sock_recv", "stream_recv"])
def test_ENOTCONN_is_OSError_or_a_broken_stream(rig: Rig, name: str) -> None:
    with socket.socket() as s:
        job = run(rig, lambda: READERS[name](rig.ops, s, None))
    expected = (
        _broken(107, "Transport endpoint is not connected", "OSError") if name == "stream_recv"
        else raised("OSError", "[Errno 107] Transport endpoint is not connected", 107)
    )
    assert job.log == ["csc", expected]


def test_EMSGSIZE_is_OSError(rig: Rig) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.setblocking(False)
        job = run(rig, lambda: rig.ops.sock_send(a, bytes(16 * 1024 * 1024)))
    assert job.log == ["csc", raised("OSError", "[Errno 90] Message too long", 90)]


@pytest.mark.parametrize("name", ["sock_recv", "stream_recv"])
def test_ECONNRESET_is_ConnectionResetError_or_a_broken_stream(
    rig: Rig, tcp: Pair, name: str
) -> None:
    client, server = tcp
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST
    job = rig.start(lambda: READERS[name](rig.ops, server, None))
    for _ in range(100):  # the reset may reach the socket a little later: a hang guard
        rig.settle()
        if job.done:
            break
        rig.poller.dispatch(rig.poller.wait(0.1))
    expected = (
        _broken(104, "Connection reset by peer", "ConnectionResetError") if name == "stream_recv"
        else raised("ConnectionResetError", "[Errno 104] Connection reset by peer", 104)
    )
    assert job.log[-1] == expected


# ------------------------------------------------------------------ one task per direction


@pytest.mark.parametrize("name", [*READERS, "wait_readable"])
def test_second_reader_is_busy_at_once(rig: Rig, pair: Pair, name: str) -> None:
    a, _ = pair
    first = run(rig, lambda: rig.ops.sock_recv(a, 10))
    io = rig.k.io_manager
    make = (lambda: io.wait_readable(a)) if name == "wait_readable" else (
        lambda: READERS[name](rig.ops, a, None))
    second = run(rig, make)
    # Not a checkpoint (as in trio): only the cancel check before the syscall counted.
    assert second.log == [BUSY_READ]
    assert second.points() == ((0, 0) if name == "wait_readable" else (1, 0))
    assert first.log == ["wait"] and rig.waiting() == (1, 0)


@pytest.mark.parametrize("name", [*WRITERS, "wait_writable"])
def test_second_writer_is_busy_at_once(rig: Rig, pair: Pair, name: str) -> None:
    a, _ = pair
    fill(a)
    first = run(rig, lambda: rig.ops.sock_send(a, b"x"))
    guard = rig.ops.BusyGuard("not this one")
    io = rig.k.io_manager
    make = (lambda: io.wait_writable(a)) if name == "wait_writable" else (
        lambda: WRITERS[name](rig.ops, a, guard))
    second = run(rig, make)
    assert second.log == [BUSY_WRITE] and guard_is_free(guard)
    assert first.log == ["wait"] and rig.waiting() == (0, 1)


def test_a_reader_and_a_writer_wait_together(rig: Rig, pair: Pair) -> None:
    a, b = pair
    fill(a)
    reader = run(rig, lambda: rig.ops.sock_recv(a, 10))
    writer = run(rig, lambda: rig.ops.sock_send(a, b"w"))
    assert rig.waiting() == (1, 1)
    b.send(b"r")
    rig.settle()
    assert (reader.log, writer.log) == (["wait", ("return", b"r")], ["wait"])


def test_stream_send_all_refuses_a_held_guard_before_any_checkpoint(rig: Rig, pair: Pair) -> None:
    a, b = pair
    fill(a)
    guard = rig.ops.BusyGuard("another task is currently sending")
    first = run(rig, lambda: rig.ops.stream_send_all(a, b"first", guard))
    second = run(rig, lambda: rig.ops.stream_send_all(a, b"second", guard))
    assert second.log == [raised("BusyResourceError", "another task is currently sending")]
    assert second.points() == (0, 0) and not guard_is_free(guard)
    drain(b)
    rig.settle()
    assert first.log == ["wait", ("return", None)] and guard_is_free(guard)
    assert drain(b) == b"first"


def test_stream_send_all_takes_the_guard_only_when_awaited(rig: Rig, pair: Pair) -> None:
    guard = rig.ops.BusyGuard("g")
    op = rig.ops.stream_send_all(pair[0], b"x", guard)
    assert guard_is_free(guard)
    op.close()
    assert guard_is_free(guard)
    job = run(rig, lambda: rig.ops.stream_send_all(pair[0], "text", guard))
    assert job.log == [raised("TypeError", "a bytes-like object is required, not 'str'")]
    assert guard_is_free(guard)


def test_BusyGuard_is_a_non_blocking_mutex(twin: Twin) -> None:
    guard = twin.ops.BusyGuard(42)
    with guard:
        with pytest.raises(Exception) as info:
            with guard:
                pass
        assert type(info.value).__name__ == "BusyResourceError"
        assert info.value.args == (42,)
    with pytest.raises(KeyError), guard:
        raise KeyError("not suppressed")
    assert guard_is_free(guard)
    assert guard.__exit__(None, None, None) is None
    assert guard_is_free(twin.ops.BusyGuard("other"))


# ------------------------------------------------------------------ wait_fd


def _a_task(rig: Rig) -> Any:
    """A task of the rig's kernel (finished) to hand to ops driven by hand."""
    with socket.socket() as s:
        return run(rig, lambda: rig.ops.sock_send_all(s, b"")).task


def test_wait_fd_parks_even_if_ready(rig: Rig, pair: Pair) -> None:
    a, b = pair
    b.send(b"ready")
    job = run(rig, lambda: rig.k.io_manager.wait_readable(a))
    assert job.log == ["wait", ("return", None)] and job.points() == (1, 1)
    assert a.recv(10) == b"ready"


def test_wait_fd_cancelled_removes_its_waiter(rig: Rig, pair: Pair) -> None:
    job = run(rig, lambda: rig.k.io_manager.wait_writable(pair[0].fileno()))
    rig.settle()
    assert job.log == ["wait", ("return", None)]  # writable at once
    fill(pair[0])
    job = run(rig, lambda: rig.k.io_manager.wait_writable(pair[0].fileno()))
    assert rig.waiting() == (0, 1)
    rig.cancel(job)
    rig.settle()
    assert job.log == ["wait", CANCELLED] and rig.waiting() == (0, 0)


def test_wait_fd_refused_fds_raise_at_once(rig: Rig) -> None:
    dead = socket.socket()
    dead_fd = dead.fileno()
    dead.close()
    task = _a_task(rig)
    for fd, expected in [
        (-1, raised("ValueError", "file descriptor cannot be a negative integer (-1)")),
        (dead_fd, EBADF),
    ]:
        job = run(rig, lambda fd=fd: rig.ops.wait_fd(rig.poller, fd, None, task, True))
        assert job.log == [expected] and job.points() == (0, 0)


# ------------------------------------------------------------------ bad arguments


class _Str(str):
    pass


class _Int:
    def __int__(self) -> int:
        return 1


class _Index:
    def __index__(self) -> int:
        return 1


_REFUSED: dict[str, tuple[Callable[[Any, Any], Any], str, str]] = {
    "recv size str": (lambda o, s: o.sock_recv(s, "1"), "TypeError",
                      "'str' object cannot be interpreted as an integer"),
    "recv size float": (lambda o, s: o.sock_recv(s, 1.0), "TypeError",
                        "'float' object cannot be interpreted as an integer"),
    "recv size __int__": (lambda o, s: o.sock_recv(s, _Int()), "TypeError",
                          "'_Int' object cannot be interpreted as an integer"),
    "recv size huge": (lambda o, s: o.sock_recv(s, 2**63), "OverflowError",
                       "Python int too large to convert to C ssize_t"),
    "recv size negative": (lambda o, s: o.sock_recv(s, -1), "ValueError",
                           "negative buffersize in recv"),
    "recv flags first": (lambda o, s: o.sock_recv(s, -1, "x"), "TypeError",
                         "an integer is required"),
    "recv flags __index__": (lambda o, s: o.sock_recv(s, 1, _Index()), "TypeError",
                             "an integer is required"),
    "recv flags > int": (lambda o, s: o.sock_recv(s, 1, 2**31), "OverflowError",
                         "value too large to convert to int"),
    "recv flags < int": (lambda o, s: o.sock_recv(s, 1, -(2**31) - 1), "OverflowError",
                         "value too large to convert to int"),
    "recv flags > long": (lambda o, s: o.sock_recv(s, 1, 2**63), "OverflowError",
                          "Python int too large to convert to C "
                          + ("int" if sys.version_info >= (3, 13) else "long")),
    "send flags None": (lambda o, s: o.sock_send(s, b"", None), "TypeError",
                        "an integer is required"),
    "stream_recv size": (lambda o, s: o.stream_recv(s, -5), "ValueError",
                         "negative buffersize in recv"),
    "stream_recv str": (lambda o, s: o.stream_recv(s, "5"), "TypeError",
                        "'str' object cannot be interpreted as an integer"),
    "call name int": (lambda o, s: o.sock_call(s, True, 1, ()), "TypeError",
                      "Argument 'name' has incorrect type (expected str, got int)"),
    "call name subclass": (lambda o, s: o.sock_call(s, True, _Str("recv"), ()), "TypeError",
                           "Argument 'name' has incorrect type (expected str, got _Str)"),
    "call args list": (lambda o, s: o.sock_call(s, True, "recv", [1]), "TypeError",
                       "Argument 'args' has incorrect type (expected tuple, got list)"),
    "call args None": (lambda o, s: o.sock_call(s, True, "recv", None), "TypeError",
                       "Argument 'args' has incorrect type (expected tuple, got NoneType)"),
    "guard str": (lambda o, s: o.stream_send_all(s, b"", "g"), "TypeError",
                  "Argument 'guard' has incorrect type (expected {mod}.BusyGuard, got str)"),
    "guard None": (lambda o, s: o.stream_send_all(s, b"", None), "TypeError",
                   "Argument 'guard' has incorrect type (expected {mod}.BusyGuard, got NoneType)"),
    "wait_fd fd str": (lambda o, s: o.wait_fd(None, "3", None, None, True), "TypeError",
                       "an integer is required"),
    "wait_fd fd huge": (lambda o, s: o.wait_fd(None, 2**40, None, None, True), "OverflowError",
                        "value too large to convert to int"),
}


@pytest.mark.parametrize("case", _REFUSED)
def test_bad_arguments_are_refused_by_the_call(twin: Twin, pair: Pair, case: str) -> None:
    make, type_name, message = _REFUSED[case]
    with pytest.raises(Exception) as info:
        make(twin.ops, pair[0])
    assert type(info.value).__name__ == type_name
    assert str(info.value) == message.format(mod=twin.ops.__name__)


@pytest.mark.parametrize(
    "make",
    [
        lambda o, s: o.sock_recv(s, True, socket.MSG_PEEK),
        lambda o, s: o.sock_recv(s, _Index(), _Int()),
        lambda o, s: o.sock_send(s, b"", 1.0),
        lambda o, s: o.sock_call(s, [], "recv", ()),
        lambda o, s: o.wait_fd(None, True, None, None, "yes"),
    ],
    ids=["bool size, IntFlag", "__index__ size, __int__ flags", "float flags", "falsy list",
         "bool fd"],
)
def test_arguments_both_twins_convert(twin: Twin, pair: Pair, make: Any) -> None:
    make(twin.ops, pair[0]).close()


# ------------------------------------------------------------------ the awaitable protocol


def test_outside_a_task_the_op_raises_on_its_first_step(rig: Rig, pair: Pair) -> None:
    op = rig.ops.sock_recv(pair[0], 1)
    with pytest.raises(RuntimeError, match="^must be called from async context$"):
        op.send(None)
    with pytest.raises(RuntimeError, match="^cannot reuse already awaited coroutine$"):
        op.send(None)
    del GLOBAL_RUN_CONTEXT.runner  # no run at all (the rig puts it back)
    op = rig.ops.sock_send(pair[0], b"x")
    with pytest.raises(RuntimeError, match="^must be called from async context$"):
        op.send(None)


def test_a_refused_first_send_leaves_the_op_unstarted(rig: Rig, pair: Pair) -> None:
    # As any coroutine: a non-None first send is refused and changes nothing.
    a, b = pair
    b.send(b"x")
    op = rig.ops.sock_recv(a, 1)
    with pytest.raises(TypeError, match="^can't send non-None value to a just-started coroutine$"):
        op.send(1)
    job = run(rig, lambda: op)
    assert job.log == ["csc", ("return", b"x")]


def test_an_op_cannot_be_awaited_twice_or_by_two_tasks(rig: Rig, pair: Pair) -> None:
    a, b = pair
    op = rig.ops.sock_recv(a, 1)

    async def again() -> Any:
        return await op

    first = run(rig, lambda: op)
    second = run(rig, again)
    assert second.log == [raised("RuntimeError", "coroutine is being awaited already")]
    b.send(b"x")
    rig.settle()
    assert first.log == ["wait", ("return", b"x")]
    third = run(rig, again)
    assert third.log == [raised("RuntimeError", "cannot reuse already awaited coroutine")]
    closed = rig.ops.sock_send(a, b"")
    closed.close()
    fourth = run(rig, lambda: closed)
    assert fourth.log == [raised("RuntimeError", "cannot reuse already awaited coroutine")]


@pytest.mark.parametrize("how", ["close", "throw"])
def test_an_op_driven_by_hand_drops_its_waiter_when_abandoned(
    rig: Rig, pair: Pair, how: str
) -> None:
    a, _ = pair
    rig.k.current_task = _a_task(rig)
    op = rig.ops.sock_recv(a, 1)
    assert type(op.send(None)) is rig.twin.K.WaitTaskRescheduled
    rig.k.current_task = None
    assert rig.waiting() == (1, 0)
    if how == "close":
        assert op.close() is None
    else:
        error = KeyError("thrown")
        with pytest.raises(KeyError) as info:
            op.throw(error)
        assert info.value is error
    assert rig.waiting() == (0, 0)
    with pytest.raises(RuntimeError, match="^cannot reuse already awaited coroutine$"):
        op.send(None)


def test_a_parked_task_thrown_into_from_outside_keeps_its_waiter(rig: Rig, pair: Pair) -> None:
    # The kernel still sees the task parked; dropping its waiter would strand it. When
    # the fd is ready the task is resumed and its finished coroutine ends it, as in trio.
    a, b = pair
    job = run(rig, lambda: rig.ops.sock_recv(a, 10))
    with pytest.raises(KeyError):
        job.task.coro.throw(KeyError("from outside"))
    assert job.log == ["wait", raised("KeyError", "'from outside'")]
    assert rig.waiting() == (1, 0)
    b.send(b"x")
    rig.settle()
    ((_, result),) = rig.k.exited
    assert type(result.error) is RuntimeError
    assert str(result.error) == "cannot reuse already awaited coroutine"
    assert rig.waiting() == (0, 0) and a.recv(10) == b"x"


# ------------------------------------------------------------------ one script, both twins


def _script(twin: Twin) -> list[Any]:
    """Partial sends, waits and cancellations whose sizes depend on the kernel's
    socket buffers: the twins must make the same syscalls in the same order."""
    trace: list[Any] = []
    a, b = socket.socketpair()
    with Rig(twin) as rig, a, b:
        a.setblocking(False)
        b.setblocking(False)
        data = bytes(range(256)) * 16384
        sender = rig.start(lambda: rig.ops.sock_send_all(a, data))
        while not sender.done:
            rig.settle()
            trace.append((list(sender.log), sender.points(), len(drain(b))))
        trace.append(run(rig, lambda: rig.ops.sock_send(a, data)).log)
        trace.append(len(drain(b)))
        filled = fill(a)
        reader = run(rig, lambda: rig.ops.sock_recv(b, 100_000))
        writer = run(rig, lambda: rig.ops.stream_send_all(a, data, rig.ops.BusyGuard("g")))
        rig.settle()
        rig.cancel(writer)
        rig.settle()
        trace += [filled, reader.log[:1], len(reader.log[1][1]), writer.log, rig.waiting()]
    return trace


@pytest.mark.parametrize("twin", TWINS)
def test_one_script_traces_the_same_on_both_twins(twin: Twin) -> None:
    reference = TWINS[0].values[0]
    assert _script(twin) == _script(reference)
