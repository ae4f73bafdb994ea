"""Misuse across threads and runs never hangs: calls from foreign threads, reentrant
run(), and objects (events, channels, locks, nurseries, scopes, tokens) used after their
run ended.

Each case is a program run on real trio 0.35 (the oracle) and on vivace in a child
process under a hang guard (``_hang_guard``); it must raise a clear error, of trio's
type unless trio itself only crashes or hangs (said at the case).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from _hang_guard import Cases, check_misuse

CASES = Cases()

_NOT_IN_A_RUN = r"async context"


def _in_foreign_thread(t: ModuleType, fn: Callable[[], object]) -> object:
    """Call ``fn`` in a plain thread while a run is live; re-raise what it raised."""
    box: list[tuple[str, Any]] = []

    def target() -> None:
        try:
            box.append(("returned", fn()))
        except BaseException as exc:
            box.append(("raised", exc))

    async def main() -> None:
        thread = threading.Thread(target=target)
        thread.start()
        await t.to_thread.run_sync(thread.join)

    t.run(main)
    kind, value = box[0]
    if kind == "raised":
        raise value
    return value


def _drive_outside_a_run(coro: Any) -> object:
    # One step of an async call, with no run loop to take its trap.
    try:
        return coro.send(None)
    finally:
        coro.close()


def _made_in_a_run(t: ModuleType, make: Callable[[], Any]) -> Any:
    async def main() -> Any:
        return make()

    return t.run(main)


# -- calls from foreign threads ------------------------------------------------------------


@CASES.add("RuntimeError", _NOT_IN_A_RUN)
def current_time_from_a_foreign_thread(t: ModuleType) -> None:
    _in_foreign_thread(t, t.current_time)


@CASES.add("RuntimeError", _NOT_IN_A_RUN)
def sleep_driven_in_a_foreign_thread(t: ModuleType) -> None:
    _in_foreign_thread(t, lambda: _drive_outside_a_run(t.sleep(1)))


@CASES.add("RuntimeError", r"(thread|async context)")
def event_set_from_a_foreign_thread_with_a_waiter(t: ModuleType) -> None:
    # Waking the waiter would touch the run's queue from outside it.
    async def main() -> None:
        event = t.Event()
        errors: list[BaseException] = []

        def set_it() -> None:
            try:
                event.set()
            except BaseException as exc:
                errors.append(exc)

        async def wait_a_while() -> None:
            with t.move_on_after(5):
                await event.wait()

        async with t.open_nursery() as nursery:
            nursery.start_soon(wait_a_while)
            await t.testing.wait_all_tasks_blocked()
            thread = threading.Thread(target=set_it)
            thread.start()
            await t.to_thread.run_sync(thread.join)
            nursery.cancel_scope.cancel()
        if errors:
            raise errors[0]

    t.run(main)


@CASES.add(
    "RuntimeError",
    r"(thread|async context)",
    # trio crashes: AttributeError ("'RunContext' object has no attribute 'runner'").
    trio_raises="AttributeError",
)
def start_soon_from_a_foreign_thread(t: ModuleType) -> None:
    async def main() -> None:
        errors: list[BaseException] = []

        async with t.open_nursery() as nursery:

            def spawn() -> None:
                try:
                    nursery.start_soon(t.sleep, 0)
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=spawn)
            thread.start()
            await t.to_thread.run_sync(thread.join)
        assert errors, "start_soon from a foreign thread raised nothing"
        raise errors[0]

    t.run(main)


@CASES.add("RunFinishedError", r"(exited|finished|ended)")
def trio_token_run_sync_soon_from_a_thread_after_the_run_ended(t: ModuleType) -> None:
    token = _made_in_a_run(t, t.lowlevel.current_trio_token)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            token.run_sync_soon(lambda: None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    raise errors[0]


@CASES.add("RuntimeError", r"(thread|trio_token)")
def from_thread_run_from_the_runs_own_thread(t: ModuleType) -> None:
    async def main() -> None:
        await t.from_thread.run(t.sleep, 0)

    t.run(main)


@CASES.add("RuntimeError", r"(?i)(blocking|deadlock)")
def from_thread_run_sync_with_a_token_from_the_runs_own_thread(t: ModuleType) -> None:
    # It would wait for the run's thread, which is the one waiting.
    async def main() -> None:
        t.from_thread.run_sync(lambda: None, trio_token=t.lowlevel.current_trio_token())

    t.run(main)


@CASES.add("RuntimeError", r"trio_token")
def from_thread_run_sync_from_a_thread_no_run_started(t: ModuleType) -> None:
    errors: list[BaseException] = []

    def call() -> None:
        try:
            t.from_thread.run_sync(lambda: None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    raise errors[0]


# -- reentrant run() ----------------------------------------------------------------------


async def _nothing() -> None:
    pass


@CASES.add("RuntimeError", r"inside a run")
def run_inside_a_run(t: ModuleType) -> None:
    async def main() -> None:
        t.run(_nothing)

    t.run(main)


@CASES.add("RuntimeError", r"inside a run", in_group=True)
def run_inside_a_child_task(t: ModuleType) -> None:
    async def child() -> None:
        t.run(_nothing)

    async def main() -> None:
        async with t.open_nursery() as nursery:
            nursery.start_soon(child)

    t.run(main)


# -- objects used after their run ended ----------------------------------------------------


@CASES.add("RuntimeError", _NOT_IN_A_RUN)
def event_wait_after_the_run_ended(t: ModuleType) -> None:
    _drive_outside_a_run(_made_in_a_run(t, t.Event).wait())


@CASES.add("RuntimeError", _NOT_IN_A_RUN)
def channel_receive_after_the_run_ended(t: ModuleType) -> None:
    _, receive = _made_in_a_run(t, lambda: t.open_memory_channel(1))
    _drive_outside_a_run(receive.receive())


@CASES.add("RuntimeError", _NOT_IN_A_RUN)
def channel_send_after_the_run_ended(t: ModuleType) -> None:
    send, _ = _made_in_a_run(t, lambda: t.open_memory_channel(1))
    _drive_outside_a_run(send.send("x"))


@CASES.add("RuntimeError", _NOT_IN_A_RUN)
def lock_acquire_nowait_after_the_run_ended(t: ModuleType) -> None:
    _made_in_a_run(t, t.Lock).acquire_nowait()


@CASES.add("BrokenResourceError", r"(?i)owner.*exited")
def lock_held_by_a_task_of_an_ended_run(t: ModuleType) -> None:
    async def take() -> Any:
        lock = t.Lock()
        await lock.acquire()
        return lock

    lock = t.run(take)

    async def take_again() -> None:
        await lock.acquire()

    t.run(take_again)


@CASES.add("RuntimeError", r"(?i)(own|owner)")
def lock_released_in_a_later_run(t: ModuleType) -> None:
    async def take() -> Any:
        lock = t.Lock()
        await lock.acquire()
        return lock

    lock = t.run(take)

    async def release() -> None:
        lock.release()

    t.run(release)


@CASES.add(
    "RuntimeError",
    r"(?i)(closed|ended|finished|exited|async context)",
    # trio crashes: AttributeError ("'RunContext' object has no attribute 'runner'").
    trio_raises="AttributeError",
)
def nursery_start_soon_after_the_run_ended(t: ModuleType) -> None:
    async def main() -> Any:
        async with t.open_nursery() as nursery:
            return nursery

    t.run(main).start_soon(t.sleep, 0)


@CASES.add("RuntimeError", _NOT_IN_A_RUN)
def cancel_scope_entered_after_the_run_ended(t: ModuleType) -> None:
    with _made_in_a_run(t, t.CancelScope):
        pass


@CASES.add("RunFinishedError", r"(exited|finished|ended)")
def trio_token_run_sync_soon_after_the_run_ended(t: ModuleType) -> None:
    _made_in_a_run(t, t.lowlevel.current_trio_token).run_sync_soon(lambda: None)


@CASES.add("RuntimeError", _NOT_IN_A_RUN)
def current_task_outside_a_run(t: ModuleType) -> None:
    t.lowlevel.current_task()


@CASES.add("RuntimeError", _NOT_IN_A_RUN)
def current_time_outside_a_run(t: ModuleType) -> None:
    t.current_time()


def pytest_generate_tests(metafunc: Any) -> None:
    # Parametrized by this hook rather than pytest.mark: the child process that imports
    # this module to run one case then need not import pytest.
    metafunc.parametrize("name", list(CASES))


def test_misuse_raises_a_clear_error(name: str) -> None:
    check_misuse(__file__, name, CASES[name].expect)
