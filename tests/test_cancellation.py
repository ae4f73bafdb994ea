"""Cancel scopes, timeouts and the Cancelled exception."""

from __future__ import annotations

import gc
import math

import pytest

import vivace as trio
from vivace.testing import MockClock, wait_all_tasks_blocked


def test_cancel_is_level_triggered() -> None:
    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            for _ in range(3):
                with pytest.raises(trio.Cancelled):
                    await trio.lowlevel.checkpoint()
        assert not scope.cancelled_caught  # every Cancelled was caught by pytest.raises

    trio.run(main)


def test_cancel_scope_catches_its_own_cancellation() -> None:
    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel(reason="enough")
            await trio.sleep_forever()
        assert scope.cancel_called
        assert scope.cancelled_caught

    trio.run(main)


def test_outer_cancellation_passes_through_inner_scope() -> None:
    async def main() -> None:
        with trio.CancelScope() as outer:
            with trio.CancelScope() as inner:
                outer.cancel()
                await trio.lowlevel.checkpoint()
            raise AssertionError("not reached")
        assert outer.cancelled_caught
        assert not inner.cancelled_caught

    trio.run(main)


def test_shield_blocks_outer_cancellation_until_lowered() -> None:
    async def main() -> None:
        with trio.CancelScope() as outer:
            outer.cancel()
            with trio.CancelScope(shield=True) as shielded:
                await trio.lowlevel.checkpoint()  # does not raise
                shielded.shield = False
                with pytest.raises(trio.Cancelled):
                    await trio.lowlevel.checkpoint()
                shielded.shield = True
                await trio.lowlevel.checkpoint()
        assert outer.cancelled_caught is False

    trio.run(main)


def test_cancel_before_entering_applies_inside() -> None:
    async def main() -> None:
        scope = trio.CancelScope()
        scope.cancel()
        with scope:
            await trio.lowlevel.checkpoint()
        assert scope.cancelled_caught

    trio.run(main)


def test_scope_cannot_be_reused() -> None:
    async def main() -> None:
        scope = trio.CancelScope()
        with scope:
            pass
        with pytest.raises(RuntimeError, match="single 'with' block"):
            with scope:
                pass

    trio.run(main)


def test_deadline_with_mock_clock(autojump_clock: MockClock) -> None:
    async def main() -> None:
        start = trio.current_time()
        with trio.move_on_after(5) as scope:
            await trio.sleep(100)
        assert scope.cancelled_caught
        assert trio.current_time() - start == pytest.approx(5)

    trio.run(main, clock=autojump_clock)


def test_fail_after_raises_too_slow(autojump_clock: MockClock) -> None:
    async def main() -> None:
        with pytest.raises(trio.TooSlowError):
            with trio.fail_after(1):
                await trio.sleep(2)
        with trio.fail_after(2):
            await trio.sleep(1)

    trio.run(main, clock=autojump_clock)


def test_deadline_can_be_moved_later_and_earlier(autojump_clock: MockClock) -> None:
    async def main() -> None:
        start = trio.current_time()
        with trio.CancelScope(deadline=start + 1) as scope:
            scope.deadline = start + 10
            scope.deadline = start + 3
            await trio.sleep_forever()
        assert trio.current_time() - start == pytest.approx(3)

    trio.run(main, clock=autojump_clock)


def test_relative_deadline_counts_from_entry(autojump_clock: MockClock) -> None:
    async def main() -> None:
        scope = trio.CancelScope(relative_deadline=2)
        assert scope.is_relative
        await trio.sleep(10)
        entered_at = trio.current_time()
        with scope:
            assert scope.is_relative is None
            assert scope.deadline == pytest.approx(entered_at + 2)
            await trio.sleep_forever()
        assert trio.current_time() == pytest.approx(entered_at + 2)

    trio.run(main, clock=autojump_clock)


def test_invalid_deadlines_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        trio.CancelScope(deadline=math.nan)
    with pytest.raises(ValueError, match="non-negative"):
        trio.CancelScope(relative_deadline=-1)
    with pytest.raises(ValueError, match="both"):
        trio.CancelScope(deadline=1, relative_deadline=1)
    with pytest.raises(TypeError, match="shield"):
        trio.CancelScope(shield=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        trio.move_on_after(-1)


def test_current_effective_deadline_respects_shields(autojump_clock: MockClock) -> None:
    async def main() -> None:
        assert trio.current_effective_deadline() == math.inf
        with trio.move_on_at(100):
            with trio.move_on_at(200):
                assert trio.current_effective_deadline() == 100
                with trio.CancelScope(shield=True, deadline=300):
                    assert trio.current_effective_deadline() == 300
        with trio.CancelScope() as scope:
            scope.cancel()
            assert trio.current_effective_deadline() == -math.inf

    trio.run(main, clock=autojump_clock)


def test_cancelled_has_no_public_constructor_and_describes_its_source() -> None:
    with pytest.raises(TypeError, match="no public constructor"):
        trio.Cancelled()

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel(reason="shutting down")
            try:
                await trio.lowlevel.checkpoint()
            except trio.Cancelled as exc:
                assert exc.source == "explicit"
                assert exc.reason == "shutting down"
                assert exc.source_task == repr(trio.lowlevel.current_task())
                assert "cancelled due to explicit with reason 'shutting down'" in str(exc)
                raise

    trio.run(main)


def test_cancelled_create_for_compatibility() -> None:
    exc = trio.Cancelled._create(source="deadline", reason=None, source_task=None)
    assert str(exc) == "cancelled due to deadline"


def test_cancel_wakes_a_sleeping_task_only_at_its_checkpoint() -> None:
    events: list[str] = []

    async def sleeper(scope: trio.CancelScope) -> None:
        with scope:
            events.append("sleeping")
            await trio.sleep_forever()
        events.append("woke")

    async def main() -> None:
        scope = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper, scope)
            await wait_all_tasks_blocked()
            scope.cancel()
            events.append("cancel called")
        assert events == ["sleeping", "cancel called", "woke"]

    trio.run(main)


def test_checkpoint_if_cancelled_is_not_a_schedule_point() -> None:
    async def main() -> None:
        task = trio.lowlevel.current_task()
        before = task._schedule_points
        await trio.lowlevel.checkpoint_if_cancelled()
        assert task._schedule_points == before
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await trio.lowlevel.checkpoint_if_cancelled()

    trio.run(main)


def test_cancel_shielded_checkpoint_ignores_cancellation() -> None:
    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            await trio.lowlevel.cancel_shielded_checkpoint()
        assert not scope.cancelled_caught

    trio.run(main)


def test_misnested_scope_exit_is_reported() -> None:
    async def main() -> None:
        outer = trio.CancelScope()
        inner = trio.CancelScope()
        outer.__enter__()
        inner.__enter__()
        with pytest.raises(RuntimeError, match="still within its child"):
            outer.__exit__(None, None, None)
        with pytest.raises(RuntimeError, match="already been exited"):
            outer.__exit__(None, None, None)

    trio.run(main)


async def _garbage_from(body: object) -> list[object]:
    """Run ``await body()`` inside the run with the GC saving everything it would free,
    and return what the body left as cyclic garbage."""
    gc.collect()
    old = gc.get_debug()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await body()  # type: ignore[operator]
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(old)
        gc.garbage.clear()
        gc.enable()


def _assert_no_garbage(body: object) -> None:
    async def main() -> None:
        await body()  # type: ignore[operator]  # warm-up: first-time caches are not leaks
        garbage = await _garbage_from(body)
        assert garbage == [], garbage[:10]

    trio.run(main)


def test_cancel_scope_creates_no_cyclic_garbage() -> None:
    async def main() -> None:
        for _ in range(10):
            with trio.CancelScope() as scope:
                scope.cancel()
                await trio.lowlevel.checkpoint()
            with trio.move_on_after(0):
                await trio.sleep_forever()

    _assert_no_garbage(main)


def test_nursery_cancellation_creates_no_cyclic_garbage() -> None:
    async def main() -> None:
        for _ in range(5):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(trio.sleep_forever)
                await wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()

    _assert_no_garbage(main)


def test_task_exit_with_error_creates_no_cyclic_garbage() -> None:
    async def fail() -> None:
        raise ValueError

    async def main() -> None:
        for _ in range(3):
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(fail)
            except ExceptionGroup:
                pass

    _assert_no_garbage(main)
