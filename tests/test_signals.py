"""open_signal_receiver: signals arrive as an async stream, coalesced, in arrival order;
handlers are restored afterwards."""

from __future__ import annotations

import signal
import threading

import pytest

import vivace as trio
from vivace.testing import wait_all_tasks_blocked


def test_signals_arrive_coalesced_and_in_order() -> None:
    async def main() -> list[int]:
        got = []
        with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2) as receiver:
            signal.raise_signal(signal.SIGUSR1)
            signal.raise_signal(signal.SIGUSR1)
            signal.raise_signal(signal.SIGUSR2)
            await wait_all_tasks_blocked()
            async for signum in receiver:
                got.append(signum)
                if len(got) == 2:
                    break
        return got

    assert trio.run(main) == [signal.SIGUSR1, signal.SIGUSR2]


def test_previous_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGUSR1)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR1):
            assert signal.getsignal(signal.SIGUSR1) is not before
        assert signal.getsignal(signal.SIGUSR1) is before

    trio.run(main)


def test_unread_signals_are_redelivered_to_the_old_handler() -> None:
    seen: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    try:

        async def main() -> None:
            with trio.open_signal_receiver(signal.SIGUSR1):
                signal.raise_signal(signal.SIGUSR1)
                await wait_all_tasks_blocked()
            assert seen == [signal.SIGUSR1]

        trio.run(main)
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_no_signals_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="No signals were provided"):
        with trio.open_signal_receiver():
            pass


def test_bad_signal_restores_the_good_ones() -> None:
    before = signal.getsignal(signal.SIGUSR1)

    async def main() -> None:
        with pytest.raises(ValueError):
            with trio.open_signal_receiver(signal.SIGUSR1, 1234567):
                pass
        assert signal.getsignal(signal.SIGUSR1) is before

    trio.run(main)


def test_outside_the_main_thread_is_refused() -> None:
    async def in_thread() -> None:
        with trio.open_signal_receiver(signal.SIGUSR1):
            pass

    errors: list[BaseException] = []

    def target() -> None:
        try:
            trio.run(in_thread)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)


def test_two_readers_at_once_is_busy() -> None:
    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGUSR1) as receiver:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver.__anext__)
                await wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError):
                    await receiver.__anext__()
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_reading_after_exit_is_an_error() -> None:
    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGUSR1) as receiver:
            pass
        with pytest.raises(RuntimeError, match="already exited"):
            await receiver.__anext__()

    trio.run(main)
