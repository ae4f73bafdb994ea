"""Schedule points and wake-up order that an Instrument can see, against trio 0.35.

Each program runs on vivace and compares its hook trace with a fixed sequence; the same
program on real trio 0.35.0 (the test-only oracle) must produce that sequence too, so
the expectation cannot drift from the spec. Found by the differential fuzzer
(tests/differential/): an already-due ``sleep_until`` took two schedule points in a
cancelled scope (trio: one), and deadlines expiring in one pass woke sleepers after
every expired scope (trio: in deadline order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import vivace


def _trio() -> Any:
    pytest.importorskip("trio.testing")
    import trio

    return trio


def _run_traced(lib: Any, program: Callable[[Any, list[tuple[str, ...]]], Any]) -> Any:
    """Run ``program(lib, log)`` with an instrument that appends the hooks of the tasks
    named ``main``, ``a`` and ``b`` to ``log``; return (result, log)."""
    log: list[tuple[str, ...]] = []
    names = {"main", "a", "b"}

    def label(task: Any) -> str | None:
        name = task.name.rsplit(".", 1)[-1]
        return name if name in names else None

    class Trace(lib.abc.Instrument):  # type: ignore[misc, name-defined]
        def _hook(self, hook: str, task: Any) -> None:
            name = label(task)
            if name is not None:
                log.append((hook, name))

        def task_scheduled(self, task: Any) -> None:
            self._hook("scheduled", task)

        def before_task_step(self, task: Any) -> None:
            self._hook("step", task)

        def after_task_step(self, task: Any) -> None:
            self._hook("stepped", task)

        def task_exited(self, task: Any) -> None:
            self._hook("exited", task)

    async def main() -> Any:
        return await program(lib, log)

    result = lib.run(
        main,
        clock=lib.testing.MockClock(autojump_threshold=0),
        instruments=[Trace()],
    )
    return result, log


def _check(program: Callable[[Any, list[tuple[str, ...]]], Any], expected: Any) -> None:
    assert _run_traced(vivace, program) == expected
    assert _run_traced(_trio(), program) == expected  # the expectation is trio's


# ---------------------------------------------------------------- already-due sleep


async def _due_sleep_in_cancelled_scope(lib: Any, log: list[tuple[str, ...]]) -> str:
    with lib.CancelScope() as cs:
        cs.cancel()
        log.append(("sleeping",))
        try:
            await lib.sleep_until(lib.current_time() - 1.0)
        except lib.Cancelled:
            log.append(("raised",))
            raise
    return "caught" if cs.cancelled_caught else "not caught"


def test_due_sleep_in_a_cancelled_scope_is_one_schedule_point() -> None:
    # trio: the sleep parks and its abort succeeds at once -- one yield, then Cancelled.
    # vivace used to run a full checkpoint (yield, then yield again to deliver).
    _check(
        _due_sleep_in_cancelled_scope,
        (
            "caught",
            [
                ("scheduled", "main"),
                ("step", "main"),
                ("sleeping",),
                ("scheduled", "main"),
                ("stepped", "main"),
                ("step", "main"),
                ("raised",),
                ("exited", "main"),
                ("stepped", "main"),
            ],
        ),
    )


def test_due_sleep_outside_any_cancellation_returns_after_one_schedule_point() -> None:
    async def program(lib: Any, log: list[tuple[str, ...]]) -> None:
        log.append(("sleeping",))
        await lib.sleep_until(lib.current_time())
        log.append(("returned",))

    _check(
        program,
        (
            None,
            [
                ("scheduled", "main"),
                ("step", "main"),
                ("sleeping",),
                ("scheduled", "main"),
                ("stepped", "main"),
                ("step", "main"),
                ("returned",),
                ("exited", "main"),
                ("stepped", "main"),
            ],
        ),
    )


def test_due_sleep_raises_if_its_scope_is_cancelled_before_it_resumes() -> None:
    async def program(lib: Any, log: list[tuple[str, ...]]) -> Any:
        out: list[str] = []
        scope = lib.CancelScope()
        async with lib.open_nursery() as nursery:

            async def a() -> None:
                with scope:
                    try:
                        await lib.sleep_until(lib.current_time())
                        out.append("a returned")
                    except lib.Cancelled:
                        out.append("a cancelled")
                        raise
                out.append(f"a caught={scope.cancelled_caught}")

            async def b() -> None:
                scope.cancel()
                out.append("b cancelled the scope")

            # One batch, in either order: if b runs first, a's sleep starts cancelled;
            # if a runs first, b cancels while a waits to resume. Either way trio's
            # sleep raises after its one schedule point.
            nursery.start_soon(a, name="a")
            nursery.start_soon(b, name="b")
        return out

    result, _ = _run_traced(vivace, program)
    assert result == ["b cancelled the scope", "a cancelled", "a caught=True"]
    assert _run_traced(_trio(), program)[0] == result


# ---------------------------------------------------------------- one pass of deadlines


async def _sleep_and_scope_expire_together(lib: Any, log: list[tuple[str, ...]]) -> Any:
    # "a" sleeps until 4.0; "b" waits in a scope whose deadline is 4.5. The clock then
    # jumps past both at once, so one pass of the run loop expires them: trio wakes
    # them in deadline order (a's sleep is a scope there too).
    async with lib.open_nursery() as nursery:

        async def a() -> None:
            await lib.sleep_until(4.0)

        async def b() -> None:
            with lib.move_on_at(4.5):
                await lib.sleep_forever()

        nursery.start_soon(b, name="b")
        nursery.start_soon(a, name="a")
        await lib.testing.wait_all_tasks_blocked()
        log.clear()
        lib.lowlevel.current_clock().jump(10.0)
    return [entry for entry in log if entry[0] == "scheduled" and entry[1] != "main"]


def test_deadlines_expiring_in_one_pass_wake_tasks_in_deadline_order() -> None:
    # vivace used to cancel every expired scope first and wake the sleepers after.
    result, _ = _run_traced(vivace, _sleep_and_scope_expire_together)
    assert result == [("scheduled", "a"), ("scheduled", "b")]
    assert _run_traced(_trio(), _sleep_and_scope_expire_together)[0] == result
