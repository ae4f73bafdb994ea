"""Low-level API: instruments, RunVar, tokens, guest mode, KI protection, MockClock."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator

import outcome
import pytest

import vivace as trio
from vivace.testing import MockClock, wait_all_tasks_blocked


class Recorder(trio.abc.Instrument):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def before_run(self) -> None:
        self.events.append(("before_run", None))

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.events.append(("spawned", task))

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.events.append(("step", task))

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.events.append(("exited", task))

    def after_run(self) -> None:
        self.events.append(("after_run", None))


def test_instruments_see_the_run() -> None:
    recorder = Recorder()

    async def main() -> trio.lowlevel.Task:
        return trio.lowlevel.current_task()

    main_task = trio.run(main, instruments=[recorder])
    kinds = [kind for kind, _ in recorder.events]
    assert kinds[0] == "before_run" and kinds[-1] == "after_run"
    assert ("spawned", main_task) in recorder.events
    assert ("step", main_task) in recorder.events
    assert ("exited", main_task) in recorder.events


def test_crashing_instrument_is_removed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(trio.abc.Instrument):
        calls = 0

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            Broken.calls += 1
            raise ValueError("oops")

    async def main() -> None:
        for _ in range(5):
            await trio.lowlevel.checkpoint()

    trio.run(main, instruments=[Broken()])
    assert Broken.calls == 1
    assert "Instrument has been disabled" in caplog.text


def test_add_and_remove_instrument_at_runtime() -> None:
    recorder = Recorder()

    async def main() -> None:
        trio.lowlevel.add_instrument(recorder)
        await trio.lowlevel.checkpoint()
        trio.lowlevel.remove_instrument(recorder)
        count = len(recorder.events)
        await trio.lowlevel.checkpoint()
        assert len(recorder.events) == count
        with pytest.raises(KeyError):
            trio.lowlevel.remove_instrument(recorder)

    trio.run(main)
    assert any(kind == "step" for kind, _ in recorder.events)


def test_runvar_is_per_run() -> None:
    var: trio.lowlevel.RunVar[int] = trio.lowlevel.RunVar("var", default=0)

    async def main() -> int:
        before = var.get()
        token = var.set(before + 1)
        assert var.get() == before + 1
        var.reset(token)
        assert var.get() == before
        var.set(7)
        return before

    assert trio.run(main) == 0
    assert trio.run(main) == 0
    with pytest.raises(RuntimeError, match="outside of a run"):
        var.get()


def test_run_sync_soon_from_another_thread() -> None:
    threads: list[threading.Thread] = []

    async def main() -> str:
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        result: list[str] = []

        def in_run(value: str) -> None:
            result.append(value)
            done.set()

        threads.append(threading.Thread(target=token.run_sync_soon, args=(in_run, "hello")))
        threads[0].start()
        await done.wait()
        return result[0]

    assert trio.run(main) == "hello"
    # The thread may still hold the callback (and the run's token) for a moment.
    threads[0].join()


def test_run_sync_soon_after_run_finished_raises() -> None:
    async def main() -> trio.lowlevel.TrioToken:
        return trio.lowlevel.current_trio_token()

    token = trio.run(main)
    with pytest.raises(trio.RunFinishedError):
        token.run_sync_soon(print)


def test_spawn_system_task_is_cancelled_at_shutdown() -> None:
    states: list[str] = []

    async def system() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            states.append("cancelled")
            raise

    async def main() -> None:
        task = trio.lowlevel.spawn_system_task(system)
        assert task.parent_nursery is not None
        await wait_all_tasks_blocked()

    trio.run(main)
    assert states == ["cancelled"]


def test_wait_task_rescheduled_and_reschedule_with_outcome() -> None:
    async def main() -> None:
        me = trio.lowlevel.current_task()

        async def waker() -> None:
            await wait_all_tasks_blocked()
            trio.lowlevel.reschedule(me, outcome.Value("woken"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waker)
            value = await trio.lowlevel.wait_task_rescheduled(
                lambda _: trio.lowlevel.Abort.FAILED
            )
        assert value == "woken"

    trio.run(main)


def test_rescheduling_a_runnable_task_is_an_internal_error() -> None:
    async def main() -> None:
        me = trio.lowlevel.current_task()

        async def double() -> None:
            trio.lowlevel.reschedule(me)
            with pytest.raises(trio.TrioInternalError, match="already scheduled"):
                trio.lowlevel.reschedule(me)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(double)
            await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)

    trio.run(main)


def test_mock_clock_jump_and_rate() -> None:
    clock = MockClock()
    start = clock.current_time()
    clock.jump(5)
    assert clock.current_time() == pytest.approx(start + 5)
    with pytest.raises(ValueError):
        clock.jump(-1)
    with pytest.raises(ValueError):
        clock.rate = -1
    assert clock.deadline_to_sleep_time(clock.current_time() + 1) == 999999999
    clock.rate = 2
    # 1 virtual second is 0.5 real seconds, less the real time that passes between
    # the two clock reads: at most what a bracketing real clock saw pass.
    before = time.perf_counter()
    sleep_time = clock.deadline_to_sleep_time(clock.current_time() + 1)
    bracket = time.perf_counter() - before
    rounding = 1e-9
    assert 0.5 - bracket - rounding <= sleep_time <= 0.5 + rounding


def test_mock_clock_autojump_skips_sleeps() -> None:
    clock = MockClock(autojump_threshold=0)

    async def main() -> float:
        start = trio.current_time()
        await trio.sleep(3600)
        return trio.current_time() - start

    assert trio.run(main, clock=clock) == pytest.approx(3600)


def test_run_rejects_a_non_clock() -> None:
    async def main() -> None:
        pass

    with pytest.raises(TypeError, match="Clock"):
        trio.run(main, clock=object())  # type: ignore[arg-type]


def test_guest_mode_on_asyncio() -> None:
    async def trio_main() -> str:
        await trio.sleep(0.01)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0.01)
        return "guest done"

    async def host() -> object:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[str]] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=done.set_result,
            host_uses_signal_set_wakeup_fd=True,
        )
        return (await done).unwrap()

    assert asyncio.run(host()) == "guest done"


@pytest.fixture
def sigint_default() -> Iterator[None]:
    # The KI tests need Python's own SIGINT handler, which vivace replaces during a run.
    # A process started in the background by a non-interactive shell inherits SIGINT
    # ignored, and then Python (and trio) leave it ignored: raise_signal would do
    # nothing and the tests would wait for a KeyboardInterrupt that never comes.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("sigint_default")
def test_ki_in_unprotected_code_raises_in_the_main_task() -> None:
    async def main() -> None:
        signal.raise_signal(signal.SIGINT)
        await trio.lowlevel.checkpoint()

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)


@pytest.mark.usefixtures("sigint_default")
def test_ki_in_protected_code_is_delivered_at_a_checkpoint() -> None:
    reached: list[str] = []

    @trio.lowlevel.enable_ki_protection
    async def protected() -> None:
        assert trio.lowlevel.currently_ki_protected()
        signal.raise_signal(signal.SIGINT)
        reached.append("after raise")

    async def main() -> None:
        assert not trio.lowlevel.currently_ki_protected()
        await protected()
        reached.append("back in main")
        with trio.move_on_after(30):  # a hang guard only: the KI arrives at once
            await trio.sleep_forever()

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)
    assert reached == ["after raise", "back in main"]
