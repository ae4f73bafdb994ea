"""The kernel, reference twin: tasks' hot state, the run queue, one batch of task steps,
and the trap awaitables. ``_ext/_kernel.pyx`` is the compiled twin; both must behave
identically (same attributes, same errors, same order of side effects).

Design notes
------------
* A task is stepped by sending a value into (or throwing an exception into) its
  coroutine inside the task's ``contextvars.Context``. What the coroutine yields back is
  a *trap message*, interpreted by ``_dispatch``:

  - ``CANCEL_SHIELDED_CHECKPOINT``: go to the back of the run queue, resume with None.
  - ``CHECKPOINT``: the same, but when the task is next stepped it is first checked for
    cancellation (and for a pending KeyboardInterrupt if it is the main task); a
    cancelled task is instead rescheduled to have its ``Cancelled`` thrown in at the
    following batch -- trio's timing, where the task parks and its abort succeeds at
    once. Checking at resume time sees every cancellation made up to that moment.
  - ``WaitTaskRescheduled(abort_func)``: park until someone calls ``reschedule``; if
    the task is already cancelled, try to abort right away.
  - ``PermanentlyDetachCoroutineObject(outcome)``: the task ends with that outcome.
  - anything else: the coroutine awaited something from another framework; a TypeError
    is thrown into it at its next step.

* ``task._send_mode`` says what the next step does: IDLE (not scheduled: it is parked or
  running), SEND (send ``_next_send``), THROW (throw ``_next_send``) or CHECKPOINT
  (cancel check, then resume). A task is in the run queue iff its mode is not IDLE.
  Rescheduling a task that is not IDLE is a bug and raises TrioInternalError.

* ``RESUME_NONE`` is a shared, immutable stand-in for ``outcome.Value(None)``: the trap
  awaitables call ``.unwrap()`` on what they are sent, and the common "resume with
  nothing" case then allocates nothing.

* Batches: tasks made runnable during a batch are appended to ``runq`` and run in the
  next batch; the caller (the run loop) takes ``runq`` and orders it (reversal or
  deterministic shuffle) before calling ``run_batch``.

* The kernel calls back into the shared Python layer only for rare events: task exit
  (``self.task_exited``), cancel delivery (``task._attempt_delivery_of_any_pending_cancel``
  and friends, ``task._cancel_status._make_cancelled``) and instruments.

* Spawn and exit have a common path here, used once the Runner sets ``_fast_paths``:
  ``spawn_child`` (``Nursery.start_soon``) spawns a plain ``async def`` function, whose
  call runs no user code (so neither the spawn context nor sniffio's name can be
  observed during it) and always returns a fresh native coroutine; anything else goes
  through ``self.spawn_impl`` (the Runner's general path). ``_exit_fast`` finishes a
  task that returned normally when nothing rare is involved (no open child nurseries,
  no parking-lot breakers, no task_exited instrument, not the main or root task, an
  intact cancel status); anything else goes through ``self.task_exited``. Both do what
  the general paths would do, in the same order.
"""

from __future__ import annotations

import contextvars
import itertools
import random as _random
import threading
import types
from time import perf_counter as _perf_counter
from typing import TYPE_CHECKING, Any

import outcome

from ._empty import NO_CHILD_NURSERIES
from ._exceptions import TrioInternalError

# The engine exports: what ``_impl`` binds from this module or from ``_ext/_kernel``.
__all__ = [
    "CANCEL_SHIELDED_CHECKPOINT",
    "CHECKPOINT",
    "RESUME_NONE",
    "KernelBase",
    "PermanentlyDetachCoroutineObject",
    "SystemClock",
    "TaskBase",
    "WaitTaskRescheduled",
    "activate_cancel_status",
    "async_yield",
    "cancel_shielded_checkpoint",
    "check_nursery_closed",
    "checkpoint",
    "permanently_detach_coroutine_object",
    "wait_task_rescheduled",
]

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Generator

    from ._tree_contract import CancelStatusFields, NurseryFields, TaskFields

_copy_context = contextvars.copy_context
_FunctionType = types.FunctionType
_MethodType = types.MethodType
_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE

IDLE = 0
SEND = 1
THROW = 2
CHECKPOINT_RESUME = 3


# -- the task tree: one owner each (see _tree_contract) ------------------------------


def activate_cancel_status(task: TaskFields, status: CancelStatusFields | None) -> None:
    """Move *task* from its cancel status to *status* (None: to no status); a cancel
    that *status* already carries is delivered at once."""
    old = task._cancel_status
    if old is not None:
        old._tasks.discard(task)
    task._cancel_status = status
    if status is not None:
        status._tasks.add(task)
        if status.effectively_cancelled:
            task._attempt_delivery_of_any_pending_cancel()


def check_nursery_closed(nursery: NurseryFields) -> None:
    """Close *nursery* if nothing is left in it, waking its parent if that waits in
    ``__aexit__``."""
    if not (nursery._nested_child_running or nursery._children or nursery._pending_starts):
        nursery._closed = True
        if nursery._parent_waiting_in_aexit:
            nursery._parent_waiting_in_aexit = False
            parent = nursery._parent_task
            parent._runner.reschedule(parent)


class _ResumeNone:
    """Behaves as ``outcome.Value(None)`` for the trap awaitables, but is shared."""

    __slots__ = ()

    def unwrap(self) -> None:
        return None

    def send(self, gen: Generator[Any, Any, Any]) -> Any:
        return gen.send(None)

    def __repr__(self) -> str:
        return "Value(None)"


RESUME_NONE = _ResumeNone()


class _CancelShieldedCheckpointType:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CancelShieldedCheckpoint"


class _CheckpointType:
    __slots__ = ()

    def __repr__(self) -> str:
        return "Checkpoint"


CANCEL_SHIELDED_CHECKPOINT = _CancelShieldedCheckpointType()
CHECKPOINT = _CheckpointType()


class WaitTaskRescheduled:
    __slots__ = ("abort_func",)

    def __init__(self, abort_func: Callable[..., Any]) -> None:
        self.abort_func = abort_func

    def __repr__(self) -> str:
        return f"WaitTaskRescheduled(abort_func={self.abort_func!r})"


class PermanentlyDetachCoroutineObject:
    __slots__ = ("final_outcome",)

    def __init__(self, final_outcome: outcome.Outcome[Any]) -> None:
        self.final_outcome = final_outcome

    def __repr__(self) -> str:
        return f"PermanentlyDetachCoroutineObject(final_outcome={self.final_outcome!r})"


@types.coroutine
def _yield(msg: object) -> Generator[Any, Any, Any]:
    return (yield msg)


async def async_yield(msg: object) -> Any:
    """Yield *msg* to the kernel; return whatever the kernel sends back (not unwrapped)."""
    return await _yield(msg)


async def cancel_shielded_checkpoint() -> None:
    """A schedule point that is not a cancel point."""
    (await _yield(CANCEL_SHIELDED_CHECKPOINT)).unwrap()


async def checkpoint() -> None:
    """A schedule point, then a cancel point: raises Cancelled if the task's scope is
    cancelled."""
    (await _yield(CHECKPOINT)).unwrap()


async def wait_task_rescheduled(abort_func: Callable[..., Any]) -> Any:
    """Park the task until ``reschedule`` is called on it; see lowlevel docs."""
    return (await _yield(WaitTaskRescheduled(abort_func))).unwrap()


async def permanently_detach_coroutine_object(
    final_outcome: outcome.Outcome[Any],
) -> Any:
    return await _yield(PermanentlyDetachCoroutineObject(final_outcome))


class SystemClock:
    """The default clock: ``time.perf_counter`` plus a random offset, so that code cannot
    rely on the clock's epoch. (Registered as a ``vivace.abc.Clock`` by the run module.)"""

    __slots__ = ("offset",)

    def __init__(self) -> None:
        self.offset = _random.uniform(10000, 200000)

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self.offset + _perf_counter()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - self.current_time()


class TaskBase:
    """The hot half of ``lowlevel.Task``; the Python layer subclasses it."""

    __slots__ = (
        "__weakref__",
        "_abort_func",
        "_cancel_points",
        "_cancel_status",
        "_child_nurseries",
        "_counter",
        "_eventual_parent_nursery",
        "_ki_protected",
        "_name",
        "_next_send",
        "_parent_nursery",
        "_runner",
        "_schedule_points",
        "_send_mode",
        "context",
        "coro",
        "custom_sleep_data",
    )

    def __init__(
        self,
        coro: Any,
        context: contextvars.Context,
        runner: Any,
        counter: int,
        ki_protected: bool,
        parent_nursery: Any = None,
        name: object = None,
    ) -> None:
        # The task-tree fields (used by the Python layer's Task) live here too, so the
        # kernel's spawn path can fill them without attribute calls.
        self._parent_nursery = parent_nursery
        # A str, or the spawned callable whose qualified name becomes the name on first
        # use (see Task.name): most tasks are never named.
        self._name = name
        # A shared empty stand-in until the task opens a nursery (no list per spawn).
        self._child_nurseries: list[Any] = NO_CHILD_NURSERIES
        self._eventual_parent_nursery: Any = None
        self.coro: Coroutine[Any, outcome.Outcome[object], Any] = coro
        self.context: contextvars.Context = context
        self._runner = runner
        self._counter = counter
        self._ki_protected = ki_protected
        self._send_mode = IDLE
        self._next_send: Any = None
        self._abort_func: Any = None
        self._cancel_status: Any = None
        self.custom_sleep_data: Any = None
        self._cancel_points = 0
        self._schedule_points = 0

    def _gc_retrack(self) -> None:
        """Nothing to do here: the compiled kernel keeps live tasks out of the cyclic
        GC's lists and this puts one back; the reference never takes them out."""


class KernelBase:
    """The run queue and the task-step loop; ``Runner`` (Python) subclasses it."""

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_fast_paths",
        "_instr_before_step",
        "_instr_after_step",
        "_instr_exited",
        "_instr_scheduled",
        "_instr_spawned",
        "_lot_breakers",
        "_thread_ident",
        "_task_class",
        "_task_counter",
        "current_task",
        "init_task",
        "is_guest",
        "ki_pending",
        "main_task",
        "runq",
        "tasks",
    )

    def __init__(self) -> None:
        self.runq: list[Any] = []
        self.current_task: Any = None
        self.main_task: Any = None
        self.ki_pending = False
        self.is_guest = False
        self._instr_before_step = False
        self._instr_after_step = False
        self._instr_scheduled = False
        # Spawn/exit state, owned by the Python layer (the Runner fills it in).
        self._fast_paths = False  # spawn_child / the exit fast path may be used
        self._instr_spawned = False
        self._instr_exited = False
        self.tasks: set[Any] = set()
        self.init_task: Any = None
        self._task_class: Any = None  # the TaskBase subclass spawn_child creates
        self._task_counter = itertools.count()
        self._lot_breakers: Any = {}  # the parking-lot breaker registry (a dict)
        # The thread the run belongs to: only it may wake the run's tasks.
        self._thread_ident = threading.get_ident()

    # -- hooks the Python layer provides -------------------------------------------
    def task_exited(self, task: Any, result: outcome.Outcome[Any]) -> None:
        raise NotImplementedError

    def spawn_impl(self, async_fn: Any, args: tuple[Any, ...], nursery: Any, name: object) -> Any:
        raise NotImplementedError

    def force_guest_tick_asap(self) -> None:
        raise NotImplementedError

    def _call_instrument(self, hook: str, *args: object) -> None:
        raise NotImplementedError

    # -- scheduling ------------------------------------------------------------------
    def reschedule(self, task: Any, next_send: Any = RESUME_NONE) -> None:
        if task._send_mode != IDLE:
            raise TrioInternalError(
                f"attempted to reschedule {task!r}, which is already scheduled"
            )
        task._send_mode = SEND
        task._next_send = next_send
        task._abort_func = None
        task.custom_sleep_data = None
        if self.is_guest and not self.runq:
            self.force_guest_tick_asap()
        self.runq.append(task)
        if self._instr_scheduled:
            self._call_instrument("task_scheduled", task)

    def _schedule_throw(self, task: Any, exc: BaseException) -> None:
        self.reschedule(task, exc)
        task._send_mode = THROW

    def _schedule_checkpoint(self, task: Any) -> None:
        self.reschedule(task, RESUME_NONE)
        task._send_mode = CHECKPOINT_RESUME

    # -- spawning and exiting (common paths) ---------------------------------------------
    def spawn_child(
        self, async_fn: Any, args: tuple[Any, ...], nursery: NurseryFields, name: object
    ) -> Any:
        """Spawn ``async_fn(*args)`` into *nursery* (``Nursery.start_soon``)."""
        if nursery._closed:
            raise RuntimeError("Nursery is closed to new arrivals")
        fn = async_fn.__func__ if type(async_fn) is _MethodType else async_fn
        if (
            not self._fast_paths
            or self._instr_spawned
            or type(fn) is not _FunctionType
            or not fn.__code__.co_flags & _CO_COROUTINE
        ):
            return self.spawn_impl(async_fn, args, nursery, name)
        context = _copy_context()
        # A plain async def: the call only binds arguments and makes the coroutine.
        coro = async_fn(*args)
        task = object.__new__(self._task_class)
        TaskBase.__init__(
            task,
            coro,
            context,
            self,
            next(self._task_counter),
            False,
            nursery,
            async_fn if name is None else name,
        )
        self.tasks.add(task)
        nursery._children.add(task)
        activate_cancel_status(task, nursery._cancel_status)
        # The first step sends None into the fresh coroutine.
        self.reschedule(task, None)
        return task

    def _exit_fast(self, task: Any) -> bool:
        """Finish *task*, which returned normally, if nothing rare is involved (else
        return False: the caller uses ``task_exited``)."""
        status = task._cancel_status
        if (
            task._child_nurseries
            or self._lot_breakers
            or self._instr_exited
            or status is None
            or status.abandoned_by_misnesting
            or task is self.init_task
            or task is self.main_task
        ):
            return False
        activate_cancel_status(task, None)
        self.tasks.remove(task)
        nursery = task._parent_nursery
        # Nursery._child_finished with a Value result.
        nursery._children.remove(task)
        if not nursery._closed or hasattr(nursery, "_pending_excs"):
            check_nursery_closed(nursery)
        return True

    # -- stepping --------------------------------------------------------------------
    def run_batch(self, batch: list[Any]) -> None:
        """Step every task in *batch*, from the end of the list to the front."""
        while batch:
            self._step(batch.pop())

    def run_busy(
        self,
        rng_random: Callable[[], float],
        clock_now: Callable[[], float],
        clock_offset: float | None,
        deadlines: Any,
        queue: Any,
        idempotent_queue: Any,
        until: float,
        max_batches: int,
    ) -> int:
        """Run further batches back to back while tasks stay runnable, skipping the
        run loop's I/O poll in between; return how many ran.

        Stops when the run queue empties, after *max_batches*, once the clock reaches
        *until*, as soon as a deadline in *deadlines* is due, or as soon as the entry
        queue's *queue* or *idempotent_queue* is non-empty -- so the run loop still
        fires deadlines on time, runs run_sync_soon callbacks at the next batch as trio
        does, and polls I/O at least every *until* (the caller keeps that short).

        The clock is ``clock_now()``, or, when *clock_offset* is given (the system
        clock), ``clock_offset + time.perf_counter()``, which the compiled twin reads
        without a Python call.
        """
        if clock_offset is not None:
            offset = clock_offset
            clock_now = lambda: offset + _perf_counter()  # noqa: E731
        ran = 0
        while self.runq and ran < max_batches:
            # Checked before each batch: an expired deadline or a queued run_sync_soon
            # callback needs the run loop (expiry processing, the wakeup-fd poll) before
            # any task runs again.
            now = clock_now()
            if now >= until or deadlines.peek_deadline() <= now or queue or idempotent_queue:
                break
            batch = self.runq
            self.runq = []
            if rng_random() < 0.5:
                batch.reverse()
            self.run_batch(batch)
            ran += 1
        return ran

    def _step(self, task: Any) -> None:
        mode = task._send_mode
        value = task._next_send
        task._send_mode = IDLE
        task._next_send = None
        if mode == CHECKPOINT_RESUME:
            task._cancel_points += 1
            if self.ki_pending and task is self.main_task:
                self.ki_pending = False
                self._deliver_later(task, KeyboardInterrupt())
                return
            if task._cancel_status.effectively_cancelled:
                self._deliver_later(task, task._cancel_status._make_cancelled())
                return
            mode = SEND
        self.current_task = task
        if self._instr_before_step:
            self._call_instrument("before_task_step", task)
        coro = task.coro
        final: Any = None
        returned = False
        try:
            if mode == THROW:
                msg = task.context.run(coro.throw, value)
            else:
                msg = task.context.run(coro.send, value)
        except StopIteration as stop:
            returned = True
            final = stop.value
        except BaseException as exc:
            # Drop our own frame (context.run adds none) from the traceback.
            tb = exc.__traceback__
            final = outcome.Error(exc.with_traceback(tb.tb_next if tb is not None else None))
            del tb, exc
        del value
        if returned:
            # Outside the except block, like task_exited below.
            if not (self._fast_paths and self._exit_fast(task)):
                self.task_exited(task, outcome.Value(final))
            del final
        elif final is not None:
            # Outside the except block: nothing the exit path raises may pick up the
            # task's exception as its __context__.
            self.task_exited(task, final)
            del final
        else:
            self._dispatch(task, msg)
            del msg
        if self._instr_after_step:
            self._call_instrument("after_task_step", task)
        self.current_task = None

    def _deliver_later(self, task: Any, exc: BaseException) -> None:
        # A cancelled checkpoint raises one batch later, as in trio, where the task
        # parks and its abort function succeeds at once. Batch-level timing is
        # observable (who runs first during shutdown), so keep it identical.
        self.current_task = task
        if self._instr_before_step:
            self._call_instrument("before_task_step", task)
        task._schedule_points += 1
        self._schedule_throw(task, exc)
        if self._instr_after_step:
            self._call_instrument("after_task_step", task)
        self.current_task = None

    def _dispatch(self, task: Any, msg: object) -> None:
        task._schedule_points += 1
        if msg is CHECKPOINT:
            self._schedule_checkpoint(task)
        elif msg is CANCEL_SHIELDED_CHECKPOINT:
            self.reschedule(task, RESUME_NONE)
        elif type(msg) is WaitTaskRescheduled:
            task._cancel_points += 1
            task._abort_func = msg.abort_func
            if self.ki_pending and task is self.main_task:
                task._attempt_delivery_of_pending_ki()
            task._attempt_delivery_of_any_pending_cancel()
        elif type(msg) is PermanentlyDetachCoroutineObject:
            self.task_exited(task, msg.final_outcome)
        else:
            exc = TypeError(
                f"vivace received unrecognized yield message {msg!r}. Are you trying "
                "to use a library written for some other framework like asyncio? "
                "That won't work without some kind of compatibility shim."
            )
            self._schedule_throw(task, exc)
