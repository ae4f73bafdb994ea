"""The Windows IOCP backend's completion-based operations, over the simulated kernel of
``_fake_win32``: wait_overlapped (completion, cancellation before completion, a
completion racing the cancel, a cancel that comes too late, errors), the overlapped
read/write helpers, register_with_iocp, monitor_completion_key and WaitForSingleObject.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import vivace
from _fake_win32 import STATUS_CONNECTION_RESET, FakeKernel, run_over_fake
from vivace._core import _io_windows, _windows_cffi as w
from vivace._core._io_windows import (
    KEY_USER,
    KEY_WAIT_OVERLAPPED,
    CompletionKeyEventInfo,
    WindowsIOManager,
)
from vivace._core._windows_cffi import ffi
from vivace.testing import wait_all_tasks_blocked


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKernel]:
    yield from run_over_fake(monkeypatch)


def _manager() -> WindowsIOManager:
    return _io_windows._manager()


# ------------------------------------------------------------------ overlapped I/O


def _start_read(fake: FakeKernel, handle: int, size: int = 16) -> tuple[Any, Any]:
    # What a user does before wait_overlapped: start the operation themselves.
    ov = ffi.new("OVERLAPPED *")
    buf = ffi.new("char[]", size)
    fake.read_file(handle, buf, size, ov)
    return ov, buf


def test_wait_overlapped_returns_the_completion(fake: FakeKernel) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        assert fake.bindings[handle] == (_io_windows.current_iocp(), KEY_WAIT_OVERLAPPED)
        ov, buf = _start_read(fake, handle)
        results: list[Any] = []

        async def waiter() -> None:
            results.append(await _io_windows.wait_overlapped(handle, ov))

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            assert _manager().statistics().tasks_waiting_overlapped == 1
            fake.complete_read(fake.pending("read")[0], b"abc")
        assert results == [CompletionKeyEventInfo(ov, 3)]
        assert ffi.buffer(buf, 3)[:] == b"abc"
        assert _manager().statistics().tasks_waiting_overlapped == 0

    vivace.run(main)


def test_wait_overlapped_accepts_an_address_and_refuses_a_second_waiter(
    fake: FakeKernel,
) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        ov, _ = _start_read(fake, handle)
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(_io_windows.wait_overlapped, handle, w.address_of(ov))
            await wait_all_tasks_blocked()
            with pytest.raises(vivace.BusyResourceError):
                await _io_windows.wait_overlapped(handle, ov)
            fake.complete_read(fake.pending("read")[0], b"")

    vivace.run(main)


def test_a_completion_nobody_waits_for_is_dropped(fake: FakeKernel) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        _start_read(fake, handle)  # started, never waited for
        fake.complete_read(fake.pending("read")[0], b"z")
        await vivace.lowlevel.checkpoint()
        await vivace.lowlevel.checkpoint()
        assert _manager().statistics().tasks_waiting_overlapped == 0

    vivace.run(main)


def test_cancelled_wait_overlapped_cancels_the_operation(fake: FakeKernel) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        ov, _ = _start_read(fake, handle)
        with vivace.move_on_after(1) as scope:
            await _io_windows.wait_overlapped(handle, ov)
        assert scope.cancelled_caught
        assert ("cancel_io", handle, w.address_of(ov)) in fake.calls
        assert fake.pending("read") == []
        assert _manager().statistics().tasks_waiting_overlapped == 0

    vivace.run(main, clock=vivace.testing.MockClock(autojump_threshold=0))


def test_a_completion_racing_the_cancel_is_delivered(fake: FakeKernel) -> None:
    fake.cancel_mode = "deferred"
    got: list[Any] = []

    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        ov, buf = _start_read(fake, handle)
        scope = vivace.CancelScope()

        async def waiter() -> None:
            with scope:
                got.append(await _io_windows.wait_overlapped(handle, ov))
                await vivace.lowlevel.checkpoint()  # the cancel lands here instead
                got.append("not reached")

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            scope.cancel()
            await wait_all_tasks_blocked()
            assert fake.count("cancel_io") == 1 and got == []  # still waiting
            fake.complete_read(fake.pending("read")[0], b"xy")  # completed anyway
        assert got == [CompletionKeyEventInfo(ov, 2)]
        assert scope.cancelled_caught
        assert ffi.buffer(buf, 2)[:] == b"xy"

    vivace.run(main)


def test_a_deferred_cancel_that_lands_raises_cancelled(fake: FakeKernel) -> None:
    fake.cancel_mode = "deferred"

    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        ov, _ = _start_read(fake, handle)
        scope = vivace.CancelScope()

        async def waiter() -> None:
            with scope:
                await _io_windows.wait_overlapped(handle, ov)

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            scope.cancel()
            await wait_all_tasks_blocked()
            assert not scope.cancelled_caught
            fake.finish_cancels()
        assert scope.cancelled_caught

    vivace.run(main)


def test_a_completion_already_queued_when_the_cancel_misses_is_delivered(
    fake: FakeKernel,
) -> None:
    got: list[Any] = []

    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        ov, _ = _start_read(fake, handle)
        scope = vivace.CancelScope()

        async def waiter() -> None:
            with scope:
                got.append(await _io_windows.wait_overlapped(handle, ov))

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            fake.complete_read(fake.pending("read")[0], b"q")  # queued, not yet seen
            scope.cancel()  # CancelIoEx finds nothing: a late-cancel post follows
        assert ("post", _io_windows.KEY_LATE_CANCEL, w.address_of(ov)) in fake.calls
        assert got == [CompletionKeyEventInfo(ov, 1)]
        assert _manager()._late_cancels == {}

    vivace.run(main)


def test_an_unregistered_handle_that_cannot_be_cancelled_fails_the_run(
    fake: FakeKernel,
) -> None:
    fake.cancel_mode = "missed"

    async def main() -> None:
        handle = fake.make_file()  # never registered: its completion would go nowhere
        ov, _ = _start_read(fake, handle)
        with vivace.move_on_after(1):
            await _io_windows.wait_overlapped(handle, ov)

    with pytest.raises(vivace.TrioInternalError, match="register_with_iocp"):
        vivace.run(main, clock=vivace.testing.MockClock(autojump_threshold=0))


def test_an_abort_we_did_not_ask_for_means_the_handle_was_closed(fake: FakeKernel) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        ov, _ = _start_read(fake, handle)
        async with vivace.open_nursery() as nursery:

            async def waiter() -> None:
                with pytest.raises(vivace.ClosedResourceError):
                    await _io_windows.wait_overlapped(handle, ov)

            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            fake.fail_io(fake.pending("read")[0], w.STATUS_CANCELLED)

    vivace.run(main)


def test_a_failed_operation_raises_its_winerror(fake: FakeKernel) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)

        async def reader() -> None:
            with pytest.raises(OSError) as info:
                await _io_windows.readinto_overlapped(handle, bytearray(4))
            assert info.value.winerror == 64  # type: ignore[attr-defined,unused-ignore]

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            await wait_all_tasks_blocked()
            fake.fail_io(fake.pending("read")[0], STATUS_CONNECTION_RESET)

    vivace.run(main)


def test_readinto_and_write_overlapped_return_byte_counts(fake: FakeKernel) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        buffer = bytearray(10)
        results: dict[str, int] = {}

        async def reader() -> None:
            results["read"] = await _io_windows.readinto_overlapped(handle, buffer, 2**32 + 7)

        async def writer() -> None:
            results["write"] = await _io_windows.write_overlapped(handle, b"payload", 3)

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(writer)
            await wait_all_tasks_blocked()
            (read,) = fake.pending("read")
            (write,) = fake.pending("write")
            offsets = read.overlapped.DUMMYUNIONNAME.DUMMYSTRUCTNAME
            assert (offsets.Offset, offsets.OffsetHigh) == (7, 1)
            assert (read.size, write.size) == (10, 7)
            assert write.overlapped.DUMMYUNIONNAME.DUMMYSTRUCTNAME.Offset == 3
            fake.complete_read(read, b"hello")
            fake.complete_write(write, 4)  # a partial write
        assert results == {"read": 5, "write": 4}
        assert buffer[:5] == b"hello"
        assert fake.files[handle].written == b"payl"

    vivace.run(main)


def test_overlapped_io_cancelled_before_it_starts_does_not_start(fake: FakeKernel) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        with vivace.CancelScope() as scope:
            scope.cancel()
            await _io_windows.write_overlapped(handle, b"x")
        assert scope.cancelled_caught
        assert fake.count("write") == 0
        with pytest.raises(BufferError):
            await _io_windows.readinto_overlapped(handle, b"read-only")
        assert fake.count("read") == 0

    vivace.run(main)


def test_overlapped_io_cancelled_while_pending(fake: FakeKernel) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        with vivace.move_on_after(1) as scope:
            await _io_windows.readinto_overlapped(handle, bytearray(3))
        assert scope.cancelled_caught
        assert fake.count("cancel_io") == 1 and fake.pending("read") == []

    vivace.run(main, clock=vivace.testing.MockClock(autojump_threshold=0))


def test_register_with_iocp_errors_pass_through(fake: FakeKernel) -> None:
    async def main() -> None:
        handle = fake.make_file()
        _io_windows.register_with_iocp(handle)
        with pytest.raises(OSError):
            _io_windows.register_with_iocp(handle)
        with pytest.raises(OSError):
            _io_windows.register_with_iocp(12345678)

    vivace.run(main)


def test_monitor_completion_key_receives_its_entries(fake: FakeKernel) -> None:
    async def main() -> None:
        port = _io_windows.current_iocp()
        with pytest.warns(vivace.TrioDeprecationWarning):
            monitor = _io_windows.monitor_completion_key()
            key, queue = monitor.__enter__()
        try:
            assert key >= KEY_USER
            assert _manager().statistics().completion_key_monitors == 1
            fake.post(port, 7, key, 0x1234)
            fake.post(port, 8, key, 0)
            batch = await queue.get_batch()
            assert batch == [CompletionKeyEventInfo(0x1234, 7), CompletionKeyEventInfo(0, 8)]
        finally:
            monitor.__exit__(None, None, None)
        assert _manager().statistics().completion_key_monitors == 0
        fake.post(port, 1, key, 0)  # nobody listens any more: dropped
        await vivace.lowlevel.checkpoint()
        with pytest.warns(vivace.TrioDeprecationWarning):
            with _io_windows.monitor_completion_key() as (key2, _):
                assert key2 == key + 1

    vivace.run(main)


# ---------------------------------------------------------------- WaitForSingleObject


def test_wait_for_a_signaled_object_returns_after_a_checkpoint(fake: FakeKernel) -> None:
    async def main() -> None:
        obj = fake.make_object()
        fake.signal(obj)
        await _io_windows.WaitForSingleObject(obj)
        with vivace.CancelScope() as scope:
            scope.cancel()
            await _io_windows.WaitForSingleObject(obj)
        assert scope.cancelled_caught
        assert fake.count("wait_any") == 0  # no thread was needed
        with pytest.raises(OSError):
            await _io_windows.WaitForSingleObject(999)

    vivace.run(main)


def test_wait_for_an_object_blocks_until_it_is_signaled(fake: FakeKernel) -> None:
    async def main() -> None:
        obj = fake.make_object()
        done: list[bool] = []

        async def waiter() -> None:
            await _io_windows.WaitForSingleObject(obj)
            done.append(True)

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            assert done == []
            fake.signal(obj)
        assert done == [True]
        (events,) = [call[1][1] for call in fake.calls if call[0] == "wait_any"]
        assert events in fake.closed_handles  # the cancel event was closed

    vivace.run(main)


def test_cancelling_a_wait_for_an_object_stops_its_thread(fake: FakeKernel) -> None:
    async def main() -> None:
        obj = fake.make_object()
        with vivace.move_on_after(5) as scope:
            await _io_windows.WaitForSingleObject(obj)
        assert scope.cancelled_caught
        (waited,) = [call[1] for call in fake.calls if call[0] == "wait_any"]
        assert ("set_event", waited[1]) in fake.calls
        assert waited[1] in fake.closed_handles

    vivace.run(main, clock=vivace.testing.MockClock(autojump_threshold=0))


def test_an_object_signaled_before_the_cancel_lands_is_delivered(fake: FakeKernel) -> None:
    got: list[str] = []

    async def main() -> None:
        obj = fake.make_object()
        scope = vivace.CancelScope()

        async def waiter() -> None:
            with scope:
                await _io_windows.WaitForSingleObject(obj)
                got.append("returned")
                await vivace.lowlevel.checkpoint()

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            fake.signal(obj)
            scope.cancel()  # the worker sees the object first (it is listed first)
        assert got == ["returned"]
        assert scope.cancelled_caught

    vivace.run(main)
