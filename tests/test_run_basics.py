"""run(), nurseries and the task tree."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

import vivace as trio
from vivace._core import _io_manager
from vivace.testing import assert_checkpoints, assert_no_checkpoints, wait_all_tasks_blocked


def test_run_returns_the_main_task_value() -> None:
    async def main(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return x * 2

    assert trio.run(main, 21) == 42


def test_run_raises_the_main_task_exception() -> None:
    async def main() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        trio.run(main)


def test_run_inside_run_is_refused() -> None:
    async def inner() -> None:
        pass

    async def main() -> None:
        trio.run(inner)

    with pytest.raises(RuntimeError, match="inside a run"):
        trio.run(main)


def test_passing_a_coroutine_object_gives_a_helpful_error() -> None:
    async def main() -> None:
        pass

    coro = main()
    with pytest.raises(TypeError, match="coroutine object"):
        trio.run(coro)  # type: ignore[arg-type]


def test_awaiting_an_asyncio_future_is_a_type_error() -> None:
    async def main() -> None:
        loop = asyncio.new_event_loop()
        try:
            await loop.create_future()
        finally:
            loop.close()

    with pytest.raises(TypeError, match="unrecognized yield message"):
        trio.run(main)


def test_nursery_waits_for_all_children() -> None:
    finished: list[int] = []

    async def child(i: int) -> None:
        for _ in range(i):
            await trio.lowlevel.checkpoint()
        finished.append(i)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(child, i)
        assert sorted(finished) == [0, 1, 2, 3, 4]

    trio.run(main)


def test_child_error_cancels_siblings_and_arrives_in_a_group() -> None:
    cancelled = []

    async def sleeper() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise

    async def crasher() -> None:
        await wait_all_tasks_blocked()
        raise ValueError("child failed")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper)
            nursery.start_soon(crasher)

    with pytest.raises(ExceptionGroup) as excinfo:
        trio.run(main)
    assert [type(e) for e in excinfo.value.exceptions] == [ValueError]
    assert cancelled == [True]


def test_two_failing_children_both_reported() -> None:
    async def fail(exc: Exception) -> None:
        raise exc

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail, KeyError())
            nursery.start_soon(fail, ValueError())

    with pytest.raises(ExceptionGroup) as excinfo:
        trio.run(main)
    assert sorted(type(e).__name__ for e in excinfo.value.exceptions) == ["KeyError", "ValueError"]


def test_start_soon_after_close_is_refused() -> None:
    async def noop() -> None:
        pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            pass
        with pytest.raises(RuntimeError, match="closed"):
            nursery.start_soon(noop)

    trio.run(main)


def test_nursery_start_returns_started_value_and_moves_task() -> None:
    async def server(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        assert trio.lowlevel.current_task().eventual_parent_nursery is not None
        task_status.started("ready")
        assert trio.lowlevel.current_task().eventual_parent_nursery is None
        await trio.sleep_forever()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            value = await nursery.start(server)
            assert value == "ready"
            assert len(nursery.child_tasks) == 1
            (task,) = nursery.child_tasks
            assert task.parent_nursery is nursery
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_nursery_start_reports_child_error_directly() -> None:
    async def broken(task_status: trio.TaskStatus[None]) -> None:
        raise OSError("no port")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            with pytest.raises(OSError, match="no port"):
                await nursery.start(broken)

    trio.run(main)


def test_nursery_start_without_started_is_an_error() -> None:
    async def lazy(task_status: trio.TaskStatus[None]) -> None:
        return

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            with pytest.raises(RuntimeError, match="without calling task_status.started"):
                await nursery.start(lazy)

    trio.run(main)


def test_open_nursery_with_plain_with_is_refused() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="async with"):
            with trio.open_nursery():  # type: ignore[attr-defined]
                pass

    trio.run(main)


def test_checkpoint_is_a_checkpoint_and_sync_code_is_not() -> None:
    async def main() -> None:
        with assert_checkpoints():
            await trio.lowlevel.checkpoint()
        with assert_checkpoints():
            await trio.sleep(0)
        with assert_no_checkpoints():
            trio.current_time()

    trio.run(main)


def test_task_tree_introspection() -> None:
    async def child() -> None:
        await trio.sleep_forever()

    async def main() -> None:
        me = trio.lowlevel.current_task()
        root = trio.lowlevel.current_root_task()
        assert root is not None and root is not me
        async with trio.open_nursery() as nursery:
            assert nursery.parent_task is me
            assert me.child_nurseries == [nursery]
            nursery.start_soon(child, name="the-child")
            await wait_all_tasks_blocked()
            (task,) = nursery.child_tasks
            assert task.name == "the-child"
            assert "the-child" in repr(task)
            frames = list(task.iter_await_frames())
            assert frames and frames[0][0].f_code.co_name == "child"
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_task_has_no_public_constructor_and_is_final() -> None:
    with pytest.raises(TypeError, match="no public constructor"):
        trio.lowlevel.Task()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="subclassing"):

        class Sub(trio.lowlevel.Task):  # type: ignore[misc]
            pass


def test_contextvars_are_copied_into_children() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def child(seen: list[str]) -> None:
        seen.append(var.get())
        var.set("child")

    async def main() -> None:
        var.set("parent")
        seen: list[str] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child, seen)
        assert seen == ["parent"]
        assert var.get() == "parent"

    trio.run(main)


def test_task_context_is_writable() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> str:
        task = trio.lowlevel.current_task()
        ctx = contextvars.Context()
        ctx.run(var.set, "from the new context")
        task.context = ctx
        assert task.context is ctx
        # The kernel enters task.context for each step: after the next checkpoint the
        # task runs in the new context.
        await trio.lowlevel.checkpoint()
        return var.get()

    assert trio.run(main) == "from the new context"


def test_sniffio_reports_the_running_library() -> None:
    import sniffio

    async def main() -> str:
        return sniffio.current_async_library()

    assert trio.run(main) in ("vivace", "trio")
    with pytest.raises(sniffio.AsyncLibraryNotFoundError):
        sniffio.current_async_library()


def test_statistics_count_living_tasks() -> None:
    async def main() -> None:
        stats = trio.lowlevel.current_statistics()
        base = stats.tasks_living
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await wait_all_tasks_blocked()
            assert trio.lowlevel.current_statistics().tasks_living == base + 1
            nursery.cancel_scope.cancel()
        # The platform's default, or what VIVACE_IO_BACKEND chose.
        assert stats.io_statistics.backend == _io_manager.selected_backend()

    trio.run(main)


def test_deterministic_scheduling_is_reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    from vivace._core import _run

    async def trace() -> tuple[tuple[int, int], ...]:
        out: list[tuple[int, int]] = []

        async def worker(i: int) -> None:
            for j in range(20):
                out.append((i, j))
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(worker, i)
        return tuple(out)

    monkeypatch.setattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", True)
    results = []
    for _ in range(3):
        _run._r.seed(1234)
        results.append(trio.run(trace))
    assert len(set(results)) == 1
    monkeypatch.setattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", False)
    assert len({trio.run(trace) for _ in range(6)}) > 1
