"""Conformance checks for stream implementations: ``check_one_way_stream``,
``check_two_way_stream`` and ``check_half_closeable_stream``.

Each check is a coroutine that drives a fresh pair of connected streams through one
scenario and raises AssertionError when the streams misbehave. The public functions run
them in sequence. The checks use plain ``assert`` and no pytest, so they work under any
test runner. Every scenario closes its streams forcefully on the way out, whatever
happened, so a failing check leaves no task blocked on a half-dead stream.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import TypeAlias, TypeVar

from .._abc import AsyncResource, HalfCloseableStream, ReceiveStream, SendStream, Stream
from .._core import (
    BrokenResourceError,
    BusyResourceError,
    Cancelled,
    CancelScope,
    ClosedResourceError,
    open_nursery,
    wait_all_tasks_blocked,
)
from .._highlevel_generic import aclose_forcefully
from ._checkpoints import assert_checkpoints

Res1 = TypeVar("Res1", bound=AsyncResource)
Res2 = TypeVar("Res2", bound=AsyncResource)
StreamMaker: TypeAlias = Callable[[], Awaitable[tuple[Res1, Res2]]]
OneWayMaker: TypeAlias = StreamMaker[SendStream, ReceiveStream]


@asynccontextmanager
async def _closing_forcefully(
    maker: Callable[[], Awaitable[tuple[Res1, Res2]]],
) -> AsyncIterator[tuple[Res1, Res2]]:
    """Make a pair, hand it to the block, then close both ends forcefully (the second
    even if closing the first raised)."""
    first, second = await maker()
    try:
        yield first, second
    finally:
        try:
            await aclose_forcefully(first)
        finally:
            await aclose_forcefully(second)


@contextmanager
def _expect(exc_type: type[BaseException], *, grouped: bool = False) -> Iterator[None]:
    """Assert that the block raises *exc_type*: bare, or (``grouped=True``) as the only
    member of an exception group, as a nursery reports it."""
    __tracebackhide__ = True
    try:
        yield
    except BaseExceptionGroup as group:
        assert grouped, f"expected a bare {exc_type.__name__}, got an exception group"
        assert len(group.exceptions) == 1, f"expected one exception in {group!r}"
        assert isinstance(group.exceptions[0], exc_type), (
            f"expected {exc_type.__name__} in the group, got {group.exceptions[0]!r}"
        )
    except exc_type:
        assert not grouped, f"expected {exc_type.__name__} inside an exception group"
    else:
        raise AssertionError(f"expected {exc_type.__name__} to be raised")


# Small checked operations shared by the scenarios: each must be a checkpoint.


async def _send(stream: SendStream, data: bytes | bytearray | memoryview) -> None:
    send_all: Callable[[bytes | bytearray | memoryview], Awaitable[object]] = stream.send_all
    with assert_checkpoints():
        result = await send_all(data)
    assert result is None, f"send_all returned {result!r}, expected None"


async def _receive(stream: ReceiveStream, max_bytes: int | None = None) -> bytes | bytearray:
    with assert_checkpoints():
        return await stream.receive_some(max_bytes)


async def _receive_one_byte(stream: ReceiveStream, expected: bytes) -> None:
    got = await _receive(stream, 1)
    assert got == expected, f"receive_some(1) returned {got!r}, expected {expected!r}"


async def _close(resource: AsyncResource) -> None:
    with assert_checkpoints():
        await resource.aclose()


async def _send_until_broken(stream: SendStream) -> None:
    with _expect(BrokenResourceError):
        while True:
            await _send(stream, b"x" * 100)


async def _close_when_idle(resource: AsyncResource) -> None:
    await wait_all_tasks_blocked()
    await aclose_forcefully(resource)


# ---------------------------------------------------------------- one-way scenarios


async def _check_transfer_and_arguments(s: SendStream, r: ReceiveStream) -> None:
    # Plain transfer; an empty send_all must carry no meaning of its own.
    async with open_nursery() as nursery:
        nursery.start_soon(_send, s, b"x")
        nursery.start_soon(_receive_one_byte, r, b"x")

    async def send_nothing_then_y() -> None:
        await _send(s, b"")
        await _send(s, b"y")

    async with open_nursery() as nursery:
        nursery.start_soon(send_nothing_then_y)
        nursery.start_soon(_receive_one_byte, r, b"y")

    # send_all takes any bytes-like object.
    for payload, expected in ((bytearray(b"1"), b"1"), (memoryview(b"2"), b"2")):
        async with open_nursery() as nursery:
            nursery.start_soon(_send, s, payload)
            nursery.start_soon(_receive_one_byte, r, expected)

    # max_bytes: a positive int, or None / omitted for "whatever is there".
    with _expect(ValueError):
        await r.receive_some(-1)
    with _expect(ValueError):
        await r.receive_some(0)
    with _expect(TypeError):
        await r.receive_some(1.5)  # type: ignore[arg-type]
    for pass_none in (False, True):
        async with open_nursery() as nursery:
            nursery.start_soon(_send, s, b"x")
            got = await (_receive(r, None) if pass_none else _receive(r))
            assert got == b"x", f"receive_some returned {got!r}, expected b'x'"


async def _check_receive_is_exclusive(r: ReceiveStream) -> None:
    with _expect(BusyResourceError, grouped=True):
        async with open_nursery() as nursery:
            nursery.start_soon(_receive, r, 1)
            nursery.start_soon(_receive, r, 1)


async def _check_send_ready_while_receiver_waits(s: SendStream, r: ReceiveStream) -> None:
    # With the stream empty and a receiver waiting, send_all could go ahead, so
    # wait_send_all_might_not_block must return.
    async def wait_then_stop(scope: CancelScope) -> None:
        with assert_checkpoints():
            await s.wait_send_all_might_not_block()
        scope.cancel()

    async with open_nursery() as nursery:
        nursery.start_soon(wait_then_stop, nursery.cancel_scope)
        nursery.start_soon(_receive, r, 1)


async def _check_close_rules(s: SendStream, r: ReceiveStream) -> None:
    # Closing the receiver breaks the sender (sooner or later), for good.
    async with open_nursery() as nursery:
        nursery.start_soon(_send_until_broken, s)
        nursery.start_soon(_close, r)
    with _expect(BrokenResourceError):
        await _send(s, b"x" * 100)

    # A closed receiver refuses to receive; closing again is fine.
    with _expect(ClosedResourceError):
        await _receive(r, 4096)
    await _close(r)
    await _close(r)

    # A closed sender refuses every send-side call, even empty sends.
    await _close(s)
    with _expect(ClosedResourceError):
        await _send(s, b"x" * 100)
    with _expect(ClosedResourceError):
        await _send(s, b"")
    with _expect(ClosedResourceError):
        with assert_checkpoints():
            await s.wait_send_all_might_not_block()
    await _close(s)
    await _close(s)


async def _check_basics(stream_maker: OneWayMaker) -> None:
    async with _closing_forcefully(stream_maker) as (s, r):
        assert isinstance(s, SendStream), f"{s!r} is not a SendStream"
        assert isinstance(r, ReceiveStream), f"{r!r} is not a ReceiveStream"
        await _check_transfer_and_arguments(s, r)
        await _check_receive_is_exclusive(r)
        await _check_send_ready_while_receiver_waits(s, r)
        await _check_close_rules(s, r)


async def _check_graceful_close_delivers_data(stream_maker: OneWayMaker) -> None:
    # Data sent before a graceful close still arrives, followed by EOF, even when
    # the receiver only starts reading after the sender has closed (or blocked).
    async with _closing_forcefully(stream_maker) as (s, r):

        async def send_then_close() -> None:
            await _send(s, b"y")
            await _close(s)

        async def receive_after_sender_is_done() -> None:
            await wait_all_tasks_blocked()
            await _receive_one_byte(r, b"y")
            await _receive_one_byte(r, b"")
            await _close(r)

        async with open_nursery() as nursery:
            nursery.start_soon(send_then_close)
            nursery.start_soon(receive_after_sender_is_done)


async def _check_forceful_receiver_close(stream_maker: OneWayMaker) -> None:
    async with _closing_forcefully(stream_maker) as (s, r):
        await aclose_forcefully(r)
        await _send_until_broken(s)
        with _expect(ClosedResourceError):
            await _receive(r, 4096)


async def _check_forceful_sender_close(stream_maker: OneWayMaker) -> None:
    async with _closing_forcefully(stream_maker) as (s, r):
        await aclose_forcefully(s)
        with _expect(ClosedResourceError):
            await _send(s, b"123")
        # The receiver may see EOF or BrokenResourceError; it must not hang or get data.
        with suppress(BrokenResourceError):
            await _receive_one_byte(r, b"")


async def _check_cancelled_aclose_still_closes(stream_maker: OneWayMaker) -> None:
    async with _closing_forcefully(stream_maker) as (s, r):
        for resource in (r, s):
            with CancelScope() as scope:
                scope.cancel()
                await resource.aclose()
        with _expect(ClosedResourceError):
            await _send(s, b"123")
        with _expect(ClosedResourceError):
            await _receive(r, 4096)


async def _expect_cancelled(afn: Callable[..., Awaitable[object]], *args: object) -> None:
    with _expect(Cancelled):
        await afn(*args)


async def _check_graceful_close_after_cancelled_calls(stream_maker: OneWayMaker) -> None:
    # A cancelled send_all / receive_some must not leave the stream unable to close.
    async with _closing_forcefully(stream_maker) as (s, r):
        with CancelScope() as scope:
            scope.cancel()
            async with open_nursery() as nursery:
                nursery.start_soon(_expect_cancelled, _send, s, b"x")
                nursery.start_soon(_expect_cancelled, _receive, r, 1)
        async with open_nursery() as nursery:
            nursery.start_soon(_close, s)
            nursery.start_soon(_close, r)


async def _check_close_wakes_blocked_receiver(stream_maker: OneWayMaker) -> None:
    async with _closing_forcefully(stream_maker) as (s, r):

        async def receive_until_closed() -> None:
            with _expect(ClosedResourceError):
                await r.receive_some(10)

        async with open_nursery() as nursery:
            nursery.start_soon(receive_until_closed)
            await _close_when_idle(r)


# ---------------------------------------------------------------- clogged scenarios


async def _check_wait_returns_when_receiver_starts(clogged_maker: OneWayMaker) -> None:
    async with _closing_forcefully(clogged_maker) as (s, r):
        events: list[str] = []

        async def waiter(scope: CancelScope) -> None:
            events.append("waiter sleeping")
            with assert_checkpoints():
                await s.wait_send_all_might_not_block()
            events.append("waiter woke up")
            scope.cancel()

        async def receiver() -> None:
            await wait_all_tasks_blocked()
            events.append("receiver starting")
            while True:
                await r.receive_some(16834)

        async with open_nursery() as nursery:
            nursery.start_soon(waiter, nursery.cancel_scope)
            await wait_all_tasks_blocked()
            nursery.start_soon(receiver)

        expected = ["waiter sleeping", "receiver starting", "waiter woke up"]
        assert events == expected, (
            f"wait_send_all_might_not_block on a clogged stream must block until a "
            f"receiver runs: got {events}"
        )


async def _check_send_side_is_exclusive(clogged_maker: OneWayMaker) -> None:
    async with _closing_forcefully(clogged_maker) as (s, _r):
        with _expect(BusyResourceError, grouped=True):
            async with open_nursery() as nursery:
                nursery.start_soon(s.wait_send_all_might_not_block)
                nursery.start_soon(s.wait_send_all_might_not_block)
        with _expect(BusyResourceError, grouped=True):
            async with open_nursery() as nursery:
                nursery.start_soon(s.wait_send_all_might_not_block)
                nursery.start_soon(s.send_all, b"123")
    # A cancelled send_all may leave the stream unusable, so start afresh.
    async with _closing_forcefully(clogged_maker) as (s, _r):
        with _expect(BusyResourceError, grouped=True):
            async with open_nursery() as nursery:
                nursery.start_soon(s.send_all, b"123")
                nursery.start_soon(s.send_all, b"123")


async def _wait_tolerating_broken(s: SendStream) -> None:
    with suppress(BrokenResourceError):
        with assert_checkpoints():
            await s.wait_send_all_might_not_block()


async def _check_receiver_close_ends_wait(clogged_maker: OneWayMaker) -> None:
    # Closing the receiver makes wait_send_all_might_not_block return (or raise
    # BrokenResourceError), whether the close comes during or before the call.
    async with _closing_forcefully(clogged_maker) as (s, r):
        async with open_nursery() as nursery:
            nursery.start_soon(_wait_tolerating_broken, s)
            nursery.start_soon(_close_when_idle, r)
    async with _closing_forcefully(clogged_maker) as (s, r):
        await aclose_forcefully(r)
        await _wait_tolerating_broken(s)


async def _check_sender_close_wakes_blocked_calls(clogged_maker: OneWayMaker) -> None:
    blocked_calls: list[Callable[[SendStream], Awaitable[object]]] = [
        lambda s: s.send_all(b"xyzzy"),
        lambda s: s.wait_send_all_might_not_block(),
    ]
    for call in blocked_calls:
        async with _closing_forcefully(clogged_maker) as (s, _r):
            async with open_nursery() as nursery:
                nursery.start_soon(_close_when_idle, s)
                with _expect(ClosedResourceError):
                    await call(s)


# ---------------------------------------------------------------- public checks


async def check_one_way_stream(
    stream_maker: StreamMaker[SendStream, ReceiveStream],
    clogged_stream_maker: StreamMaker[SendStream, ReceiveStream] | None,
) -> None:
    """Run the generic conformance checks against a one-way stream implementation.

    Args:
      stream_maker: an async function (called many times) returning a fresh, connected
          ``(SendStream, ReceiveStream)`` pair.
      clogged_stream_maker: None, or an async function like *stream_maker* whose pair
          starts out "clogged": ``send_all`` and ``wait_send_all_might_not_block`` block
          until the other end calls ``receive_some``. Passing one enables the checks of
          blocking send-side behaviour.

    Raises:
      AssertionError: when the streams break the stream contract.
    """
    for check in (
        _check_basics,
        _check_graceful_close_delivers_data,
        _check_forceful_receiver_close,
        _check_forceful_sender_close,
        _check_cancelled_aclose_still_closes,
        _check_graceful_close_after_cancelled_calls,
        _check_close_wakes_blocked_receiver,
    ):
        await check(stream_maker)
    if clogged_stream_maker is not None:
        for clogged_check in (
            _check_wait_returns_when_receiver_starts,
            _check_send_side_is_exclusive,
            _check_receiver_close_ends_wait,
            _check_sender_close_wakes_blocked_calls,
        ):
            await clogged_check(clogged_stream_maker)


def _flipped(
    maker: StreamMaker[Stream, Stream],
) -> StreamMaker[Stream, Stream]:
    async def flipped_maker() -> tuple[Stream, Stream]:
        first, second = await maker()
        return second, first

    return flipped_maker


_DUPLEX_BYTES = 2**20
_DUPLEX_CHUNK_MAX = 2**14


async def _pour(stream: Stream, data: bytes, seed: int) -> None:
    chunk_sizes = random.Random(seed)
    view = memoryview(data)
    while view:
        size = chunk_sizes.randint(1, _DUPLEX_CHUNK_MAX)
        await stream.send_all(view[:size])
        view = view[size:]


async def _drain(stream: Stream, expected: bytes, seed: int) -> None:
    chunk_sizes = random.Random(seed)
    got = bytearray()
    while len(got) < len(expected):
        chunk = await stream.receive_some(chunk_sizes.randint(1, _DUPLEX_CHUNK_MAX))
        assert chunk, f"unexpected EOF after {len(got)} of {len(expected)} bytes"
        got += chunk
    assert got == expected, "the bytes received differ from the bytes sent"


async def check_two_way_stream(
    stream_maker: StreamMaker[Stream, Stream],
    clogged_stream_maker: StreamMaker[Stream, Stream] | None,
) -> None:
    """Run the generic conformance checks against a bidirectional ``Stream``
    implementation: everything :func:`check_one_way_stream` checks, in both
    directions, plus simultaneous transfer both ways and close propagation.

    The makers return connected ``(Stream, Stream)`` pairs; see
    :func:`check_one_way_stream` for what "clogged" means.
    """
    await check_one_way_stream(stream_maker, clogged_stream_maker)
    await check_one_way_stream(
        _flipped(stream_maker),
        None if clogged_stream_maker is None else _flipped(clogged_stream_maker),
    )

    async with _closing_forcefully(stream_maker) as (s1, s2):
        assert isinstance(s1, Stream), f"{s1!r} is not a Stream"
        assert isinstance(s2, Stream), f"{s2!r} is not a Stream"

        data = random.Random(0).randbytes(_DUPLEX_BYTES)
        reversed_data = data[::-1]
        async with open_nursery() as nursery:
            nursery.start_soon(_pour, s1, data, 0)
            nursery.start_soon(_pour, s2, reversed_data, 1)
            nursery.start_soon(_drain, s1, reversed_data, 2)
            nursery.start_soon(_drain, s2, data, 3)

        async def expect_eof_then_close() -> None:
            got = await s2.receive_some(10)
            assert got == b"", f"expected EOF after the peer closed, got {got!r}"
            await s2.aclose()

        async with open_nursery() as nursery:
            nursery.start_soon(expect_eof_then_close)
            nursery.start_soon(s1.aclose)


async def _send_x_then_eof(stream: HalfCloseableStream) -> None:
    await stream.send_all(b"x")
    with assert_checkpoints():
        await stream.send_eof()


async def _expect_x_then_eof(stream: HalfCloseableStream) -> None:
    await wait_all_tasks_blocked()
    got = await stream.receive_some(10)
    assert got == b"x", f"expected b'x', got {got!r}"
    got = await stream.receive_some(10)
    assert got == b"", f"expected EOF after send_eof, got {got!r}"


async def check_half_closeable_stream(
    stream_maker: StreamMaker[HalfCloseableStream, HalfCloseableStream],
    clogged_stream_maker: StreamMaker[HalfCloseableStream, HalfCloseableStream] | None,
) -> None:
    """Run the generic conformance checks against a ``HalfCloseableStream``
    implementation: everything :func:`check_two_way_stream` checks, plus ``send_eof``
    (the peer reads EOF, later sends are refused, the other direction still works, a
    second ``send_eof`` is fine) and its exclusion against other send-side calls.
    """
    await check_two_way_stream(stream_maker, clogged_stream_maker)

    async with _closing_forcefully(stream_maker) as (s1, s2):
        assert isinstance(s1, HalfCloseableStream), f"{s1!r} is not a HalfCloseableStream"
        assert isinstance(s2, HalfCloseableStream), f"{s2!r} is not a HalfCloseableStream"

        async with open_nursery() as nursery:
            nursery.start_soon(_send_x_then_eof, s1)
            nursery.start_soon(_expect_x_then_eof, s2)
        with _expect(ClosedResourceError):
            await s1.send_all(b"y")
        with assert_checkpoints():
            await s1.send_eof()
        async with open_nursery() as nursery:
            nursery.start_soon(_send_x_then_eof, s2)
            nursery.start_soon(_expect_x_then_eof, s1)

    if clogged_stream_maker is not None:

        async def send_x(stream: HalfCloseableStream) -> None:
            await stream.send_all(b"x")

        async def wait_ready(stream: HalfCloseableStream) -> None:
            await stream.wait_send_all_might_not_block()

        # send_eof is a send-side call too: it must not run alongside a blocked one.
        for blocker in (send_x, wait_ready):
            async with _closing_forcefully(clogged_stream_maker) as (s1, _s2):
                with _expect(BusyResourceError, grouped=True):
                    async with open_nursery() as nursery:
                        nursery.start_soon(blocker, s1)
                        await wait_all_tasks_blocked()
                        nursery.start_soon(s1.send_eof)
