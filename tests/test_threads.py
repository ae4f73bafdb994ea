"""Worker threads: lowlevel.start_thread_soon, to_thread, from_thread and the testing
helpers that count threads."""

from __future__ import annotations

import contextvars
import gc
import queue
import sys
import threading
import weakref
from typing import TYPE_CHECKING

import outcome
import pytest
import sniffio

import vivace as trio
from vivace._core import _thread_cache
from vivace.lowlevel import start_thread_soon
from vivace.testing import (
    active_thread_count,
    wait_all_tasks_blocked,
    wait_all_threads_completed,
)

if TYPE_CHECKING:
    from collections.abc import Callable

# A safety net for blocking waits in the test thread; never reached when things work.
TIMEOUT = 10

cvar: contextvars.ContextVar[str] = contextvars.ContextVar("test_threads_cvar")


def _os_thread_name() -> str | None:
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


class RecordingLimiter:
    """A limiter-like object that records what to_thread does with it."""

    def __init__(self, release_error: BaseException | None = None) -> None:
        self.record: list[tuple[str, object]] = []
        self.release_error = release_error

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        self.record.append(("acquire", borrower))

    def release_on_behalf_of(self, borrower: object) -> None:
        self.record.append(("release", borrower))
        if self.release_error is not None:
            raise self.release_error


class ReleaseSignallingLimiter:
    """A CapacityLimiter that sets ``released`` (a vivace Event) on each release, so a
    test can wait for a thread's token to come back instead of polling."""

    def __init__(self, total_tokens: int) -> None:
        self.inner = trio.CapacityLimiter(total_tokens)
        self.released = trio.Event()

    @property
    def borrowed_tokens(self) -> int:
        return self.inner.borrowed_tokens

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        await self.inner.acquire_on_behalf_of(borrower)

    def release_on_behalf_of(self, borrower: object) -> None:
        self.inner.release_on_behalf_of(borrower)
        self.released.set()


class JobDropWatch:
    """Tells the test when a worker thread has let go of its job.

    A worker holds a to_thread call's delivery callback, and through it the run, until
    it has tried to report back; an abandoned worker that finishes after the run must
    then let the run be collected. The thread cache drops a job's return value after
    the delivery callback, so the job returns ``value()`` and the test calls ``wait()``:
    a weak reference's callback (the C-level ``SimpleQueue.put``) signals the drop.
    """

    def __init__(self) -> None:
        self._dropped: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._refs: list[weakref.ref[object]] = []

    def value(self) -> object:
        value = _JobValue()
        self._refs.append(weakref.ref(value, self._dropped.put))
        return value

    def wait(self) -> None:
        self._dropped.get(timeout=TIMEOUT)


class _JobValue:
    pass


# -- lowlevel.start_thread_soon ----------------------------------------------------------


def test_start_thread_soon_delivers_the_value_of_fn() -> None:
    q: queue.Queue[outcome.Outcome[int]] = queue.Queue()
    start_thread_soon(lambda: 42, q.put)
    assert q.get(timeout=TIMEOUT).unwrap() == 42


def test_start_thread_soon_delivers_the_error_of_fn() -> None:
    q: queue.Queue[outcome.Outcome[None]] = queue.Queue()

    def fail() -> None:
        raise ValueError("boom")

    start_thread_soon(fail, q.put)
    with pytest.raises(ValueError, match="boom"):
        q.get(timeout=TIMEOUT).unwrap()


def test_start_thread_soon_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="two callables"):
        start_thread_soon(42, print)  # type: ignore[arg-type]


def test_job_submitted_from_deliver_reuses_the_same_worker() -> None:
    seen: list[threading.Thread] = []
    done = threading.Event()

    def deliver(remaining: int) -> None:
        seen.append(threading.current_thread())
        if remaining:
            start_thread_soon(lambda: None, lambda _: deliver(remaining - 1))
        else:
            done.set()

    start_thread_soon(lambda: None, lambda _: deliver(5))
    assert done.wait(TIMEOUT)
    assert len(set(seen)) == 1


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="relies on refcounting")
def test_fn_is_released_before_deliver_runs() -> None:
    go = threading.Event()
    collected = threading.Event()

    class Job:
        def __call__(self) -> None:
            go.wait(TIMEOUT)  # until this thread has dropped its own reference

        def __del__(self) -> None:
            collected.set()

    delivered: queue.Queue[bool] = queue.Queue()
    start_thread_soon(Job(), lambda _: delivered.put(collected.is_set()))
    go.set()
    assert delivered.get(timeout=TIMEOUT) is True


def test_workers_are_named_trio_thread_n() -> None:
    q: queue.Queue[outcome.Outcome[str]] = queue.Queue()
    start_thread_soon(lambda: threading.current_thread().name, q.put)
    assert q.get(timeout=TIMEOUT).unwrap().startswith("Trio thread ")


def test_job_name_applies_only_while_the_job_runs() -> None:
    q: queue.Queue[outcome.Outcome[threading.Thread]] = queue.Queue()

    def job() -> threading.Thread:
        assert threading.current_thread().name == "my job"
        return threading.current_thread()

    start_thread_soon(job, q.put, "my job")
    worker = q.get(timeout=TIMEOUT).unwrap()
    assert worker.name.startswith("Trio thread ")


@pytest.mark.skipif(_os_thread_name() is None, reason="needs /proc/self/task/*/comm")
def test_job_name_reaches_the_os_truncated_to_ascii() -> None:
    q: queue.Queue[outcome.Outcome[str | None]] = queue.Queue()
    start_thread_soon(_os_thread_name, q.put, "blue💙name-longer-than-fifteen")
    assert q.get(timeout=TIMEOUT).unwrap() == "blue?name-longe"


@pytest.mark.skipif(_os_thread_name() is None, reason="needs /proc/self/task/*/comm")
def test_os_thread_name_is_reset_after_the_job() -> None:
    q: queue.Queue[outcome.Outcome[int]] = queue.Queue()
    start_thread_soon(threading.get_native_id, q.put, "temporary")
    tid = q.get(timeout=TIMEOUT).unwrap()
    with open(f"/proc/self/task/{tid}/comm") as f:
        assert f.read().startswith("Trio thread")


def test_error_in_deliver_is_printed_and_the_worker_survives(
    capfd: pytest.CaptureFixture[str],
) -> None:
    seen: list[threading.Thread] = []
    done = threading.Event()

    def bad_deliver(_: object) -> None:
        done.set()
        raise RuntimeError("deliver must not raise")

    start_thread_soon(lambda: seen.append(threading.current_thread()), bad_deliver)
    assert done.wait(TIMEOUT)
    done = threading.Event()
    start_thread_soon(lambda: seen.append(threading.current_thread()), lambda _: done.set())
    assert done.wait(TIMEOUT)
    assert len(set(seen)) == 1
    err = capfd.readouterr().err
    assert "deliver must not raise" in err
    assert "delivering result" in err


def test_idle_worker_exits_after_idle_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_thread_cache, "IDLE_TIMEOUT", 0.001)
    q: queue.Queue[outcome.Outcome[threading.Thread]] = queue.Queue()
    start_thread_soon(threading.current_thread, q.put)
    worker = q.get(timeout=TIMEOUT).unwrap()
    worker.join(TIMEOUT)
    assert not worker.is_alive()


def test_worker_picked_as_it_times_out_still_runs_its_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class LyingLock:
        """Reports its first timed acquires as timeouts even when it got the lock."""

        def __init__(self) -> None:
            self._lock = threading.Lock()
            self.lies_left = 2

        def acquire(self, timeout: float = -1) -> bool:
            got = self._lock.acquire(timeout=timeout)
            if got and timeout != -1 and self.lies_left:
                self.lies_left -= 1
                self._lock.release()
                return False
            return got

        def release(self) -> None:
            self._lock.release()

    monkeypatch.setattr(_thread_cache, "Lock", LyingLock)
    cache = _thread_cache.ThreadCache()
    q: queue.Queue[outcome.Outcome[threading.Thread]] = queue.Queue()
    # The worker gets its job, is told twice that its wait timed out, and must notice
    # each time that it was picked (it is not in the idle set) and wait again.
    cache.start_thread_soon(threading.current_thread, q.put)
    worker = q.get(timeout=TIMEOUT).unwrap()
    # Let it exit, so it does not linger: the next wait uses the tiny timeout.
    monkeypatch.setattr(_thread_cache, "IDLE_TIMEOUT", 0.001)
    cache.start_thread_soon(lambda: None, lambda _: None)
    worker.join(TIMEOUT)
    assert not worker.is_alive()


# -- to_thread.run_sync --------------------------------------------------------------------


def test_to_thread_returns_the_result_from_another_thread() -> None:
    async def main() -> None:
        value, thread = await trio.to_thread.run_sync(lambda x: (x, threading.current_thread()), 7)
        assert value == 7
        assert thread is not threading.current_thread()

    trio.run(main)


def test_to_thread_raises_the_error_of_the_function() -> None:
    def fail() -> None:
        raise KeyError("in thread")

    async def main() -> None:
        with pytest.raises(KeyError, match="in thread"):
            await trio.to_thread.run_sync(fail)

    trio.run(main)


def test_to_thread_default_thread_name_names_function_and_task() -> None:
    def named_fn() -> str:
        return threading.current_thread().name

    async def main() -> None:
        assert await trio.to_thread.run_sync(named_fn) == (
            f"named_fn from {trio.lowlevel.current_task().name}"
        )

    trio.run(main)


def test_to_thread_thread_name_is_used_while_the_function_runs() -> None:
    async def main() -> None:
        name, thread = await trio.to_thread.run_sync(
            lambda: (threading.current_thread().name, threading.current_thread()),
            thread_name="custom",
        )
        assert name == "custom"
        assert thread.name.startswith("Trio thread ")

    trio.run(main)


def test_to_thread_rejects_an_async_function() -> None:
    async def not_sync() -> None:
        raise AssertionError("never awaited")

    async def main() -> None:
        with pytest.raises(TypeError, match="expected a sync function"):
            await trio.to_thread.run_sync(not_sync)

    trio.run(main)


def test_to_thread_evaluates_abandon_on_cancel_truthiness_eagerly() -> None:
    class NoBool:
        def __bool__(self) -> bool:
            raise NotImplementedError

    ran: list[bool] = []

    async def main() -> None:
        with pytest.raises(NotImplementedError):
            await trio.to_thread.run_sync(ran.append, True, abandon_on_cancel=NoBool())

    trio.run(main)
    assert ran == []


def test_to_thread_worker_sees_a_copy_of_the_callers_context() -> None:
    def worker() -> tuple[str, str]:
        seen = cvar.get()
        cvar.set("worker")
        return seen, cvar.get()

    async def main() -> None:
        cvar.set("caller")
        assert await trio.to_thread.run_sync(worker) == ("caller", "worker")
        assert cvar.get() == "caller"

    trio.run(main)


def test_to_thread_worker_reports_no_async_library() -> None:
    def worker() -> None:
        with pytest.raises(sniffio.AsyncLibraryNotFoundError):
            sniffio.current_async_library()

    async def main() -> None:
        token = sniffio.current_async_library_cvar.set("someotherlib")
        try:
            await trio.to_thread.run_sync(worker)
        finally:
            sniffio.current_async_library_cvar.reset(token)

    trio.run(main)


def test_to_thread_does_not_keep_the_context_copy_alive() -> None:
    class Value:
        pass

    async def main() -> None:
        value = Value()
        ref = weakref.ref(value)
        cvar_obj: contextvars.ContextVar[Value] = contextvars.ContextVar("leak_check")
        cvar_obj.set(value)
        await trio.to_thread.run_sync(lambda: None)
        cvar_obj.set(Value())
        del value
        if sys.implementation.name != "cpython":
            gc.collect()
        assert ref() is None

    trio.run(main)


def test_to_thread_cancelled_before_entry_does_not_start_the_thread() -> None:
    ran: list[bool] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            await trio.to_thread.run_sync(ran.append, True)
        assert scope.cancelled_caught

    trio.run(main)
    assert ran == []


def test_to_thread_without_abandon_waits_for_the_thread_when_cancelled() -> None:
    release = threading.Event()
    record: list[str] = []

    def worker() -> str:
        release.wait(TIMEOUT)
        record.append("thread done")
        return "result"

    async def caller(scope: trio.CancelScope) -> None:
        with scope:
            record.append(await trio.to_thread.run_sync(worker))

    async def main() -> None:
        scope = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller, scope)
            await wait_all_tasks_blocked()
            scope.cancel()
            for _ in range(5):
                await trio.lowlevel.checkpoint()
            assert record == []
            release.set()
        assert record == ["thread done", "result"]
        assert not scope.cancelled_caught

    trio.run(main)


def test_to_thread_with_abandon_raises_cancelled_while_the_thread_runs() -> None:
    release = threading.Event()
    finished = threading.Event()
    watch = JobDropWatch()

    def worker() -> object:
        release.wait(TIMEOUT)
        finished.set()
        return watch.value()

    async def main() -> None:
        limiter = ReleaseSignallingLimiter(1)
        # Whenever the deadline fires, the thread is still waiting for `release`.
        with trio.move_on_after(0.01) as scope:
            await trio.to_thread.run_sync(
                worker, abandon_on_cancel=True, limiter=limiter  # type: ignore[arg-type]
            )
        assert scope.cancelled_caught
        assert not finished.is_set()
        # The thread still holds its token until it really finishes.
        assert limiter.borrowed_tokens == 1
        release.set()
        await limiter.released.wait()
        assert finished.is_set()
        assert limiter.borrowed_tokens == 0

    trio.run(main)
    watch.wait()  # the worker may still hold the run for a moment after reporting back


def test_to_thread_abandoned_thread_finishing_after_the_run_is_quiet(
    capfd: pytest.CaptureFixture[str],
) -> None:
    release = threading.Event()
    watch = JobDropWatch()
    task_ref: list[weakref.ref[trio.lowlevel.Task]] = []

    def worker() -> object:
        release.wait(TIMEOUT)
        return watch.value()

    async def main() -> None:
        task_ref.append(weakref.ref(trio.lowlevel.current_task()))
        with trio.move_on_after(0.001):
            await trio.to_thread.run_sync(worker, abandon_on_cancel=True)

    trio.run(main)
    release.set()
    watch.wait()
    # Its report-back found the run finished, silently; and it let go of the run.
    out, err = capfd.readouterr()
    assert "Exception" not in out + err
    gc.collect()
    assert task_ref[0]() is None


def test_to_thread_options_are_keyword_only() -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            # "name" lands in *args and reaches the function, which takes none.
            await trio.to_thread.run_sync(lambda: None, "name")

    trio.run(main)


def test_to_thread_acquires_and_releases_the_limiter_for_one_borrower() -> None:
    limiter = RecordingLimiter()

    async def main() -> None:
        await trio.to_thread.run_sync(lambda: None, limiter=limiter)  # type: ignore[arg-type]

    trio.run(main)
    assert [what for what, _ in limiter.record] == ["acquire", "release"]
    assert limiter.record[0][1] is limiter.record[1][1]


def test_to_thread_release_error_replaces_the_result() -> None:
    limiter = RecordingLimiter(release_error=ValueError("release failed"))

    async def main() -> None:
        with pytest.raises(ValueError, match="release failed") as info:
            await trio.to_thread.run_sync(lambda: 1, limiter=limiter)  # type: ignore[arg-type]
        assert info.value.__context__ is None

    trio.run(main)


def test_to_thread_release_error_chains_to_the_functions_error() -> None:
    limiter = RecordingLimiter(release_error=ValueError("release failed"))

    def fail() -> None:
        raise KeyError("fn failed")

    async def main() -> None:
        with pytest.raises(ValueError, match="release failed") as info:
            await trio.to_thread.run_sync(fail, limiter=limiter)  # type: ignore[arg-type]
        assert isinstance(info.value.__context__, KeyError)

    trio.run(main)


def test_to_thread_limiter_caps_concurrent_threads() -> None:
    lock = threading.Lock()
    state = {"running": 0, "high": 0}
    gate = threading.Event()
    two_running = trio.Event()

    def arrived() -> None:
        if state["running"] == 2:
            two_running.set()

    def worker() -> None:
        with lock:
            state["running"] += 1
            state["high"] = max(state["high"], state["running"])
        trio.from_thread.run_sync(arrived)
        gate.wait(TIMEOUT)
        with lock:
            state["running"] -= 1

    async def main() -> None:
        limiter = trio.CapacityLimiter(2)
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(lambda: trio.to_thread.run_sync(worker, limiter=limiter))
            await two_running.wait()
            # The two threads hold both tokens until `gate`: the rest queue up.
            await wait_all_tasks_blocked()
            assert limiter.statistics().tasks_waiting == 3
            assert limiter.borrowed_tokens == 2
            assert state["running"] == 2
            gate.set()
        assert state["high"] == 2

    trio.run(main)


def test_default_limiter_has_40_tokens_and_is_one_per_run() -> None:
    limiters = []

    async def main() -> None:
        limiter = trio.to_thread.current_default_thread_limiter()
        assert isinstance(limiter, trio.CapacityLimiter)
        assert limiter.total_tokens == 40
        assert trio.to_thread.current_default_thread_limiter() is limiter
        limiters.append(limiter)

    trio.run(main)
    trio.run(main)
    assert limiters[0] is not limiters[1]


def test_to_thread_uses_the_default_limiter() -> None:
    async def main() -> None:
        limiter = trio.to_thread.current_default_thread_limiter()
        assert await trio.to_thread.run_sync(lambda: limiter.borrowed_tokens) == 1
        assert limiter.borrowed_tokens == 0

    trio.run(main)


def test_to_thread_releases_the_limiter_if_the_thread_cannot_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: object, *args: object) -> None:
        raise RuntimeError("no more threads")

    monkeypatch.setattr(_thread_cache.ThreadCache, "start_thread_soon", refuse)

    async def main() -> None:
        limiter = trio.to_thread.current_default_thread_limiter()
        with pytest.raises(RuntimeError, match="no more threads"):
            await trio.to_thread.run_sync(lambda: None)
        assert limiter.borrowed_tokens == 0
        assert active_thread_count() == 0

    trio.run(main)


def test_to_thread_metadata_uses_public_names() -> None:
    assert trio.to_thread.run_sync.__module__ == "vivace.to_thread"
    assert trio.to_thread.run_sync.__name__ == "run_sync"
    assert trio.from_thread.run.__module__ == "vivace.from_thread"


# -- from_thread -------------------------------------------------------------------------


def test_from_thread_run_sync_runs_in_the_waiting_task() -> None:
    async def main() -> None:
        task = trio.lowlevel.current_task()
        got = await trio.to_thread.run_sync(trio.from_thread.run_sync, trio.lowlevel.current_task)
        assert got is task

    trio.run(main)


def test_from_thread_run_runs_in_the_waiting_task() -> None:
    async def current() -> trio.lowlevel.Task:
        await trio.lowlevel.checkpoint()
        return trio.lowlevel.current_task()

    async def main() -> None:
        task = trio.lowlevel.current_task()
        assert await trio.to_thread.run_sync(trio.from_thread.run, current) is task

    trio.run(main)


def test_from_thread_run_is_cancelled_with_the_waiting_task() -> None:
    record: list[str] = []

    async def sleeper() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            record.append("afn cancelled")
            raise

    def worker() -> None:
        try:
            trio.from_thread.run(sleeper)
        except trio.Cancelled:
            record.append("thread saw Cancelled")
            raise

    async def main() -> None:
        with trio.move_on_after(0.01) as scope:
            await trio.to_thread.run_sync(worker)
        assert scope.cancelled_caught

    trio.run(main)
    assert record == ["afn cancelled", "thread saw Cancelled"]


def test_from_thread_run_in_abandonable_call_runs_as_a_system_task() -> None:
    async def current() -> trio.lowlevel.Task:
        return trio.lowlevel.current_task()

    async def main() -> None:
        task = trio.lowlevel.current_task()
        got = await trio.to_thread.run_sync(trio.from_thread.run, current, abandon_on_cancel=True)
        assert got is not task
        assert got.parent_nursery is not None
        assert got.parent_nursery is not task.parent_nursery

    trio.run(main)


def test_from_thread_requests_see_a_copy_of_the_worker_context() -> None:
    def in_run() -> str:
        seen = cvar.get()
        cvar.set("set in run")
        return seen

    async def async_in_run() -> str:
        seen = cvar.get()
        cvar.set("set in run (async)")
        await trio.lowlevel.checkpoint()
        return seen

    def worker() -> tuple[str, str, str]:
        cvar.set("worker")
        a = trio.from_thread.run_sync(in_run)
        b = trio.from_thread.run(async_in_run)
        return a, b, cvar.get()

    async def main() -> None:
        cvar.set("caller")
        assert await trio.to_thread.run_sync(worker) == ("worker", "worker", "worker")
        assert cvar.get() == "caller"

    trio.run(main)


def test_from_thread_run_restores_the_callers_context_for_later_steps() -> None:
    def worker() -> None:
        cvar.set("worker")
        trio.from_thread.run(trio.lowlevel.checkpoint)

    async def main() -> None:
        cvar.set("caller")
        await trio.to_thread.run_sync(worker)
        await trio.lowlevel.checkpoint()
        assert cvar.get() == "caller"

    trio.run(main)


def test_from_thread_in_the_run_thread_raises_runtime_error() -> None:
    async def main() -> None:
        token = trio.lowlevel.current_trio_token()
        with pytest.raises(RuntimeError, match="blocking function"):
            trio.from_thread.run_sync(lambda: None, trio_token=token)
        with pytest.raises(RuntimeError):
            trio.from_thread.run_sync(lambda: None)

    trio.run(main)


def test_from_thread_in_a_foreign_thread_without_token_asks_for_one() -> None:
    with pytest.raises(RuntimeError, match="trio_token"):
        trio.from_thread.run_sync(lambda: None)


def test_from_thread_rejects_a_token_of_the_wrong_type() -> None:
    with pytest.raises(RuntimeError, match="TrioToken"):
        trio.from_thread.run_sync(lambda: None, trio_token="token")  # type: ignore[arg-type]


def _in_foreign_thread(
    fn: Callable[[], object],
) -> tuple[threading.Thread, list[outcome.Outcome[object]]]:
    result: list[outcome.Outcome[object]] = []
    thread = threading.Thread(target=lambda: result.append(outcome.capture(fn)))
    thread.start()
    return thread, result


def test_from_thread_with_token_from_a_foreign_thread_runs_unprotected() -> None:
    def sync_fn() -> bool:
        return trio.lowlevel.currently_ki_protected()

    async def async_fn() -> bool:
        await trio.lowlevel.checkpoint()
        return trio.lowlevel.currently_ki_protected()

    async def main() -> None:
        token = trio.lowlevel.current_trio_token()

        def foreign() -> tuple[bool, bool]:
            return (
                trio.from_thread.run_sync(sync_fn, trio_token=token),
                trio.from_thread.run(async_fn, trio_token=token),
            )

        thread, result = _in_foreign_thread(foreign)
        await trio.to_thread.run_sync(thread.join, TIMEOUT)
        assert result[0].unwrap() == (False, False)

    trio.run(main)


def test_from_thread_run_sync_rejects_an_async_function() -> None:
    async def afn() -> None:
        raise AssertionError("never awaited")

    async def main() -> None:
        with pytest.raises(TypeError, match="expected a synchronous function"):
            await trio.to_thread.run_sync(trio.from_thread.run_sync, afn)

    trio.run(main)


def test_from_thread_run_rejects_a_sync_function() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="appears to be synchronous"):
            await trio.to_thread.run_sync(trio.from_thread.run, lambda: None)

    trio.run(main)


def test_from_thread_after_the_run_raises_run_finished_error() -> None:
    async def main() -> trio.lowlevel.TrioToken:
        return trio.lowlevel.current_trio_token()

    token = trio.run(main)
    with pytest.raises(trio.RunFinishedError):
        trio.from_thread.run_sync(lambda: None, trio_token=token)
    with pytest.raises(trio.RunFinishedError):
        trio.from_thread.run(trio.lowlevel.checkpoint, trio_token=token)


def test_from_thread_run_as_system_task_is_cancelled_when_the_run_ends() -> None:
    started = trio.Event()
    results: list[outcome.Outcome[object]] = []

    async def main() -> threading.Thread:
        token = trio.lowlevel.current_trio_token()

        async def mark_and_sleep() -> None:
            started.set()
            await trio.sleep_forever()

        thread = threading.Thread(
            target=lambda: results.append(
                outcome.capture(trio.from_thread.run, mark_and_sleep, trio_token=token)
            )
        )
        thread.start()
        await started.wait()
        return thread

    thread = trio.run(main)
    thread.join(TIMEOUT)
    assert len(results) == 1
    with pytest.raises(trio.Cancelled):
        results[0].unwrap()


def test_from_thread_run_during_shutdown_raises_run_finished_error() -> None:
    record: list[str] = []
    keep: list[object] = []

    async def agen(token: trio.lowlevel.TrioToken):  # type: ignore[no-untyped-def]
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await trio.to_thread.run_sync(
                        lambda: trio.from_thread.run(trio.sleep, 0, trio_token=token)
                    )
                except trio.RunFinishedError:
                    record.append("finished")
                else:
                    record.append("clean")

    async def main() -> None:
        gen = agen(trio.lowlevel.current_trio_token())
        keep.append(gen)
        await gen.asend(None)

    trio.run(main)
    assert record == ["finished"]


def test_recursive_to_thread_from_a_worker() -> None:
    def outer() -> tuple[int, int]:
        inner_ident = trio.from_thread.run(trio.to_thread.run_sync, threading.get_ident)
        return threading.get_ident(), inner_ident

    async def main() -> None:
        outer_ident, inner_ident = await trio.to_thread.run_sync(outer)
        assert outer_ident != inner_ident

    trio.run(main)


# -- from_thread.check_cancelled -----------------------------------------------------------


def test_check_cancelled_returns_when_not_cancelled() -> None:
    async def main() -> None:
        await trio.to_thread.run_sync(trio.from_thread.check_cancelled)

    trio.run(main)


def test_check_cancelled_raises_after_a_refused_cancel() -> None:
    checked = threading.Event()
    go = threading.Event()

    def worker() -> None:
        trio.from_thread.check_cancelled()
        checked.set()
        go.wait(TIMEOUT)
        trio.from_thread.check_cancelled()

    async def main() -> None:
        scope = trio.CancelScope()

        async def caller() -> None:
            with scope:
                await trio.to_thread.run_sync(worker)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            await trio.to_thread.run_sync(checked.wait, TIMEOUT)
            await wait_all_tasks_blocked()
            scope.cancel()
            go.set()
        assert scope.cancelled_caught

    trio.run(main)


def test_check_cancelled_raises_in_an_abandoned_thread() -> None:
    go = threading.Event()
    q: queue.Queue[outcome.Outcome[None]] = queue.Queue()
    watch = JobDropWatch()

    def worker() -> object:
        go.wait(TIMEOUT)
        q.put(outcome.capture(trio.from_thread.check_cancelled))
        return watch.value()

    async def main() -> None:
        with trio.move_on_after(0.01):
            await trio.to_thread.run_sync(worker, abandon_on_cancel=True)
        go.set()

    trio.run(main)
    with pytest.raises(trio.Cancelled):
        q.get(timeout=TIMEOUT).unwrap()
    watch.wait()  # the worker outlived the run: let it release the run before the test ends


def test_check_cancelled_outside_a_worker_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError):
        trio.from_thread.check_cancelled()
    q: queue.Queue[outcome.Outcome[None]] = queue.Queue()
    start_thread_soon(trio.from_thread.check_cancelled, q.put)
    with pytest.raises(RuntimeError):
        q.get(timeout=TIMEOUT).unwrap()


# -- testing helpers -----------------------------------------------------------------------


def test_active_thread_count_is_zero_outside_threads() -> None:
    async def main() -> None:
        assert active_thread_count() == 0
        await wait_all_threads_completed()

    trio.run(main)


def test_wait_all_threads_completed_waits_for_every_thread() -> None:
    async def main() -> None:
        events = [trio.Event(), trio.Event()]
        done: list[bool] = []

        async def waiter() -> None:
            await wait_all_threads_completed()
            done.append(True)

        first_done = trio.Event()

        async def first() -> None:
            await trio.to_thread.run_sync(trio.from_thread.run, events[0].wait)
            first_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            nursery.start_soon(trio.to_thread.run_sync, trio.from_thread.run, events[1].wait)
            await wait_all_tasks_blocked()
            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            assert active_thread_count() == 2
            events[0].set()
            await first_done.wait()
            assert active_thread_count() == 1
            await wait_all_tasks_blocked()
            assert done == []
            events[1].set()
        assert done == [True]
        assert active_thread_count() == 0

    trio.run(main)
