"""The kernel twins must behave identically (the ``run_busy`` batch loop). Every test runs against
each twin directly (not through the engine switch) with the same literal expectations.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

from _kernel_twins_support import (
    TWINS,
    kernel,
)


@pytest.fixture(params=TWINS)
def K(request: pytest.FixtureRequest) -> types.ModuleType:
    return request.param  # type: ignore[no-any-return]


# ------------------------------------------------------------------ run_busy


class FakeDeadlines:
    def __init__(self) -> None:
        self.due = float("inf")

    def peek_deadline(self) -> float:
        return self.due

    def push(self, deadline: float, payload: object) -> None:
        self.due = min(self.due, deadline)


class FakeQueue:
    """Stands in for the entry queue's deque: empty until *pending_after* truth tests."""

    def __init__(self, pending_after: int | None = None) -> None:
        self.pending_after = pending_after
        self.calls = 0

    def __bool__(self) -> bool:
        self.calls += 1
        return self.pending_after is not None and self.calls > self.pending_after


def _busy_kernel(K: types.ModuleType, rounds: int = 10) -> tuple[Any, list[Any]]:
    """Two tasks that each make *rounds* schedule points; their first step is done."""
    k = kernel(K)
    log: list[Any] = []

    async def worker(name: str) -> None:
        for i in range(rounds):
            log.append((name, i))
            await K.cancel_shielded_checkpoint()

    for name in ("t0", "t1"):
        k.spawn(name, worker(name))
    batch = k.runq[::-1]
    k.runq = []
    k.run_batch(batch)  # t0 first
    return k, log


def _heap_types() -> list[Any]:
    from vivace._core._heap_py import DeadlineHeap as PyHeap

    heaps = [FakeDeadlines, PyHeap]
    try:
        from vivace._core._ext._heap import DeadlineHeap as CHeap
    except ImportError:
        pass
    else:
        heaps.append(CHeap)
    return heaps


HEAPS = pytest.mark.parametrize(
    "heap_type", _heap_types(), ids=lambda t: f"{t.__module__}.{t.__name__}"
)


@HEAPS
def test_run_busy_runs_until_the_queue_is_empty(K: types.ModuleType, heap_type: Any) -> None:
    k, log = _busy_kernel(K, rounds=3)
    coins = iter([0.9, 0.1, 0.9])  # < 0.5 reverses the batch
    ran = k.run_busy(lambda: next(coins), lambda: 0.0, None, heap_type(), FakeQueue(), {}, 1.0, 100)
    assert ran == 3  # two more checkpoints each, then the exits
    assert log == [("t0", 0), ("t1", 0), ("t1", 1), ("t0", 1), ("t1", 2), ("t0", 2)]
    assert [name for name, _ in k.exited] == ["t0", "t1"] and k.runq == []


def test_run_busy_stops_after_max_batches(K: types.ModuleType) -> None:
    k, log = _busy_kernel(K)
    assert k.run_busy(lambda: 0.9, lambda: 0.0, None, FakeDeadlines(), FakeQueue(), {}, 1.0, 4) == 4
    assert len(log) == 2 * 5 and len(k.runq) == 2


def test_run_busy_stops_at_until(K: types.ModuleType) -> None:
    k, _ = _busy_kernel(K)
    times = iter([0.0, 0.5, 1.0, 2.0])
    ran = k.run_busy(lambda: 0.9, lambda: next(times), None, FakeDeadlines(), FakeQueue(), {}, 1.0, 100)
    assert ran == 2 and len(k.runq) == 2


@HEAPS
def test_run_busy_stops_when_a_deadline_is_due(K: types.ModuleType, heap_type: Any) -> None:
    k, _ = _busy_kernel(K)
    deadlines = heap_type()
    deadlines.push(5.0, "payload")
    times = iter([1.0, 4.0, 5.0, 6.0])
    ran = k.run_busy(lambda: 0.9, lambda: next(times), None, deadlines, FakeQueue(), {}, 100.0, 100)
    assert ran == 2


def test_run_busy_stops_when_the_entry_queue_has_work(K: types.ModuleType) -> None:
    k, _ = _busy_kernel(K)
    queue = FakeQueue(pending_after=3)
    assert k.run_busy(lambda: 0.9, lambda: 0.0, None, FakeDeadlines(), queue, {}, 1.0, 100) == 3
    assert queue.calls == 4


def test_run_busy_stops_when_an_idempotent_callback_is_queued(K: types.ModuleType) -> None:
    k, _ = _busy_kernel(K)
    pending = {("callback", ()): None}
    assert k.run_busy(lambda: 0.9, lambda: 0.0, None, FakeDeadlines(), FakeQueue(), pending, 1.0, 100) == 0


def test_run_busy_reads_the_system_clock_itself_given_an_offset(K: types.ModuleType) -> None:
    import time

    def boom() -> float:
        raise AssertionError("clock_now must not be called when an offset is given")

    k, log = _busy_kernel(K, rounds=3)
    offset = 1000.0
    # until already passed on the offset clock: nothing runs.
    assert k.run_busy(lambda: 0.9, boom, offset, FakeDeadlines(), FakeQueue(), {}, offset, 100) == 0
    until = offset + time.perf_counter() + 60
    assert k.run_busy(lambda: 0.9, boom, offset, FakeDeadlines(), FakeQueue(), {}, until, 100) == 3
    assert k.runq == [] and len(log) == 6


def test_run_busy_with_an_empty_queue_calls_nothing(K: types.ModuleType) -> None:
    k = kernel(K)

    def boom() -> float:
        raise AssertionError("called")

    assert k.run_busy(boom, boom, None, FakeDeadlines(), FakeQueue(), {}, 1.0, 100) == 0
