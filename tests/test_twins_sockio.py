"""The socket-operation twins compared: ``vivace._core._sockio_py`` (reference) and
``vivace._core._ext._sockio`` (compiled) -- sock_call, sock_recv, sock_send,
sock_send_all, stream_recv and stream_send_all on their data paths, checkpoints,
cancellation and closing (the error paths, BusyGuard and wait_fd:
``test_twins_sockio_errors.py``).

Each twin runs on its own engine (kernel and poller of the same twin) in one process,
against real socketpairs; see ``_sockio_twins_support``. Every test runs on each twin
with the same literal expectations: what the kernel saw (checkpoint / cancel-shielded
schedule point / park), the result or the exception (type, message, errno, cause,
context), the checkpoint counts, the poller's waiters and the bytes on the peer.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

import pytest

from _sockio_twins_support import (  # noqa: F401  (fixtures)
    CANCELLED,
    EBADF,
    NOTIFIED,
    OPS,
    READERS,
    STREAM_CLOSED,
    STREAM_OPS,
    TWINS,
    WRITERS,
    Pair,
    Rig,
    drain,
    fill,
    guard_is_free,
    pair_fixture,
    raised,
    rig_fixture,
    run,
    twin_fixture,
)
from vivace._core import _impl, _sockio_py

# ------------------------------------------------------------------ the engine's choice


def test_engine_binds_its_own_twin() -> None:
    names = _sockio_py.__all__
    assert len(names) == 8
    for twin in (p.values[0] for p in TWINS):
        assert all(callable(getattr(twin.ops, name)) for name in names), twin
    expected = _sockio_py
    if _impl.ENGINE == "compiled":
        from vivace._core._ext import _sockio as expected  # type: ignore[no-redef]
    assert all(getattr(_impl, name) is getattr(expected, name) for name in names)


# ------------------------------------------------------------------ data paths


@pytest.mark.parametrize("nbytes", [0, 1, 5, 65536, 65537, 200_000])
def test_recv_of_ready_data_is_one_checkpoint(rig: Rig, pair: Pair, nbytes: int) -> None:
    a, b = pair
    data = bytes(range(256)) * 300  # 76800 bytes: more than the compiled scratch buffer
    b.setblocking(True)
    b.sendall(data)
    job = run(rig, lambda: rig.ops.sock_recv(a, nbytes))
    assert job.log == ["csc", ("return", data[:nbytes])]
    assert job.points() == (1, 1)
    assert drain(a) == data[nbytes:]


def test_recv_of_nothing_returns_at_once_even_without_data(rig: Rig, pair: Pair) -> None:
    # As socket.recv(0) (and trio's): no syscall, no wait.
    job = run(rig, lambda: rig.ops.sock_recv(pair[0], 0))
    assert job.log == ["csc", ("return", b"")]
    assert rig.waiting() == (0, 0)


@pytest.mark.parametrize("name", READERS)
def test_recv_at_eof_returns_empty(rig: Rig, pair: Pair, name: str) -> None:
    a, b = pair
    b.shutdown(socket.SHUT_WR)
    job = run(rig, lambda: READERS[name](rig.ops, a, None))
    assert job.log == ["csc", ("return", b"")]


def test_recv_flags_are_passed(rig: Rig, pair: Pair) -> None:
    a, b = pair
    b.send(b"peek")
    job = run(rig, lambda: rig.ops.sock_recv(a, 10, socket.MSG_PEEK))
    assert job.log == ["csc", ("return", b"peek")]
    assert a.recv(10) == b"peek"


@pytest.mark.parametrize("name", READERS)
def test_reader_waits_for_data_then_returns_what_the_retry_got(
    rig: Rig, pair: Pair, name: str
) -> None:
    a, b = pair
    job = run(rig, lambda: READERS[name](rig.ops, a, None))
    assert job.log == ["wait"] and rig.waiting() == (1, 0)
    b.send(b"late")
    rig.settle()
    # The cancel check, then the wait (cancel and schedule point); no schedule point
    # after the retry: the wait was the checkpoint.
    assert job.log == ["wait", ("return", b"late")]
    assert job.points() == (2, 1) and rig.waiting() == (0, 0)


@pytest.mark.parametrize("name", READERS)
def test_reader_woken_for_nothing_parks_again(rig: Rig, pair: Pair, name: str) -> None:
    a, b = pair
    job = run(rig, lambda: READERS[name](rig.ops, a, None))
    b.send(b"stolen")
    rig.poll()  # the reader is woken ...
    assert a.recv(10) == b"stolen"  # ... but the data is gone before it runs
    rig.run()
    assert job.log == ["wait", "wait"] and rig.waiting() == (1, 0)
    b.send(b"mine")
    rig.settle()
    assert job.log == ["wait", "wait", ("return", b"mine")]
    assert job.points() == (3, 2)


def test_send_returns_the_count(rig: Rig, pair: Pair) -> None:
    a, b = pair
    job = run(rig, lambda: rig.ops.sock_send(a, bytearray(b"abc")))
    assert job.log == ["csc", ("return", 3)] and job.points() == (1, 1)
    assert drain(b) == b"abc"


def test_send_of_more_than_fits_is_partial(rig: Rig, pair: Pair) -> None:
    a, b = pair
    data = bytes(range(256)) * 16384  # 4 MiB
    job = run(rig, lambda: rig.ops.sock_send(a, data))
    assert job.log[0] == "csc" and job.log[1][0] == "return"
    count = job.log[1][1]
    assert 0 < count < len(data)
    assert drain(b) == data[:count]


@pytest.mark.parametrize("name", WRITERS)
def test_writer_waits_for_room(rig: Rig, pair: Pair, name: str) -> None:
    a, b = pair
    filled = fill(a)
    job = run(rig, lambda: WRITERS[name](rig.ops, a, rig.ops.BusyGuard("sending")))
    assert job.log == ["wait"] and rig.waiting() == (0, 1)
    assert len(drain(b)) == filled
    rig.settle()
    result = None if name.endswith("send_all") else 4
    assert job.log == ["wait", ("return", result)]
    assert job.points() == (2, 1) and rig.waiting() == (0, 0)
    assert drain(b) == b"data"


def test_send_all_sends_everything_to_a_reader(rig: Rig, pair: Pair) -> None:
    a, b = pair
    data = bytes(range(256)) * 8192  # 2 MiB: many partial sends and waits

    async def reader() -> bytes:
        got = bytearray()
        while len(got) < len(data):
            got += await rig.ops.sock_recv(b, 65536)
        return bytes(got)

    sender = rig.start(lambda: rig.ops.sock_send_all(a, data), "sender")
    receiver = rig.start(reader, "receiver")
    rig.settle()
    assert receiver.log[-1] == ("return", data)
    assert sender.log[-1] == ("return", None)
    assert set(sender.log[:-1]) <= {"csc", "wait"} and len(sender.log) > 3


def test_send_all_of_nothing_is_still_a_checkpoint(rig: Rig, pair: Pair) -> None:
    job = run(rig, lambda: rig.ops.sock_send_all(pair[0], b""))
    assert job.log == ["csc", ("return", None)] and job.points() == (1, 1)


def test_send_all_each_send_is_a_checkpoint_of_its_own(rig: Rig, pair: Pair) -> None:
    a, b = pair
    data = bytes(range(256)) * 16384  # 4 MiB
    job = run(rig, lambda: rig.ops.sock_send_all(a, data))
    assert job.log == ["csc", "wait"]  # a partial send, then a full buffer
    got = bytearray(drain(b))
    while not job.done:
        rig.settle()
        got += drain(b)
    assert got == data and job.log[-1] == ("return", None)
    # One cancel point per send (its cancel check), one more per wait.
    sends = job.log.count("csc") + job.log.count("wait")
    assert job.points() == (sends + job.log.count("wait"), sends)


@pytest.mark.parametrize(
    "data",
    [
        memoryview(struct.pack("4i", 1, 2, 3, 4)).cast("i"),
        memoryview(bytes(range(16))).cast("B", (2, 8)),
        bytearray(b"bytearray"),
    ],
    ids=["format i", "2-D", "bytearray"],
)
def test_send_all_takes_any_contiguous_buffer(rig: Rig, pair: Pair, data: Any) -> None:
    job = run(rig, lambda: rig.ops.sock_send_all(pair[0], data))
    assert job.log == ["csc", ("return", None)]
    assert drain(pair[1]) == bytes(data)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("text", raised("TypeError", "a bytes-like object is required, not 'str'")),
        (memoryview(b"abcdef")[::2],
         raised("BufferError", "memoryview: underlying buffer is not C-contiguous")),
    ],
    ids=["str", "non-contiguous"],
)
def test_send_all_refuses_bad_data_when_awaited(
    rig: Rig, pair: Pair, data: Any, error: Any
) -> None:
    op = rig.ops.sock_send_all(pair[0], data)
    job = run(rig, lambda: op)
    assert job.log == [error] and job.points() == (0, 0)  # before any checkpoint


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("text", raised("TypeError", "a bytes-like object is required, not 'str'")),
        (None, raised("TypeError", "a bytes-like object is required, not 'NoneType'")),
        (memoryview(b"abcdef")[::2],
         raised("BufferError", "memoryview: underlying buffer is not C-contiguous")),
    ],
    ids=["str", "None", "non-contiguous"],
)
def test_send_refuses_bad_data_after_a_checkpoint(
    rig: Rig, pair: Pair, data: Any, error: Any
) -> None:
    job = run(rig, lambda: rig.ops.sock_send(pair[0], data))
    assert job.log == ["csc", error] and job.points() == (1, 1)


def test_send_all_holds_the_buffer_from_the_first_step_to_the_end(rig: Rig, pair: Pair) -> None:
    data = bytearray(4 * 1024 * 1024)
    op = rig.ops.sock_send_all(pair[0], data)
    data.append(0)  # not exported before the first step
    job = run(rig, lambda: op)
    assert job.log == ["csc", "wait"]
    with pytest.raises(BufferError):
        data.append(0)
    rig.cancel(job)
    rig.settle()
    assert job.log[-1] == CANCELLED
    data.append(0)  # released


def test_sock_call_returns_the_methods_result_or_error_after_a_checkpoint(
    rig: Rig, pair: Pair
) -> None:
    a, b = pair
    b.send(b"xy")
    job = run(rig, lambda: rig.ops.sock_call(a, True, "recv", (1,)))
    assert job.log == ["csc", ("return", b"x")] and job.points() == (1, 1)
    job = run(rig, lambda: rig.ops.sock_call(a, True, "recv", ("size",)))
    assert job.log == ["csc", raised("TypeError", "'str' object cannot be interpreted as an integer")]
    job = run(rig, lambda: rig.ops.sock_call(a, 0, "nope", ()))
    assert job.log == ["csc", raised("AttributeError", "'socket' object has no attribute 'nope'")]


def test_sock_call_accept_waits_for_a_connection(rig: Rig) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        job = run(rig, lambda: rig.ops.sock_call(listener, True, "accept", ()))
        assert job.log == ["wait"] and rig.waiting() == (1, 0)
        with socket.create_connection(listener.getsockname()) as client:
            for _ in range(100):  # a hang guard: the handshake is over at once on loopback
                rig.poll()
                rig.run()
                if job.done:
                    break
            conn, addr = job.log[-1][1]
            with conn:
                assert addr == client.getsockname()


# ------------------------------------------------------------------ cancellation


@pytest.mark.parametrize("name", OPS)
def test_cancelled_before_the_call_does_nothing(rig: Rig, pair: Pair, name: str) -> None:
    a, b = pair
    b.send(b"unread")
    guard = rig.ops.BusyGuard("sending")
    job = rig.start(lambda: OPS[name](rig.ops, a, guard))
    job.task._cancel_status.effectively_cancelled = True
    rig.settle()
    assert job.log == ["checkpoint", CANCELLED] and job.points() == (1, 2)
    assert drain(b) == b"" and a.recv(10) == b"unread"  # nothing sent, nothing received
    assert guard_is_free(guard)


@pytest.mark.parametrize("name", OPS)
def test_cancelled_while_parked_does_nothing(rig: Rig, pair: Pair, name: str) -> None:
    a, b = pair
    filled = fill(a) if "write" in name else 0
    guard = rig.ops.BusyGuard("sending")
    job = run(rig, lambda: OPS[name](rig.ops, a, guard))
    assert job.log == ["wait"]
    assert guard_is_free(guard) == ("stream_send" not in name)  # held while parked
    rig.cancel(job)
    assert rig.waiting() == (0, 0)  # the abort removed the waiter at once
    rig.settle()
    assert job.log == ["wait", CANCELLED] and job.points() == (2, 1)
    assert len(drain(b)) == filled  # nothing of the op's data was sent
    b.send(b"later")
    assert a.recv(10) == b"later"  # nothing was received
    assert guard_is_free(guard)


def test_cancelled_at_the_schedule_point_after_the_call_is_too_late(rig: Rig, pair: Pair) -> None:
    a, b = pair
    b.send(b"got it")
    job = rig.start(lambda: rig.ops.stream_recv(a, 100))
    rig.k.run_all(limit=1)
    assert job.log == ["csc"]
    job.task._cancel_status.effectively_cancelled = True
    rig.settle()
    assert job.log == ["csc", ("return", b"got it")]


def test_uncancelled_at_the_checkpoint_goes_on(rig: Rig, pair: Pair) -> None:
    a, b = pair
    b.send(b"hello")
    job = rig.start(lambda: rig.ops.sock_recv(a, 100))
    job.task._cancel_status.effectively_cancelled = True
    rig.k.run_all(limit=1)
    assert job.log == ["checkpoint"]
    job.task._cancel_status.effectively_cancelled = False  # e.g. a shield went up
    rig.settle()
    assert job.log == ["checkpoint", "csc", ("return", b"hello")]
    assert job.points() == (1, 2)


def test_send_all_cancelled_between_two_sends_keeps_what_was_sent(rig: Rig, pair: Pair) -> None:
    a, b = pair
    data = bytes(range(256)) * 16384
    job = rig.start(lambda: rig.ops.sock_send_all(a, data))
    rig.k.run_all(limit=1)
    assert job.log == ["csc"]  # the first, partial, send is done
    job.task._cancel_status.effectively_cancelled = True
    rig.settle()
    assert job.log == ["csc", "checkpoint", CANCELLED]
    sent = drain(b)
    assert 0 < len(sent) < len(data) and sent == data[: len(sent)]


def test_send_all_cancelled_while_parked_keeps_what_was_sent(rig: Rig, pair: Pair) -> None:
    a, b = pair
    data = bytes(range(256)) * 16384
    job = run(rig, lambda: rig.ops.stream_send_all(a, data, rig.ops.BusyGuard("g")))
    assert job.log == ["csc", "wait"]
    rig.cancel(job)
    rig.settle()
    assert job.log == ["csc", "wait", CANCELLED]
    sent = drain(b)
    assert 0 < len(sent) < len(data) and sent == data[: len(sent)]


def test_pending_keyboard_interrupt_is_delivered_at_the_cancel_check(rig: Rig, pair: Pair) -> None:
    a, b = pair
    b.send(b"kept")
    job = rig.start(lambda: rig.ops.sock_recv(a, 100))
    rig.k.main_task = job.task
    rig.k.ki_pending = True
    rig.settle()
    assert job.log == ["checkpoint", raised("KeyboardInterrupt", "")]
    assert not rig.k.ki_pending and a.recv(10) == b"kept"
    other = run(rig, lambda: rig.ops.sock_send(a, b"x"))  # not the main task: unaffected
    rig.k.ki_pending = True
    assert other.log == ["csc", ("return", 1)]


# ------------------------------------------------------------------ closing


@pytest.mark.parametrize("name", OPS)
def test_notify_closing_wakes_a_parked_op_with_ClosedResourceError(
    rig: Rig, pair: Pair, name: str
) -> None:
    a, b = pair
    if "write" in name:
        fill(a)
    guard = rig.ops.BusyGuard("sending")
    job = run(rig, lambda: OPS[name](rig.ops, a, guard))
    rig.notify_closing(a)
    rig.settle()
    assert job.log == ["wait", NOTIFIED]  # the stream ops pass it through untouched
    assert guard_is_free(guard) and rig.waiting() == (0, 0)


@pytest.mark.parametrize("name", OPS)
def test_socket_closed_before_the_call(rig: Rig, pair: Pair, name: str) -> None:
    a, _ = pair
    a.close()
    job = run(rig, lambda: OPS[name](rig.ops, a, rig.ops.BusyGuard("g")))
    assert job.log == ["csc", STREAM_CLOSED if name in STREAM_OPS else EBADF]


@pytest.mark.parametrize("name", OPS)
def test_socket_closed_between_readiness_and_retry(rig: Rig, pair: Pair, name: str) -> None:
    a, b = pair
    if "write" in name:
        fill(a)
    job = run(rig, lambda: OPS[name](rig.ops, a, rig.ops.BusyGuard("g")))
    if "write" in name:
        drain(b)
    else:
        b.send(b"x")
    rig.poll()
    a.close()
    rig.settle()
    assert job.log == ["wait", STREAM_CLOSED if name in STREAM_OPS else EBADF]


@pytest.mark.parametrize("name", ["sock_recv (read)", "stream_recv (read)"])
def test_ENOTSOCK_is_an_OSError_or_a_closed_stream(rig: Rig, name: str) -> None:
    r, w = os.pipe()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            os.dup2(r, s.fileno())  # the socket object now holds a pipe
            job = run(rig, lambda: OPS[name](rig.ops, s, None))
    finally:
        os.close(r)
        os.close(w)
    notsock = raised("OSError", "[Errno 88] Socket operation on non-socket", 88)
    assert job.log == ["csc", STREAM_CLOSED if name in STREAM_OPS else notsock]
