"""Misuse of primitives never hangs: locks, limiters, channels, fds, task_status, the
lowlevel traps, run() options, and vivace's awaitables handed to asyncio.

Each case is a program run on real trio 0.35 (the oracle) and on vivace in a child
process under a hang guard (``_hang_guard``); it must raise a clear error, of trio's
type unless trio itself only crashes or hangs (said at the case).
"""

from __future__ import annotations

import asyncio
import os
import socket
from types import ModuleType
from typing import Any

from _hang_guard import Cases, check_misuse

CASES = Cases()


# -- sync primitives and channels ---------------------------------------------------------------


@CASES.add("RuntimeError", r"(?i)(don't own|not own|owner)", in_group=True)
def lock_released_by_a_task_that_does_not_hold_it(t: ModuleType) -> None:
    async def main() -> None:
        lock = t.Lock()
        async with t.open_nursery() as nursery:
            nursery.start_soon(lock.acquire)
            await t.testing.wait_all_tasks_blocked()
            lock.release()

    t.run(main)


@CASES.add("RuntimeError", r"(?i)(holding|not hold|borrower)")
def capacity_limiter_released_without_acquire(t: ModuleType) -> None:
    async def main() -> None:
        t.CapacityLimiter(1).release()

    t.run(main)


@CASES.add("ClosedResourceError", r"closed")
def send_on_a_closed_memory_channel(t: ModuleType) -> None:
    # (trio's ClosedResourceError here has an empty message.)
    async def main() -> None:
        send, _ = t.open_memory_channel(1)
        await send.aclose()
        await send.send("x")

    t.run(main)


@CASES.add("RuntimeError", r"awaited already", in_group=True)
def one_checkpoint_awaitable_awaited_by_two_tasks(t: ModuleType) -> None:
    # Only the late awaiter fails; the first one completes its checkpoint.
    async def main() -> None:
        shared = t.lowlevel.checkpoint()

        async def await_it() -> None:
            await shared

        async with t.open_nursery() as nursery:
            nursery.start_soon(await_it)
            nursery.start_soon(await_it)

    t.run(main)


# -- file descriptors -----------------------------------------------------------------------------


def _never_opened_fd() -> int:
    # High enough that neither the runs nor the interpreter will have opened it.
    fd = 900
    try:
        os.fstat(fd)
    except OSError:
        return fd
    raise AssertionError(f"fd {fd} is open; pick another")


@CASES.add("OSError", r"Bad file descriptor")
def wait_readable_on_an_fd_that_is_not_open(t: ModuleType) -> None:
    async def main() -> None:
        await t.lowlevel.wait_readable(_never_opened_fd())

    t.run(main)


@CASES.add("ValueError", r"negative")
def wait_readable_on_a_closed_socket_object(t: ModuleType) -> None:
    left, right = socket.socketpair()
    left.close()
    right.close()

    async def main() -> None:
        await t.lowlevel.wait_readable(left)

    t.run(main)


@CASES.add("BusyResourceError", r"another task", in_group=True)
def two_tasks_wait_readable_on_one_socket(t: ModuleType) -> None:
    left, right = socket.socketpair()

    async def main() -> None:
        async with t.open_nursery() as nursery:
            nursery.start_soon(t.lowlevel.wait_readable, left)
            nursery.start_soon(t.lowlevel.wait_readable, left)

    try:
        t.run(main)
    finally:
        left.close()
        right.close()


@CASES.add("ClosedResourceError", r"closed", in_group=True)
def notify_closing_under_a_waiting_task(t: ModuleType) -> None:
    left, right = socket.socketpair()

    async def main() -> None:
        async with t.open_nursery() as nursery:
            nursery.start_soon(t.lowlevel.wait_readable, left)
            await t.testing.wait_all_tasks_blocked()
            t.lowlevel.notify_closing(left)

    try:
        t.run(main)
    finally:
        left.close()
        right.close()


@CASES.add("OverflowError", r"too large")
def notify_closing_an_fd_too_large_for_c(t: ModuleType) -> None:
    async def main() -> None:
        t.lowlevel.notify_closing(2**40)

    t.run(main)


# -- task_status --------------------------------------------------------------------------------


@CASES.add("RuntimeError", r"without calling task_status.started", in_group=True)
def started_task_that_never_calls_started(t: ModuleType) -> None:
    async def child(task_status: Any) -> None:
        pass

    async def main() -> None:
        async with t.open_nursery() as nursery:
            await nursery.start(child)

    t.run(main)


@CASES.add("RuntimeError", r"'started' twice", in_group=True)
def task_status_started_twice(t: ModuleType) -> None:
    async def child(task_status: Any) -> None:
        task_status.started()
        task_status.started()

    async def main() -> None:
        async with t.open_nursery() as nursery:
            await nursery.start(child)

    t.run(main)


@CASES.add("RuntimeError", r"'started' twice")
def task_status_started_again_after_its_nursery_closed(t: ModuleType) -> None:
    async def main() -> None:
        statuses = []

        async def child(task_status: Any) -> None:
            statuses.append(task_status)
            task_status.started()

        async with t.open_nursery() as nursery:
            await nursery.start(child)
        statuses[0].started()

    t.run(main)


# -- lowlevel traps and run() options -----------------------------------------------------------


@CASES.add("TrioInternalError", r"Abort")
def abort_function_returning_junk(t: ModuleType) -> None:
    async def main() -> None:
        with t.CancelScope() as scope:
            scope.cancel()
            await t.lowlevel.wait_task_rescheduled(lambda _: "junk")

    t.run(main)


@CASES.add(
    "TypeError",
    r"outcome",
    # trio crashes inside the woken task: AttributeError ("'str' object has no
    # attribute 'unwrap'"), far from the reschedule call that was wrong.
    trio_raises="AttributeError",
)
def reschedule_with_a_value_that_is_not_an_outcome(t: ModuleType) -> None:
    async def main() -> None:
        task = t.lowlevel.current_task()
        errors: list[BaseException] = []

        async def waker() -> None:
            await t.testing.wait_all_tasks_blocked()
            try:
                t.lowlevel.reschedule(task, "not an outcome")
            except BaseException as exc:
                errors.append(exc)
                t.lowlevel.reschedule(task)

        async with t.open_nursery() as nursery:
            nursery.start_soon(waker)
            try:
                await t.lowlevel.wait_task_rescheduled(lambda _: t.lowlevel.Abort.SUCCEEDED)
            except BaseException as exc:
                errors.append(exc)
        raise errors[0]

    t.run(main)


@CASES.add(
    "TypeError",
    r"Clock",
    # trio crashes: TrioInternalError from an AttributeError on the clock.
    trio_raises="TrioInternalError",
)
def run_with_a_clock_that_is_not_a_clock(t: ModuleType) -> None:
    async def main() -> None:
        pass

    t.run(main, clock=42)


@CASES.add("RuntimeError", r"outside of a run")
def run_var_read_outside_a_run(t: ModuleType) -> None:
    t.lowlevel.RunVar("misuse").get()


@CASES.add("ValueError", r"backwards")
def mock_clock_jumped_backwards(t: ModuleType) -> None:
    t.testing.MockClock().jump(-1)


# -- vivace's awaitables run by asyncio ----------------------------------------------------------


@CASES.add("RuntimeError", r"bad yield")
def checkpoint_awaited_in_asyncio(t: ModuleType) -> None:
    async def main() -> None:
        await t.lowlevel.checkpoint()

    asyncio.run(main())


@CASES.add("RuntimeError", r"async context")
def sleep_awaited_in_asyncio(t: ModuleType) -> None:
    async def main() -> None:
        await t.sleep(0.01)

    asyncio.run(main())


def pytest_generate_tests(metafunc: Any) -> None:
    # Parametrized by this hook rather than pytest.mark: the child process that imports
    # this module to run one case then need not import pytest.
    metafunc.parametrize("name", list(CASES))


def test_misuse_raises_a_clear_error(name: str) -> None:
    check_misuse(__file__, name, CASES[name].expect)
