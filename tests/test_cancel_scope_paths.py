"""Cancel scope entry and exit: the common path (``CancelScopeBase``, compiled or
reference) and the hand-over to ``_exit_slow`` must give the same results."""

from __future__ import annotations

import math
from typing import Any

import pytest

import vivace as trio
from vivace._core import _impl
from vivace.testing import MockClock


def _next_deadline_in() -> float:
    return trio.lowlevel.current_statistics().seconds_to_next_deadline


def test_deadline_entry_leaves_the_heap_on_a_normal_exit(autojump_clock: MockClock) -> None:
    async def main() -> None:
        assert _next_deadline_in() == math.inf
        with trio.move_on_after(5) as scope:
            assert _next_deadline_in() == pytest.approx(5)
            await trio.lowlevel.checkpoint()
        assert not scope.cancelled_caught
        assert _next_deadline_in() == math.inf

    trio.run(main, clock=autojump_clock)


def test_deadline_entry_leaves_the_heap_when_an_error_passes_through() -> None:
    async def main() -> None:
        with pytest.raises(KeyError):
            with trio.move_on_after(5):
                raise KeyError("through")
        assert _next_deadline_in() == math.inf

    trio.run(main)


def test_uncaught_error_passes_unchanged_with_its_context() -> None:
    async def main() -> None:
        original = ValueError("inner")
        try:
            try:
                raise OSError("context")
            except OSError:
                with trio.CancelScope():
                    raise original  # noqa: B904 - the implicit __context__ is the point
        except ValueError as exc:
            assert exc is original
            assert isinstance(exc.__context__, OSError)
        else:  # pragma: no cover
            raise AssertionError("the error was swallowed")

    trio.run(main)


def test_past_deadline_cancels_at_entry_and_is_caught(autojump_clock: MockClock) -> None:
    async def main() -> None:
        with trio.CancelScope(deadline=trio.current_time() - 1) as scope:
            assert scope.cancel_called
            await trio.lowlevel.checkpoint()
            raise AssertionError("not reached")  # pragma: no cover
        assert scope.cancelled_caught
        assert _next_deadline_in() == math.inf

    trio.run(main, clock=autojump_clock)


def test_exit_with_cancelled_from_outer_scope_is_not_caught_inside() -> None:
    async def main() -> None:
        with trio.CancelScope() as outer:
            outer.cancel()
            with trio.CancelScope() as inner:
                await trio.lowlevel.checkpoint()
        assert outer.cancelled_caught
        assert not inner.cancelled_caught

    trio.run(main)


def test_nested_scopes_restore_the_task_status_in_order() -> None:
    async def main() -> None:
        task: Any = trio.lowlevel.current_task()
        base = task._cancel_status
        with trio.CancelScope() as a:
            status_a = task._cancel_status
            assert status_a._scope is a and status_a.parent is base
            with trio.CancelScope() as b:
                assert task._cancel_status._scope is b
                assert task._cancel_status.parent is status_a
            assert task._cancel_status is status_a
            assert not status_a.children  # b's status left a's children
        assert task._cancel_status is base
        assert task in base.tasks

    trio.run(main)


def test_scope_left_open_by_a_finished_task_can_be_exited_later() -> None:
    # As in trio: the task's exit takes it out of the status, so a later __exit__
    # from another task finds nothing to report and returns True.
    scopes: list[trio.CancelScope] = []
    results: list[object] = []

    async def opener() -> None:
        scope = trio.CancelScope()
        scope.__enter__()
        scopes.append(scope)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(opener)
        results.append(scopes[0].__exit__(None, None, None))

    trio.run(main)
    assert results == [True]


def test_exit_without_enter_is_reported() -> None:
    async def main() -> None:
        scope = trio.CancelScope()
        with pytest.raises(RuntimeError, match="already been exited"):
            scope.__exit__(None, None, None)

    trio.run(main)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"deadline": math.nan}, ValueError, "deadline must not be NaN"),
        ({"relative_deadline": math.nan}, ValueError, "relative deadline must not be NaN"),
        ({"relative_deadline": -1}, ValueError, "timeout must be non-negative"),
        ({"deadline": 1, "relative_deadline": 1}, ValueError, "both a deadline"),
        ({"shield": 1}, TypeError, "shield must be a bool"),
        ({"deadline": "soon"}, TypeError, None),
    ],
)
def test_constructor_errors(kwargs: dict[str, Any], error: type[Exception], match: str | None) -> None:
    with pytest.raises(error, match=match):
        trio.CancelScope(**kwargs)


def test_constructor_converts_numbers_to_float() -> None:
    scope = trio.CancelScope(deadline=3)
    assert scope.deadline == 3.0 and type(scope.deadline) is float
    relative = trio.CancelScope(relative_deadline=2)
    assert relative.relative_deadline == 2.0 and type(relative.relative_deadline) is float


def test_cancel_scope_is_final_and_weakly_referenceable() -> None:
    import weakref

    scope = trio.CancelScope()
    assert weakref.ref(scope)() is scope
    with pytest.raises(TypeError):

        class Sub(trio.CancelScope):  # type: ignore[misc]
            pass


def test_status_class_must_subclass_the_base() -> None:
    with pytest.raises(TypeError, match="CancelStatusBase subclass"):
        _impl.set_status_class(object)
