"""``lowlevel.wait_readable`` / ``wait_writable`` / ``notify_closing`` through ``run``:
blocking and waking, checkpoints, busy directions, closing, bad fds and cancellation.

These run on whichever engine ``_impl`` selected.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

import pytest

import vivace
from _io_epoll_support import (
    _pair_with_fd,
    drain,
    fill,
    io_stats,
)
from vivace import lowlevel
from vivace.testing import assert_checkpoints, trio_test, wait_all_tasks_blocked

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux-only")


# --------------------------------------------------------------------------- through run()


@pytest.mark.parametrize("as_fileno", [False, True], ids=["socket", "fileno"])
@trio_test
async def test_wait_readable_blocks_until_data_arrives(as_fileno: bool) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        target = a.fileno() if as_fileno else a
        record: list[str] = []

        async def reader() -> None:
            with assert_checkpoints():
                await lowlevel.wait_readable(target)
            record.append(a.recv(10).decode())

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            assert record == []
            b.send(b"hello")
        assert record == ["hello"]


@pytest.mark.parametrize("as_fileno", [False, True], ids=["socket", "fileno"])
@trio_test
async def test_wait_writable_blocks_until_buffer_drains(as_fileno: bool) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        target = a.fileno() if as_fileno else a
        with assert_checkpoints():
            await lowlevel.wait_writable(target)  # writable from the start
        fill(a)
        record: list[str] = []

        async def writer() -> None:
            with assert_checkpoints():
                await lowlevel.wait_writable(target)
            record.append("writable")

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(writer)
            await wait_all_tasks_blocked()
            assert record == []
            drain(b)
        assert record == ["writable"]


@trio_test
async def test_wait_on_ready_fd_is_still_a_checkpoint() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.send(b"x")
        with assert_checkpoints():
            await lowlevel.wait_readable(a)
        with vivace.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(vivace.Cancelled):
                await lowlevel.wait_readable(a)
            with pytest.raises(vivace.Cancelled):
                await lowlevel.wait_writable(a)
        assert io_stats().tasks_waiting_write == 0


@pytest.mark.parametrize("direction", ["read", "write"])
@trio_test
async def test_second_waiter_in_same_direction_is_busy(direction: str) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        fill(a)
        wait = lowlevel.wait_readable if direction == "read" else lowlevel.wait_writable
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(wait, a)
            await wait_all_tasks_blocked()
            with pytest.raises(vivace.BusyResourceError) as info:
                await wait(a.fileno())
            verb = "reading from" if direction == "read" else "writing to"
            assert str(info.value) == f"another task is already {verb} this fd"
            nursery.cancel_scope.cancel()


@trio_test
async def test_reader_and_writer_wait_on_one_fd_at_once() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        fill(a)
        record: list[str] = []

        async def reader() -> None:
            await lowlevel.wait_readable(a)
            record.append("r")

        async def writer() -> None:
            await lowlevel.wait_writable(a)
            record.append("w")

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(writer)
            await wait_all_tasks_blocked()
            assert record == []
            b.send(b"x")
            await wait_all_tasks_blocked()
            assert record == ["r"]
            drain(b)
            await wait_all_tasks_blocked()
            assert record == ["r", "w"]


@pytest.mark.parametrize("as_fileno", [False, True], ids=["socket", "fileno"])
@trio_test
async def test_notify_closing_wakes_waiters_with_closed_resource_error(as_fileno: bool) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        fill(a)
        errors: list[BaseException] = []

        async def waiter(wait: Callable[[Any], Any]) -> None:
            with pytest.raises(vivace.ClosedResourceError) as info:
                await wait(a)
            errors.append(info.value)

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter, lowlevel.wait_readable)
            nursery.start_soon(waiter, lowlevel.wait_writable)
            await wait_all_tasks_blocked()
            base = io_stats()
            assert (base.tasks_waiting_read, base.tasks_waiting_write) >= (1, 1)
            lowlevel.notify_closing(a.fileno() if as_fileno else a)
            after = io_stats()
            assert after.tasks_waiting_read == base.tasks_waiting_read - 1
            assert after.tasks_waiting_write == base.tasks_waiting_write - 1
        assert [str(e) for e in errors] == ["another task closed this fd"] * 2
        assert errors[0] is not errors[1]


@trio_test
async def test_notify_closing_without_waiters_is_fine() -> None:
    await wait_all_tasks_blocked()  # let the system tasks settle into their waits
    base = io_stats()
    a, b = socket.socketpair()
    with a, b:
        lowlevel.notify_closing(a)
        lowlevel.notify_closing(a.fileno())
        assert io_stats() == base
        # Nothing lingers: a later waiter on the same (still open) fd parks and is
        # woken by data, not by the earlier notification.
        got: list[bytes] = []

        async def reader() -> None:
            await lowlevel.wait_readable(a)
            got.append(a.recv(1))

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            assert got == []
            assert io_stats().tasks_waiting_read == base.tasks_waiting_read + 1
            b.send(b"x")
        assert got == [b"x"]
    lowlevel.notify_closing(a)  # closed: fileno() is -1
    lowlevel.notify_closing(-1)
    assert io_stats() == base


@trio_test
async def test_notify_closing_then_close_then_reuse_fd_number() -> None:
    await wait_all_tasks_blocked()  # let the system tasks settle into their waits
    base = io_stats()
    fd = None
    for _ in range(3):
        a, b = _pair_with_fd(fd)
        fd = a.fileno()
        with b:
            b.send(b"x")
            await lowlevel.wait_readable(a)
            lowlevel.notify_closing(a)
            a.close()
    a, b = _pair_with_fd(fd)
    got: list[bytes] = []

    async def reader() -> None:
        await lowlevel.wait_readable(a)
        got.append(a.recv(1))

    with a, b:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            assert got == []
            b.send(b"y")
    # The new socket behind the reused number is watched afresh: woken by its data.
    assert got == [b"y"]
    assert io_stats() == base


@pytest.mark.parametrize("wait_name", ["wait_readable", "wait_writable"])
@trio_test
async def test_wait_on_closed_fd_raises_ebadf(wait_name: str) -> None:
    s = socket.socket()
    fd = s.fileno()
    s.close()
    with pytest.raises(OSError, match=r"^\[Errno 9\] Bad file descriptor$"):
        await getattr(lowlevel, wait_name)(fd)


@trio_test
async def test_wait_rejects_bad_fd_arguments() -> None:
    with pytest.raises(ValueError, match="negative"):
        await lowlevel.wait_readable(-1)
    with pytest.raises(TypeError):
        await lowlevel.wait_readable("nope")  # type: ignore[arg-type]


@trio_test
async def test_cancelled_waits_leave_no_waiters_behind() -> None:
    await wait_all_tasks_blocked()  # let the system tasks settle into their waits
    base = io_stats()
    socks = [socket.socketpair() for _ in range(3)]
    for pair_ in socks:
        for sock in pair_:
            sock.setblocking(False)
    try:
        fill(socks[0][0])
        fill(socks[2][0])
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(lowlevel.wait_writable, socks[0][0])
            nursery.start_soon(lowlevel.wait_readable, socks[1][0])
            nursery.start_soon(lowlevel.wait_readable, socks[1][1])
            nursery.start_soon(lowlevel.wait_writable, socks[2][0])
            nursery.start_soon(lowlevel.wait_readable, socks[2][0])
            await wait_all_tasks_blocked()
            stats = io_stats()
            assert stats.tasks_waiting_read == base.tasks_waiting_read + 3
            assert stats.tasks_waiting_write == base.tasks_waiting_write + 2
            nursery.cancel_scope.cancel()
        assert io_stats() == base
        # And the fds are usable again by new waiters.
        socks[1][1].send(b"x")
        await lowlevel.wait_readable(socks[1][0])
    finally:
        for x, y in socks:
            x.close()
            y.close()


@trio_test
async def test_cancel_then_data_then_rewait() -> None:
    a, b = socket.socketpair()
    with a, b:
        with vivace.move_on_after(0.01):
            await lowlevel.wait_readable(a)
        b.send(b"x")  # readiness nobody waits for
        await vivace.sleep(0)
        await lowlevel.wait_readable(a)
        assert a.recv(1) == b"x"
