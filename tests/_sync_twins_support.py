"""Shared by the ``test_twins_{sync,channels,sleep}`` modules: the sync twins
(``vivace._core._sync_py`` + ``_sync_channel_py`` and, when built,
``vivace._core._ext._sync``) and a small harness that runs tasks on a kernel of the
SAME engine as the twin under test.

Why a harness per engine: the compiled sync operations wake tasks through the compiled
``KernelBase._reschedule`` in C and read the compiled ``TaskBase`` fields, so each twin
is driven by a kernel built from its own engine's ``KernelBase``/``TaskBase`` (and its
own ``DeadlineHeap`` for sleeping). The harness plays the Runner's part: it sets
``GLOBAL_RUN_CONTEXT.runner`` while batches run, cancels tasks (abort functions, as
``Task._attempt_abort`` does), fires deadlines, and breaks the lots a task still holds
when it exits (``break_lots_of``).

Scenarios record what happens (results, error types and messages, checkpoint counters)
into one log per harness; a test runs the same scenario on each twin and compares the
logs with the same literal expectation.

The compiled twin is required when ``VIVACE_REQUIRE_EXTENSIONS=1``; with
``VIVACE_NO_EXTENSIONS=1``, or when it was not built, only the reference is tested.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import outcome
import pytest

from vivace._core import _heap_py, _impl, _kernel_py, _sync_py
from vivace._core._run_context import GLOBAL_RUN_CONTEXT
from vivace._core._traps import Abort

_REQUIRED = os.environ.get("VIVACE_REQUIRE_EXTENSIONS", "") not in ("", "0")

_sync_c: types.ModuleType | None = None
if not _impl._NO_EXT:  # the reference-only run compares nothing
    try:
        from vivace._core._ext import _heap as _heap_c, _kernel as _kernel_c, _sync as _sync_c
    except ImportError:  # not built
        if _REQUIRED:
            raise


@dataclasses.dataclass(frozen=True)
class Twin:
    name: str
    S: types.ModuleType  # the sync twin
    K: types.ModuleType  # the kernel of the same engine
    Heap: type  # the deadline heap of the same engine

    def __repr__(self) -> str:
        return self.name


REFERENCE = Twin("reference", _sync_py, _kernel_py, _heap_py.DeadlineHeap)
TWINS = [pytest.param(REFERENCE, id="reference")]
if _sync_c is not None:
    COMPILED: Twin | None = Twin("compiled", _sync_c, _kernel_c, _heap_c.DeadlineHeap)
    TWINS.append(pytest.param(COMPILED, id="compiled"))
else:
    COMPILED = None


class FakeCancelled(BaseException):
    pass


class Status:
    """Stand-in for a CancelStatus: what the sync operations and the kernel read."""

    def __init__(self) -> None:
        self.effectively_cancelled = False

    def _make_cancelled(self) -> FakeCancelled:
        return FakeCancelled("cancelled")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def current_time(self) -> float:
        return self.now


def describe(exc: BaseException) -> tuple[str, str]:
    return (type(exc).__name__, str(exc))


_CLASSES: dict[str, tuple[type, type]] = {}


def _classes(tw: Twin) -> tuple[Any, Any]:
    if tw.name in _CLASSES:
        return _CLASSES[tw.name]

    class HTask(tw.K.TaskBase):  # type: ignore[misc,name-defined]
        __slots__ = ("name",)

        def __repr__(self) -> str:
            return f"<task {self.name}>"

        def _abort(self, exc_factory: Callable[[], BaseException]) -> bool:
            # Task._attempt_abort: ask the abort function; on success, resume with
            # the error.
            abort_func = self._abort_func
            if abort_func is None:
                return False

            def raise_it() -> Any:
                raise exc_factory()

            result = abort_func(raise_it)
            assert type(result) is Abort
            self._abort_func = None
            if result is Abort.SUCCEEDED:
                self._runner.reschedule(self, outcome.capture(raise_it))
                return True
            return False

        def _attempt_delivery_of_any_pending_cancel(self) -> None:
            if self._cancel_status.effectively_cancelled:
                self._abort(self._cancel_status._make_cancelled)

        def _attempt_delivery_of_pending_ki(self) -> None:
            runner = self._runner
            if self._abort(KeyboardInterrupt):
                runner.ki_pending = False

        def _deadline_expired(self) -> None:
            # Task._deadline_expired: a sleep's heap entry fired.
            if self._abort_func is not None:
                self._runner.reschedule(self)

    class HKernel(tw.K.KernelBase):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.log: list[Any] = []
            self.clock = Clock()
            self.deadlines = tw.Heap()
            self.guest_ticks = 0
            self.counter = 0

        def task_exited(self, task: Any, result: Any) -> None:
            if isinstance(result, outcome.Value):
                self.log.append(("exit", task.name, result.value))
            else:
                self.log.append(("exit", task.name, *describe(result.error)))
            # The Runner's break_lots_of(): a lock owner that exits breaks its lots.
            for lot in self._lot_breakers.pop(task, ()):
                lot.break_lot(task)

        def force_guest_tick_asap(self) -> None:
            self.guest_ticks += 1

        def _call_instrument(self, hook: str, *args: object) -> None:
            raise AssertionError("no instruments here")

    _CLASSES[tw.name] = (HTask, HKernel)
    return HTask, HKernel


class Harness:
    """One mini run on *tw*'s engine: tasks, a clock, a deadline heap, one log."""

    def __init__(self, tw: Twin) -> None:
        self.tw = tw
        self.S = tw.S
        self._Task, Kernel = _classes(tw)
        self.k = Kernel()
        self.log: list[Any] = self.k.log

    # -- tasks ---------------------------------------------------------------------
    def spawn(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        task = self._Task(fn(*args), contextvars.copy_context(), self.k, self.k.counter, False)
        self.k.counter += 1
        task.name = name
        task._cancel_status = Status()
        self.k.reschedule(task, None)
        return task

    @contextmanager
    def running(self) -> Iterator[None]:
        assert getattr(GLOBAL_RUN_CONTEXT, "runner", None) is None
        GLOBAL_RUN_CONTEXT.runner = self.k
        try:
            yield
        finally:
            del GLOBAL_RUN_CONTEXT.runner

    def start(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Spawn a task and run until nothing is runnable (so tasks started one after
        the other park in that order)."""
        task = self.spawn(name, fn, *args)
        self.run()
        return task

    def run_one(self) -> None:
        """Run exactly one batch."""
        with self.running():
            batch = self.k.runq
            self.k.runq = []
            self.k.run_batch(batch)

    def run(self, limit: int = 500) -> int:
        """Run batches until no task is runnable; return how many ran."""
        batches = 0
        with self.running():
            while self.k.runq:
                assert batches < limit, "runaway scenario"
                batch = self.k.runq
                self.k.runq = []
                self.k.run_batch(batch)
                batches += 1
        return batches

    def cancel(self, task: Any) -> None:
        """Cancel *task*'s scope: level-triggered, delivered now if it is parked."""
        task._cancel_status.effectively_cancelled = True
        with self.running():
            task._attempt_delivery_of_any_pending_cancel()

    def uncancel(self, task: Any) -> None:
        task._cancel_status.effectively_cancelled = False

    def advance(self, seconds: float) -> None:
        """Move the clock on and fire the expired deadlines, as the run loop does."""
        self.k.clock.now += seconds
        with self.running():
            for payload in self.k.deadlines.pop_expired(self.k.clock.now):
                payload._deadline_expired()

    def points(self, task: Any) -> tuple[int, int]:
        """(cancel points, schedule points) the task has passed."""
        return (task._cancel_points, task._schedule_points)

    # -- recording -----------------------------------------------------------------
    async def attempt(self, label: str, make: Callable[[], Any]) -> Any:
        """Await ``make()`` and log how it ended."""
        try:
            result = await make()
        except BaseException as exc:  # noqa: BLE001 -- the trace is the point
            self.log.append((label, *describe(exc)))
            return None
        self.log.append((label, "ok", result))
        return result

    def call(self, label: str, fn: Callable[[], Any]) -> Any:
        """Call a synchronous operation from inside a task and log how it ended."""
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001
            self.log.append((label, *describe(exc)))
            return None
        self.log.append((label, "ok", result))
        return result

    def outside(self, fn: Callable[[], Any]) -> tuple[str, ...]:
        """Call *fn* with no task running (but the run active); its result or error."""
        with self.running():
            try:
                return ("ok", fn())
            except BaseException as exc:  # noqa: BLE001
                return describe(exc)


def names(tasks: list[Any]) -> list[str]:
    return [t.name for t in tasks]


@contextmanager
def lot_class(tw: Twin, cls: type) -> Iterator[None]:
    """Make *tw*'s LockBase create *cls* lots for a while (restored afterwards)."""
    before = type(tw.S.LockBase()._lot)
    tw.S.set_lot_class(cls)
    try:
        yield
    finally:
        tw.S.set_lot_class(before)
