"""Misuse of cancel scopes, nurseries and arguments never hangs: scopes exited out of
order, twice, or in another task; nurseries reused, entered with 'with', or closed; bad
durations, deadlines, callables and sizes.

Each case is a program run on real trio 0.35 (the oracle) and on vivace in a child
process under a hang guard (``_hang_guard``); it must raise a clear error, of trio's
type unless trio itself only crashes or hangs (said at the case).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from _hang_guard import Cases, check_misuse

CASES = Cases()

_NAN = r"NaN"
_CORRUPTED = r"(?i)(corrupt|out of order|not the innermost)"


# -- cancel scopes entered and exited by hand -----------------------------------------------


@CASES.add("RuntimeError", _CORRUPTED)
def cancel_scopes_exited_out_of_order(t: ModuleType) -> None:
    async def main() -> None:
        outer, inner = t.CancelScope(), t.CancelScope()
        outer.__enter__()
        inner.__enter__()
        outer.__exit__(None, None, None)

    t.run(main)


@CASES.add("RuntimeError", _CORRUPTED)
def run_goes_on_after_cancel_scopes_exited_out_of_order(t: ModuleType) -> None:
    # The error is the task's to handle; the run (and the inner scope) survive it.
    async def main() -> None:
        outer, inner = t.CancelScope(), t.CancelScope()
        outer.__enter__()
        inner.__enter__()
        try:
            outer.__exit__(None, None, None)
        except RuntimeError as exc:
            error = exc
        inner.__exit__(None, None, None)
        await t.sleep(0)
        async with t.open_nursery() as nursery:
            nursery.start_soon(t.sleep, 0)
        raise error

    t.run(main)


@CASES.add("RuntimeError", r"single 'with' block")
def cancel_scope_entered_twice(t: ModuleType) -> None:
    async def main() -> None:
        scope = t.CancelScope()
        with scope:
            with scope:
                pass

    t.run(main)


@CASES.add("RuntimeError", r"single 'with' block")
def cancel_scope_reused_after_exit(t: ModuleType) -> None:
    async def main() -> None:
        scope = t.CancelScope()
        with scope:
            pass
        with scope:
            pass

    t.run(main)


@CASES.add("RuntimeError", _CORRUPTED)
def cancel_scope_exited_in_another_task(t: ModuleType) -> None:
    async def main() -> None:
        scope = t.CancelScope()
        scope.__enter__()

        async def exit_it() -> None:
            scope.__exit__(None, None, None)

        async with t.open_nursery() as nursery:
            nursery.start_soon(exit_it)

    t.run(main)


@CASES.add("RuntimeError", r"(?i)(never entered|already been exited|not entered)")
def cancel_scope_exited_without_being_entered(t: ModuleType) -> None:
    async def main() -> None:
        t.CancelScope().__exit__(None, None, None)

    t.run(main)


@CASES.add("RuntimeError", r"async context")
def cancel_scope_entered_outside_a_run(t: ModuleType) -> None:
    with t.CancelScope():
        pass


# -- nurseries --------------------------------------------------------------------------------


@CASES.add("RuntimeError", r"closed")
def start_soon_after_the_nursery_closed(t: ModuleType) -> None:
    async def main() -> None:
        async with t.open_nursery() as nursery:
            pass
        nursery.start_soon(t.sleep, 0)

    t.run(main)


@CASES.add("RuntimeError", r"closed")
def start_after_the_nursery_closed(t: ModuleType) -> None:
    async def main() -> None:
        async with t.open_nursery() as nursery:
            pass
        await nursery.start(t.sleep, 0)

    t.run(main)


@CASES.add(("AssertionError", "RuntimeError"), r"(?i)(misnest|twice|already)")
def open_nursery_manager_entered_twice_at_once(t: ModuleType) -> None:
    # trio answers with AssertionError('Nursery misnesting detected!').
    async def main() -> None:
        manager = t.open_nursery()
        async with manager:
            async with manager:
                pass

    t.run(main)


@CASES.add("RuntimeError", r"async with")
def open_nursery_with_with_instead_of_async_with(t: ModuleType) -> None:
    async def main() -> None:
        with t.open_nursery():
            pass

    t.run(main)


@CASES.add("TypeError", r"asynchronous context manager", in_group=True)
def async_with_on_the_nursery_object(t: ModuleType) -> None:
    async def main() -> None:
        async with t.open_nursery() as nursery:
            async with nursery:
                pass

    t.run(main)


@CASES.add(
    "RuntimeError",
    r"async context",
    # trio crashes: AttributeError ("'RunContext' object has no attribute 'runner'").
    trio_raises="AttributeError",
)
def open_nursery_driven_outside_a_run(t: ModuleType) -> None:
    async def body() -> None:
        async with t.open_nursery():
            pass

    coro = body()
    try:
        coro.send(None)
    finally:
        coro.close()


# -- bad durations and deadlines --------------------------------------------------------------


def _in_a_run(t: ModuleType, body: Any) -> None:
    async def main() -> None:
        await body()

    t.run(main)


@CASES.add("ValueError", r"non-negative")
def sleep_negative(t: ModuleType) -> None:
    _in_a_run(t, lambda: t.sleep(-1))


@CASES.add("ValueError", _NAN)
def sleep_nan(t: ModuleType) -> None:
    _in_a_run(t, lambda: t.sleep(math.nan))


@CASES.add("ValueError", _NAN)
def sleep_until_nan(t: ModuleType) -> None:
    _in_a_run(t, lambda: t.sleep_until(math.nan))


def _enter(t: ModuleType, make: Any) -> None:
    async def main() -> None:
        with make():
            pass

    t.run(main)


@CASES.add("ValueError", _NAN)
def cancel_scope_with_a_nan_deadline(t: ModuleType) -> None:
    _enter(t, lambda: t.CancelScope(deadline=math.nan))


@CASES.add("ValueError", _NAN)
def cancel_scope_with_a_nan_relative_deadline(t: ModuleType) -> None:
    _enter(t, lambda: t.CancelScope(relative_deadline=math.nan))


@CASES.add("ValueError", _NAN)
def cancel_scope_deadline_set_to_nan(t: ModuleType) -> None:
    async def main() -> None:
        with t.CancelScope() as scope:
            scope.deadline = math.nan

    t.run(main)


@CASES.add("ValueError", _NAN)
def move_on_after_nan(t: ModuleType) -> None:
    _enter(t, lambda: t.move_on_after(math.nan))


@CASES.add("ValueError", r"non-negative")
def move_on_after_negative(t: ModuleType) -> None:
    _enter(t, lambda: t.move_on_after(-1))


@CASES.add("ValueError", _NAN)
def fail_at_nan(t: ModuleType) -> None:
    _enter(t, lambda: t.fail_at(math.nan))


# -- bad callables ----------------------------------------------------------------------------


def _spawn(t: ModuleType, fn: Any, *args: object) -> None:
    async def main() -> None:
        async with t.open_nursery() as nursery:
            nursery.start_soon(fn, *args)

    t.run(main)


async def _async_fn(*args: object) -> None:
    pass


def _sync_fn() -> None:
    pass


async def _async_generator() -> Any:
    yield None


@CASES.add("TypeError", r"not callable", in_group=True)
def start_soon_a_non_callable(t: ModuleType) -> None:
    _spawn(t, 42)


@CASES.add("TypeError", r"coroutine object", in_group=True)
def start_soon_a_coroutine_object(t: ModuleType) -> None:
    coro = _async_fn()
    try:
        _spawn(t, coro)
    finally:
        coro.close()


@CASES.add("TypeError", r"synchronous", in_group=True)
def start_soon_a_sync_function(t: ModuleType) -> None:
    _spawn(t, _sync_fn)


@CASES.add("TypeError", r"async generator", in_group=True)
def start_soon_an_async_generator_function(t: ModuleType) -> None:
    _spawn(t, _async_generator)


@CASES.add("TypeError", r"callable", in_group=True)
def start_a_coroutine_object(t: ModuleType) -> None:
    coro = _async_fn(t.TASK_STATUS_IGNORED)

    async def main() -> None:
        async with t.open_nursery() as nursery:
            await nursery.start(coro)

    try:
        t.run(main)
    finally:
        coro.close()


@CASES.add("TypeError", r"synchronous")
def run_a_sync_function(t: ModuleType) -> None:
    t.run(_sync_fn)


@CASES.add("TypeError", r"coroutine object")
def run_a_coroutine_object(t: ModuleType) -> None:
    coro = _async_fn()
    try:
        t.run(coro)
    finally:
        coro.close()


@CASES.add("TypeError", r"not callable")
def run_a_non_callable(t: ModuleType) -> None:
    t.run(42)


@CASES.add("TypeError", r"not callable")
def spawn_system_task_a_non_callable(t: ModuleType) -> None:
    async def main() -> None:
        t.lowlevel.spawn_system_task(42)

    t.run(main)


# -- bad sizes --------------------------------------------------------------------------------


@CASES.add("ValueError", r">= 0")
def memory_channel_with_a_negative_buffer(t: ModuleType) -> None:
    t.open_memory_channel(-1)


@CASES.add("TypeError", r"integer")
def memory_channel_with_a_fractional_buffer(t: ModuleType) -> None:
    t.open_memory_channel(1.5)


@CASES.add("ValueError", r">= 0")
def semaphore_with_a_negative_value(t: ModuleType) -> None:
    t.Semaphore(-1)


def pytest_generate_tests(metafunc: Any) -> None:
    # Parametrized by this hook rather than pytest.mark: the child process that imports
    # this module to run one case then need not import pytest.
    metafunc.parametrize("name", list(CASES))


def test_misuse_raises_a_clear_error(name: str) -> None:
    check_misuse(__file__, name, CASES[name].expect)
