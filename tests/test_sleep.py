"""sleep / sleep_until and their engine half ``park_until`` (both engines)."""

from __future__ import annotations

import math

import pytest

import vivace as trio
from vivace.testing import MockClock


def _heap_size() -> int:
    runner = trio.lowlevel.current_task()._runner  # type: ignore[attr-defined]
    return len(runner.deadlines)


def test_sleep_wakes_at_its_deadline(autojump_clock: MockClock) -> None:
    woke: list[float] = []

    async def main() -> None:
        start = trio.current_time()
        await trio.sleep(2.5)
        woke.append(trio.current_time() - start)
        assert _heap_size() == 0

    trio.run(main, clock=autojump_clock)
    assert woke == [pytest.approx(2.5)]


def test_cancelled_sleep_leaves_no_heap_entry(autojump_clock: MockClock) -> None:
    async def main() -> None:
        with trio.move_on_after(1) as scope:
            await trio.sleep(100)
        assert scope.cancelled_caught
        assert _heap_size() == 0  # neither the scope's entry nor the sleeper's

    trio.run(main, clock=autojump_clock)


def test_sleep_in_a_cancelled_scope_raises_without_parking() -> None:
    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await trio.sleep(10)
            assert _heap_size() == 0

    trio.run(main)


def test_sleep_until_in_the_past_is_still_a_checkpoint() -> None:
    async def main() -> None:
        with trio.testing.assert_checkpoints():
            await trio.sleep_until(trio.current_time() - 5)
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await trio.sleep_until(trio.current_time() - 5)

    trio.run(main)


def test_many_sleepers_wake_in_deadline_order(autojump_clock: MockClock) -> None:
    order: list[int] = []

    async def sleeper(i: int, delay: float) -> None:
        await trio.sleep(delay)
        order.append(i)

    async def main() -> None:
        delays = [(i * 7919) % 101 + 1 for i in range(50)]
        async with trio.open_nursery() as nursery:
            for i, delay in enumerate(delays):
                nursery.start_soon(sleeper, i, delay)
        expected = sorted(range(50), key=lambda i: (delays[i], i))
        assert [delays[i] for i in order] == [delays[i] for i in expected]

    trio.run(main, clock=autojump_clock)


def test_sleep_rejects_bad_arguments() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="non-negative"):
            await trio.sleep(-1)
        with pytest.raises(ValueError, match="NaN"):
            await trio.sleep(math.nan)
        with pytest.raises(ValueError, match="NaN"):
            await trio.sleep_until(math.nan)

    trio.run(main)


def test_park_until_can_be_spawned_and_cancelled() -> None:
    # The compiled engine's operation object stands in for a coroutine (start_soon
    # accepts it) and is its own abort function.
    from vivace._core import park_until

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(park_until, trio.current_time() + 1000)
            await trio.testing.wait_all_tasks_blocked()
            assert _heap_size() == 1
            nursery.cancel_scope.cancel()
        assert _heap_size() == 0

    trio.run(main)
