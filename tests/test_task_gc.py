"""Tasks and the cyclic garbage collector.

The compiled kernel keeps live tasks (and their contexts) out of the collector's lists
while they run, since ``Runner.tasks`` keeps them reachable anyway; these tests pin the
other half of that bargain on both engines: a finished task is an ordinary collectable
object again, and nothing a live task references is ever freed under it.
"""

from __future__ import annotations

import contextvars
import gc
import subprocess
import sys
import weakref
from typing import Any

import vivace as trio

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


class _Holder:
    task: object = None


def _run_children_then_collect(child: Any, count: int) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(child)

    gc.collect()
    trio.run(main)
    gc.collect()


def test_finished_task_in_a_reference_cycle_is_collected() -> None:
    refs: list[weakref.ref[object]] = []

    async def child() -> None:
        task = trio.lowlevel.current_task()
        holder = _Holder()
        holder.task = task  # task -> holder -> task once custom_sleep_data is set
        task.custom_sleep_data = holder
        refs.append(weakref.ref(task))
        refs.append(weakref.ref(holder))

    _run_children_then_collect(child, 5)
    assert len(refs) == 10
    assert [r() for r in refs] == [None] * 10


def test_finished_task_context_in_a_reference_cycle_is_collected() -> None:
    refs: list[weakref.ref[object]] = []

    async def child() -> None:
        holder = _Holder()
        # The task's own context holds the holder, and the holder the task.
        holder.task = trio.lowlevel.current_task()
        _var.set(holder)  # type: ignore[arg-type]
        refs.append(weakref.ref(holder))

    _run_children_then_collect(child, 5)
    assert [r() for r in refs] == [None] * 5


def test_collection_while_tasks_live_frees_nothing_they_use() -> None:
    results: list[int] = []

    async def child(i: int, event: trio.Event) -> None:
        # Only this coroutine's frame and context reference the list below.
        mine = [i]
        mine.append(mine)  # type: ignore[arg-type]  # and it is cyclic
        _var.set(f"task {i}")
        await event.wait()
        assert _var.get() == f"task {i}"
        results.append(mine[0])  # type: ignore[arg-type]

    async def main() -> None:
        event = trio.Event()
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(child, i, event)
            await trio.testing.wait_all_tasks_blocked()
            for _ in range(3):
                gc.collect()
            event.set()

    trio.run(main)
    assert sorted(results) == list(range(200))


def test_replacing_a_running_task_context_frees_the_old_one() -> None:
    seen: list[str] = []

    async def child() -> None:
        task = trio.lowlevel.current_task()
        old = weakref.ref(task.context)
        fresh = contextvars.Context()
        task.context = fresh
        await trio.lowlevel.checkpoint()  # the next step runs in the new context
        seen.append(_var.get())
        gc.collect()
        seen.append("old freed" if old() is None else "old alive")
        assert task.context is fresh

    async def main() -> None:
        _var.set("parent")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    trio.run(main)
    assert seen == ["unset", "old freed"]


def test_finished_tasks_are_tracked_by_the_collector() -> None:
    tasks: list[object] = []

    async def child() -> None:
        tasks.append(trio.lowlevel.current_task())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(child)

    trio.run(main)
    assert len(tasks) == 3
    for task in tasks:
        assert gc.is_tracked(task)
        assert gc.is_tracked(task.context)  # type: ignore[attr-defined]
        assert gc.is_tracked(task.coro)  # type: ignore[attr-defined]


def test_assigning_coro_or_context_puts_the_task_back_under_the_collector() -> None:
    seen: list[bool] = []

    async def child() -> None:
        task: Any = trio.lowlevel.current_task()
        task.coro = task.coro  # the same coroutine: nothing else changes
        seen.append(gc.is_tracked(task.coro) and gc.is_tracked(task.context))
        await trio.lowlevel.checkpoint()
        seen.append(True)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    trio.run(main)
    assert seen == [True, True]


_CRASHED_RUN = """
import gc
import vivace as trio

tasks = []

def bad_abort(_):
    raise ValueError("abort failure")

async def child():
    tasks.append(trio.lowlevel.current_task())
    with trio.CancelScope() as scope:
        scope.cancel()
        await trio.lowlevel.wait_task_rescheduled(bad_abort)

async def main():
    async with trio.open_nursery() as nursery:
        nursery.start_soon(child)

try:
    trio.run(main)
except trio.TrioInternalError as exc:
    print("internal error from", type(exc.__cause__).__name__)
print("tasks", len(tasks), "tracked", gc.is_tracked(tasks[0]))
"""


def test_tasks_left_by_a_crashed_run_are_tracked_again() -> None:
    # An abort function that raises when the kernel calls it (a cancelled task parking)
    # ends the run with TrioInternalError while that task is still parked; the runner
    # hands tasks that never finished back to the collector. In a subprocess: the
    # crashed run's coroutines complain on stderr when they are finally collected.
    # A hang guard below pytest-timeout's 60 s, so that a hang shows its output.
    proc = subprocess.run(
        [sys.executable, "-c", _CRASHED_RUN], capture_output=True, text=True, timeout=40
    )
    assert proc.stdout.splitlines() == [
        "internal error from ValueError",
        "tasks 1 tracked True",
    ], proc.stderr[-2000:]
