"""The Runner: per-run state and the slow-path operations of the kernel.

Design notes
------------
``Runner`` subclasses the kernel's ``KernelBase`` (compiled or reference), which owns
the run queue and task stepping, and also the common paths of spawning
(``KernelBase.spawn_child``, used by ``start_soon``) and of a normal task exit. What is
here runs at most once per task lifetime or per rare event (the general spawn and exit
paths the kernel falls back to, KeyboardInterrupt, idle detection), so it stays Python.

Task tree: the root task ("init") owns three nested nurseries -- run_sync_soon's, the
system nursery, and the main task's -- so that at shutdown the main task finishes
first, then system tasks are cancelled, then async generators are finalized, then the
run_sync_soon task is cancelled (after draining its queue).
"""

from __future__ import annotations

import contextvars
import dataclasses
import types
from math import inf
from typing import TYPE_CHECKING, Any

import outcome
from sortedcontainers import SortedDict  # type: ignore[import-untyped]

from ._asyncgens import AsyncGenerators
from ._cancel import MISNESTING_ADVICE, CancelReason
from ._coroutine_check import coroutine_or_error
from ._entry_queue import EntryQueue, TrioToken
from ._exceptions import TrioInternalError
from ._impl import DeadlineHeap, KernelBase, activate_cancel_status, wait_task_rescheduled
from ._instrumentation import Instruments
from ._nursery import open_nursery
from ._parking_lot import GLOBAL_PARKING_LOT_BREAKER, break_lots_of
from ._task import Task
from ._traps import Abort
from ._util import final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._abc import Clock, Instrument

_CoroutineType = types.CoroutineType
_copy_context = contextvars.copy_context
_type_call = type.__call__


@final
@dataclasses.dataclass(frozen=True, slots=True)
class RunStatistics:
    """Run-loop statistics (from ``lowlevel.current_statistics()``):

    ``tasks_living``, ``tasks_runnable``, ``seconds_to_next_deadline``,
    ``run_sync_soon_queue_size`` and ``io_statistics`` (the I/O backend's statistics;
    its ``backend`` attribute names it).
    """

    tasks_living: int
    tasks_runnable: int
    seconds_to_next_deadline: float
    io_statistics: object
    run_sync_soon_queue_size: int


class Runner(KernelBase):
    def __init__(
        self,
        *,
        clock: Clock,
        instruments: Sequence[Instrument],
        io_manager: Any,
        ki_manager: Any,
        strict_exception_groups: bool,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.instruments = Instruments((), self._refresh_instrument_flags)
        self.io_manager = io_manager
        self.ki_manager = ki_manager
        self.strict_exception_groups = strict_exception_groups
        self._locals: dict[Any, object] = {}
        self.deadlines: DeadlineHeap[Any] = DeadlineHeap()
        self.system_nursery: Any = None
        self.system_context = contextvars.copy_context()
        self.main_task_outcome: outcome.Outcome[Any] | None = None
        self.entry_queue = EntryQueue()
        self.trio_token: TrioToken | None = None
        self.asyncgens = AsyncGenerators()
        self.clock_autojump_threshold = inf
        self.guest_tick_scheduled = False
        self.waiting_for_idle: SortedDict = SortedDict()
        # The kernel's spawn/exit fast paths (KernelBase.spawn_child, the exit path of
        # its task step) build Tasks and consult the parking-lot breaker registry.
        self._task_class = Task
        self._lot_breakers = GLOBAL_PARKING_LOT_BREAKER
        self._fast_paths = True
        for instrument in instruments:
            self.instruments.add_instrument(instrument)

    # -- instruments -------------------------------------------------------------------
    def _refresh_instrument_flags(self) -> None:
        instruments = self.instruments
        self._instr_before_step = "before_task_step" in instruments
        self._instr_after_step = "after_task_step" in instruments
        self._instr_scheduled = "task_scheduled" in instruments
        self._instr_spawned = "task_spawned" in instruments
        self._instr_exited = "task_exited" in instruments

    def _call_instrument(self, hook: str, *args: object) -> None:
        self.instruments.call(hook, *args)

    # -- guest mode --------------------------------------------------------------------
    def force_guest_tick_asap(self) -> None:
        # Idempotent: one pending wake-up of the host is enough.
        if not self.guest_tick_scheduled:
            self.guest_tick_scheduled = True
            self.io_manager.force_wakeup()

    def close(self) -> None:
        # Tasks that never finished (an internal error ended the run) go back under
        # the cyclic GC, which the compiled kernel kept them out of while they lived.
        for task in self.tasks:
            task._gc_retrack()
        for resource in (self.io_manager, self.entry_queue, self.asyncgens):
            resource.close()
        if "after_run" in self.instruments:
            self.instruments.call("after_run")
        self.ki_manager.close()

    # -- queries -----------------------------------------------------------------------
    def current_statistics(self) -> RunStatistics:
        return RunStatistics(
            tasks_living=len(self.tasks),
            tasks_runnable=len(self.runq),
            seconds_to_next_deadline=self.deadlines.peek_deadline() - self.clock.current_time(),
            io_statistics=self.io_manager.statistics(),
            run_sync_soon_queue_size=self.entry_queue.size(),
        )

    def current_trio_token(self) -> TrioToken:
        if self.trio_token is None:
            self.trio_token = TrioToken._create(self.entry_queue)
        return self.trio_token

    # -- spawning and exiting ------------------------------------------------------------
    def spawn_impl(
        self,
        async_fn: Callable[..., Awaitable[object]],
        args: tuple[Any, ...],
        nursery: Any,
        name: object,
        *,
        system_task: bool = False,
        context: contextvars.Context | None = None,
    ) -> Task:
        if nursery is not None and nursery._closed:
            raise RuntimeError("Nursery is closed to new arrivals")
        if nursery is None and self.init_task is not None:
            raise TrioInternalError("only the root task may be spawned without a nursery")
        if context is None:
            context = self.system_context.copy() if system_task else _copy_context()
        coro = context.run(coroutine_or_error, async_fn, *args)

        if type(coro) is not _CoroutineType or coro.cr_frame is None:
            # Not a native coroutine (e.g. a Cython one or a custom Coroutine): give the
            # task a real coroutine frame so KI protection and stack walks work.
            async def python_wrapper(orig_coro: Awaitable[object]) -> object:
                return await orig_coro

            coro = python_wrapper(coro)

        # type.__call__ directly: Task's metaclass refuses public construction.
        task = _type_call(
            Task,
            coro,
            context,
            self,
            next(self._task_counter),
            system_task,
            nursery,
            # The display name is computed on first use (see Task.name).
            async_fn if name is None else name,
        )
        self.tasks.add(task)
        if nursery is not None:
            nursery._children.add(task)
            activate_cancel_status(task, nursery._cancel_status)
        if self._instr_spawned:
            self.instruments.call("task_spawned", task)
        # The first step sends None into the fresh coroutine.
        self.reschedule(task, None)
        return task

    def task_exited(self, task: Any, result: outcome.Outcome[Any]) -> None:
        if task._child_nurseries:
            # The task returned while nurseries it opened are still open (misnesting):
            # cancel and close them so their children cannot outlive them unnoticed.
            for nursery in task._child_nurseries:
                nursery.cancel_scope._cancel(
                    CancelReason(
                        source="nursery",
                        reason="Parent Task exited prematurely, abandoning this nursery "
                        "without exiting it properly.",
                        source_task=repr(task),
                    )
                )
                nursery._closed = True
        if GLOBAL_PARKING_LOT_BREAKER:
            break_lots_of(task)
        status = task._cancel_status
        if (
            status is not None and status.abandoned_by_misnesting and status.parent is None
        ) or task._child_nurseries:
            what = "Nursery" if task._child_nurseries else "Cancel scope"
            new_exc = RuntimeError(
                f"{what} stack corrupted: {what} surrounding {task!r} was closed before "
                f"the task exited\n{MISNESTING_ADVICE}"
            )
            if isinstance(result, outcome.Error):
                new_exc.__context__ = result.error
            result = outcome.Error(new_exc)
        activate_cancel_status(task, None)
        self.tasks.remove(task)
        if task is self.init_task:
            # The root task never fails on its own; if it did, the run is broken.
            result.unwrap()
            if self.tasks:  # pragma: no cover
                raise TrioInternalError("root task exited with tasks still alive")
        else:
            if task is self.main_task:
                self.main_task_outcome = result
                result = outcome.Value(None)
            task._parent_nursery._child_finished(task, result)
        if self._instr_exited:
            self.instruments.call("task_exited", task)

    def spawn_system_task(
        self,
        async_fn: Callable[..., Awaitable[object]],
        *args: object,
        name: object = None,
        context: contextvars.Context | None = None,
    ) -> Task:
        return self.spawn_impl(
            async_fn, args, self.system_nursery, name, system_task=True, context=context
        )

    def _shut_down(self, nursery: Any, what: str) -> None:
        nursery.cancel_scope._cancel(
            CancelReason(
                source="shutdown",
                source_task=repr(self.init_task),
                reason=f"main task done, shutting down {what}",
            )
        )

    async def init(self, async_fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
        # Three nested nurseries, outermost first: run_sync_soon's task, system tasks,
        # the main task. Each level is cancelled once everything inside it is done.
        async with open_nursery() as callbacks_nursery:
            async with open_nursery() as self.system_nursery:
                async with open_nursery() as main_nursery:
                    try:
                        self.main_task = self.spawn_impl(async_fn, args, main_nursery, None)
                    except BaseException as exc:
                        # e.g. async_fn is not an async function: that is the result.
                        self.main_task_outcome = outcome.Error(exc)
                        return
                    self.spawn_impl(
                        self.entry_queue.task,
                        (),
                        callbacks_nursery,
                        "<TrioToken.run_sync_soon task>",
                        system_task=True,
                    )
                self._shut_down(self.system_nursery, "system tasks")
            await self.asyncgens.finalize_remaining(self)
            self._shut_down(callbacks_nursery, "run_sync_soon callbacks")

    # -- KeyboardInterrupt ----------------------------------------------------------------
    def deliver_ki(self) -> None:
        # Called from the signal handler: only set a flag and poke the entry queue.
        self.ki_pending = True
        try:
            self.entry_queue.run_sync_soon(self._deliver_ki_cb)
        except Exception:  # RunFinishedError: the run is ending; close() reports the KI
            pass

    def _deliver_ki_cb(self) -> None:
        if not self.ki_pending:
            return
        if self.main_task is None or self.main_task_outcome is not None:
            return
        self.main_task._attempt_delivery_of_pending_ki()

    # -- idleness ---------------------------------------------------------------------------
    async def wait_all_tasks_blocked(self, cushion: float = 0.0) -> None:
        task = self.current_task
        key = (cushion, id(task))
        self.waiting_for_idle[key] = task

        def abort(_: Any) -> Abort:
            del self.waiting_for_idle[key]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)
