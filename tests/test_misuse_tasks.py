"""Misuse of tasks never hangs: foreign awaitables, a parked task's coroutine driven from
outside the run loop, and lowlevel.reschedule on tasks that are not waiting for it.

Each case is a program run on real trio 0.35 (the oracle) and on vivace in a child
process under a hang guard (``_hang_guard``); it must raise a clear error, of trio's
type unless trio itself only crashes or hangs (said at the case).
"""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import types
from collections.abc import Generator
from types import ModuleType
from typing import Any

from _hang_guard import Cases, Misuse, check_misuse

CASES = Cases()

# Where the error names the foreign value and says it is not one of ours (trio's and
# vivace's texts both point at asyncio and compatibility shims).
_FOREIGN = r"(asyncio|foreign|other framework)"


@types.coroutine
def _yield(value: object) -> Generator[object, object, None]:
    yield value


# -- foreign awaitables -------------------------------------------------------------------


@CASES.add("TypeError", rf"None.*{_FOREIGN}")
def await_asyncio_sleep_zero(t: ModuleType) -> None:
    async def main() -> None:
        await asyncio.sleep(0)

    t.run(main)


@CASES.add("RuntimeError", "no running event loop")
def await_asyncio_sleep(t: ModuleType) -> None:
    # asyncio's own check fires before anything reaches the run loop.
    async def main() -> None:
        await asyncio.sleep(1)

    t.run(main)


@CASES.add("TypeError", rf"Future.*{_FOREIGN}")
def await_asyncio_future(t: ModuleType) -> None:
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()

        async def main() -> None:
            await future

        t.run(main)
    finally:
        loop.close()


@CASES.add("TypeError", rf"'junk'.*{_FOREIGN}")
def await_generator_coroutine_yielding_junk(t: ModuleType) -> None:
    async def main() -> None:
        await _yield("junk")

    t.run(main)


@CASES.add("TypeError", rf"None.*{_FOREIGN}")
def await_generator_coroutine_yielding_none(t: ModuleType) -> None:
    async def main() -> None:
        await _yield(None)

    t.run(main)


@CASES.add("TypeError", rf"'junk'.*{_FOREIGN}", in_group=True)
def await_junk_in_a_child_task(t: ModuleType) -> None:
    async def child() -> None:
        await _yield("junk")

    async def main() -> None:
        async with t.open_nursery() as nursery:
            nursery.start_soon(child)

    t.run(main)


@CASES.add("TypeError", rf"'junk'.*{_FOREIGN}")
def task_that_caught_the_foreign_yield_error_runs_on(t: ModuleType) -> None:
    # The error is thrown into the task, which may handle it: the run is not broken.
    async def main() -> None:
        try:
            await _yield("junk")
        except TypeError as exc:
            error = exc
        await t.sleep(0)
        async with t.open_nursery() as nursery:
            nursery.start_soon(t.sleep, 0)
        raise error

    t.run(main)


# -- a parked task's coroutine thrown into, closed or sent to -------------------------------
#
# The child parks; the main task drives its coroutine by hand (the coroutine unwinds or
# takes a foreign value), then cancels the nursery (or wakes the child the normal way).
# trio: when the run later resumes the dead coroutine, the child fails with RuntimeError
# ("cannot reuse already awaited coroutine") and the nursery raises it.


class Thrown(Exception):
    pass


async def _park(t: ModuleType, kind: str, parts: dict[str, Any]) -> None:
    if kind == "event":
        await parts["event"].wait()
    elif kind == "lock":
        await parts["lock"].acquire()
    elif kind == "channel_receive":
        await parts["receive"].receive()
    elif kind == "channel_send":
        await parts["send"].send("never taken")
    elif kind == "sleep":
        await t.sleep(1000)
    elif kind == "sleep_forever":
        await t.sleep_forever()
    elif kind == "socket":
        await t.lowlevel.wait_readable(parts["socket"])
    else:
        raise AssertionError(kind)


def _drive(coro: Any, action: str) -> None:
    # What the coroutine does with this is not the point (it unwinds, or the foreign
    # value breaks its trap and it raises out of send): the error that matters comes
    # from the run loop afterwards.
    try:
        if action == "throw_into":
            coro.throw(Thrown("thrown in from outside the run loop"))
        elif action == "close":
            coro.close()
        else:
            coro.send("a value from outside the run loop")
    except BaseException:
        pass


def _parked_program(kind: str, action: str, wake: bool) -> Any:
    def program(t: ModuleType) -> None:
        left, right = socket.socketpair()
        send, receive = t.open_memory_channel(0)
        parts = {
            "event": t.Event(),
            "lock": t.Lock(),
            "send": send,
            "receive": receive,
            "socket": left,
        }
        tasks = []

        async def child() -> None:
            tasks.append(t.lowlevel.current_task())
            await _park(t, kind, parts)

        async def main() -> None:
            async with t.open_nursery() as nursery:
                await parts["lock"].acquire()
                nursery.start_soon(child)
                await t.testing.wait_all_tasks_blocked()
                _drive(tasks[0].coro, action)
                if not wake:
                    nursery.cancel_scope.cancel()
                elif kind == "event":
                    parts["event"].set()
                else:
                    right.send(b"x")

        try:
            t.run(main)
        finally:
            left.close()
            right.close()

    return program


_COROUTINE_REUSED = Misuse(
    "RuntimeError",
    r"(?i)coroutine",
    trio_says="cannot reuse already awaited coroutine",
    in_group=True,
)

for _kind in ("event", "lock", "channel_receive", "channel_send", "sleep", "sleep_forever", "socket"):
    for _action in ("throw_into", "close", "send"):
        CASES.register(
            f"{_action}_a_task_parked_on_{_kind}_then_cancel_it",
            _parked_program(_kind, _action, wake=False),
            _COROUTINE_REUSED,
        )
for _kind in ("event", "socket"):
    for _action in ("throw_into", "close"):
        CASES.register(
            f"{_action}_a_task_parked_on_{_kind}_then_wake_it",
            _parked_program(_kind, _action, wake=True),
            _COROUTINE_REUSED,
        )


# -- lowlevel.reschedule on a task that is not waiting for it ---------------------------------


@CASES.add(
    "RuntimeError",
    r"another run",
    # trio trips a bare assertion in the second run; its first run still ends through
    # its deadline.
    trio_raises="AssertionError",
)
def reschedule_a_task_of_another_run(t: ModuleType) -> None:
    handed_over: queue.Queue[Any] = queue.Queue()
    tried = threading.Event()
    errors: list[BaseException] = []

    def second_run() -> None:
        task = handed_over.get()

        async def main() -> None:
            try:
                t.lowlevel.reschedule(task)
            except BaseException as exc:
                errors.append(exc)

        try:
            t.run(main)
        finally:
            tried.set()

    thread = threading.Thread(target=second_run, daemon=True)
    thread.start()

    async def first_run() -> str:
        with t.CancelScope() as scope:

            async def hand_over() -> None:
                await t.testing.wait_all_tasks_blocked()
                handed_over.put(parked)
                await t.to_thread.run_sync(tried.wait)
                # Ends the first run the usual way, through a deadline.
                scope.deadline = t.current_time()

            parked = t.lowlevel.current_task()
            async with t.open_nursery() as nursery:
                nursery.start_soon(hand_over)
                await t.lowlevel.wait_task_rescheduled(lambda _: t.lowlevel.Abort.SUCCEEDED)
        return "ended"

    result = t.run(first_run)
    thread.join()
    assert result == "ended", result
    assert errors, "rescheduling another run's task raised nothing"
    raise errors[0]


@CASES.add("TrioInternalError", r"already scheduled")
def reschedule_a_task_that_is_running(t: ModuleType) -> None:
    async def main() -> None:
        t.lowlevel.reschedule(t.lowlevel.current_task())
        await t.sleep(0)

    t.run(main)


@CASES.add(
    "TrioInternalError",
    r"already scheduled",
    # trio fails the waker task with a bare AssertionError.
    trio_raises="AssertionError",
    in_group=True,
)
def reschedule_a_parked_task_twice(t: ModuleType) -> None:
    async def main() -> None:
        task = t.lowlevel.current_task()

        async def waker() -> None:
            await t.testing.wait_all_tasks_blocked()
            t.lowlevel.reschedule(task)
            t.lowlevel.reschedule(task)

        async with t.open_nursery() as nursery:
            nursery.start_soon(waker)
            await t.lowlevel.wait_task_rescheduled(lambda _: t.lowlevel.Abort.SUCCEEDED)

    t.run(main)


@CASES.add(
    "RuntimeError",
    r"exited",
    # trio crashes: TrioInternalError from a KeyError in its run queue bookkeeping.
    trio_raises="TrioInternalError",
)
def reschedule_a_task_that_has_exited(t: ModuleType) -> None:
    async def main() -> None:
        async with t.open_nursery() as nursery:
            nursery.start_soon(t.sleep, 0)
            child = next(iter(nursery.child_tasks))
        t.lowlevel.reschedule(child)

    t.run(main)


@CASES.add("RuntimeError", r"async context")
def reschedule_outside_a_run(t: ModuleType) -> None:
    async def main() -> Any:
        return t.lowlevel.current_task()

    t.lowlevel.reschedule(t.run(main))


def pytest_generate_tests(metafunc: Any) -> None:
    # Parametrized by this hook rather than pytest.mark: the child process that imports
    # this module to run one case then need not import pytest.
    metafunc.parametrize("name", list(CASES))


def test_misuse_raises_a_clear_error(name: str) -> None:
    check_misuse(__file__, name, CASES[name].expect)
