"""pytest-benchmark micro-benchmarks of the engine's hot operations, for regression
tracking (not part of the test suite: run them explicitly).

    .venv/bin/python -m pytest benchmarks/micro --benchmark-only
    VIVACE_NO_EXTENSIONS=1 .venv/bin/python -m pytest benchmarks/micro --benchmark-only

Each benchmark times many operations inside one run (entering a run per operation would
measure run start-up instead); per-operation cost is the reported time divided by the
``ops_per_round`` recorded in each benchmark's extra_info.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import vivace as trio
from vivace._core import _impl

BATCH = 1000

pytest.importorskip("pytest_benchmark")


REPEATS = 20


def _in_run(benchmark: Any, body: Any) -> None:
    """Time one run that awaits ``body()`` REPEATS times (BATCH operations each); the
    run's fixed start-up cost is amortized over REPEATS * BATCH operations."""

    async def main() -> None:
        for _ in range(REPEATS):
            await body()

    benchmark.extra_info["engine"] = _impl.ENGINE
    benchmark.extra_info["ops_per_round"] = REPEATS * BATCH
    benchmark.pedantic(lambda: trio.run(main), rounds=5, iterations=1, warmup_rounds=1)


def test_checkpoint(benchmark: Any) -> None:
    async def body() -> None:
        for _ in range(BATCH):
            await trio.lowlevel.checkpoint()

    _in_run(benchmark, body)


def test_reschedule_wakeup(benchmark: Any) -> None:
    async def body() -> None:
        event = trio.Event()

        async def waiter() -> None:
            await event.wait()

        async with trio.open_nursery() as nursery:
            for _ in range(BATCH):
                nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            event.set()

    _in_run(benchmark, body)


def test_cancel_scope_enter_exit(benchmark: Any) -> None:
    async def body() -> None:
        for _ in range(BATCH):
            with trio.CancelScope():
                pass

    _in_run(benchmark, body)


def test_move_on_after_enter_exit(benchmark: Any) -> None:
    async def body() -> None:
        for _ in range(BATCH):
            with trio.move_on_after(10):
                pass

    _in_run(benchmark, body)


def test_channel_send_receive(benchmark: Any) -> None:
    async def body() -> None:
        send, receive = trio.open_memory_channel[int](math.inf)
        for i in range(BATCH):
            send.send_nowait(i)
        for _ in range(BATCH):
            await receive.receive()

    _in_run(benchmark, body)


def test_deadline_heap_push_remove(benchmark: Any) -> None:
    heap = _impl.DeadlineHeap()

    def body() -> None:
        handles = [heap.push(float(i % 97), i) for i in range(BATCH)]
        for handle in handles:
            heap.remove(handle)

    benchmark.extra_info["engine"] = _impl.ENGINE
    benchmark.extra_info["ops_per_round"] = BATCH
    benchmark(body)
