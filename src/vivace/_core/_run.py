"""The run loop driver (``run``, guest mode) and the public core functions.

Design notes
------------
The loop is written once, as a generator (``unrolled_run``) that yields the I/O timeout
it wants and is sent back the I/O events: ``run`` drives it by calling
``io_manager.get_events`` in this thread; guest mode drives it from the host loop's
callbacks, doing the blocking wait in a worker thread. Each iteration:

1. compute the timeout (0 if tasks are runnable, else until the next deadline, capped;
   shortened for ``wait_all_tasks_blocked`` cushions and MockClock autojump);
2. yield it, process I/O events;
3. fire expired deadlines (cancel their scopes);
4. if nothing at all happened while idle-primed, wake the idle waiters or autojump;
5. take the run queue as this batch, reverse it with probability 1/2 (or, in
   deterministic mode, sort by spawn order and shuffle with the seeded RNG), and let the
   kernel step it. Tasks made runnable during the batch run in the next one.
"""

from __future__ import annotations

import random
import warnings
from math import inf
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import outcome
import sniffio

from ._abc import Clock
from ._exceptions import TrioInternalError
from ._impl import SystemClock, TaskBase, checkpoint
from ._ki import KIManager, enable_ki_protection
from ._run_context import GLOBAL_RUN_CONTEXT, library_name
from ._runner import Runner, RunStatistics

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator, Sequence

    from ._abc import Instrument
    from ._entry_queue import TrioToken
    from ._task import Task

RetT = TypeVar("RetT")

_MAX_TIMEOUT: Final = 24 * 60 * 60
# The busy fast path polls I/O at least this often (clock seconds / batches) while tasks
# keep each other runnable; short enough that readiness is noticed promptly.
_BUSY_SLICE: Final = 0.0002
_BUSY_BATCHES: Final = 256

# The batch-order RNG, module level so tests and plugins (Hypothesis) can seed it.
_r = random.Random()
_ALLOW_DETERMINISTIC_SCHEDULING = False


def _hypothesis_plugin_setup() -> None:
    """Hypothesis entry point: make batch order a function of Hypothesis's seed.

    Registered for vivace itself (pyproject.toml) and, while ``vivace.install()`` is in
    effect, reached through trio's entry-point path ``trio._core._run``. Once called,
    every run sorts each batch by spawn order and shuffles it with ``_r``, which
    Hypothesis reseeds per example, so a shrunk failure replays with its schedule.
    """
    from hypothesis import register_random

    global _ALLOW_DETERMINISTIC_SCHEDULING
    _ALLOW_DETERMINISTIC_SCHEDULING = True
    register_random(_r)


# The default clock lives in the kernel twins (the compiled one reads CLOCK_MONOTONIC
# without a Python call); it is a Clock by registration.
Clock.register(SystemClock)


def _make_io_manager() -> Any:
    from ._io_manager import make_io_manager  # VIVACE_IO_BACKEND chooses

    return make_io_manager()


def setup_runner(
    clock: Clock | None,
    instruments: Sequence[Instrument],
    restrict_keyboard_interrupt_to_checkpoints: bool,
    strict_exception_groups: bool,
) -> Runner:
    if hasattr(GLOBAL_RUN_CONTEXT, "runner"):
        # Nested runs in one thread would share GLOBAL_RUN_CONTEXT; refuse them.
        raise RuntimeError("Attempted to call run() from inside a run()")
    if clock is not None and not isinstance(clock, Clock):
        raise TypeError(
            f"clock must be a vivace.abc.Clock (e.g. vivace.testing.MockClock()), "
            f"not {clock!r}"
        )
    if clock is None:
        # A Clock by registration (see above), which type checkers cannot see.
        clock = cast("Clock", SystemClock())
    instruments = tuple(instruments)
    ki_manager = KIManager()
    runner = Runner(
        clock=clock,
        instruments=instruments,
        io_manager=_make_io_manager(),
        ki_manager=ki_manager,
        strict_exception_groups=strict_exception_groups,
    )
    runner.asyncgens.install_hooks(runner)
    ki_manager.install(runner.deliver_ki, restrict_keyboard_interrupt_to_checkpoints)
    GLOBAL_RUN_CONTEXT.runner = runner
    return runner


def _warn_nonstrict(what: str) -> None:
    from ._deprecate import warn_deprecated

    warn_deprecated(
        what,
        "0.25.0",
        issue=2929,
        instead="the default value of True and rewrite exception handlers to handle "
        "ExceptionGroups",
        stacklevel=3,
    )


def run(
    async_fn: Callable[..., Awaitable[RetT]],
    *args: object,
    clock: Clock | None = None,
    instruments: Sequence[Instrument] = (),
    restrict_keyboard_interrupt_to_checkpoints: bool = False,
    strict_exception_groups: bool = True,
) -> RetT:
    """Run ``async_fn(*args)`` as the main task of a new run; return its result or
    raise its exception. Blocks until every task of the run has finished.

    ``clock``: a ``vivace.abc.Clock`` (default: the system clock); ``instruments``:
    ``vivace.abc.Instrument`` objects; ``restrict_keyboard_interrupt_to_checkpoints``:
    deliver Control-C only at checkpoints of the main task; ``strict_exception_groups``:
    always wrap nursery errors in an ExceptionGroup (False is deprecated).
    """
    if strict_exception_groups is not None and not strict_exception_groups:
        _warn_nonstrict("trio.run(..., strict_exception_groups=False)")
    __tracebackhide__ = True
    runner = setup_runner(
        clock, instruments, restrict_keyboard_interrupt_to_checkpoints, strict_exception_groups
    )
    prev_library = sniffio.thread_local.name
    sniffio.thread_local.name = library_name()
    try:
        gen = unrolled_run(runner, async_fn, args)
        next_send: Any = None
        get_events = runner.io_manager.get_events
        while True:
            try:
                timeout = gen.send(next_send)
            except StopIteration:
                break
            next_send = get_events(timeout)
    finally:
        sniffio.thread_local.name = prev_library
    result = runner.main_task_outcome
    if isinstance(result, outcome.Value):
        return result.value
    if isinstance(result, outcome.Error):
        raise result.error
    raise TrioInternalError(f"run finished without a main task outcome: {result!r}")


class GuestState:
    __slots__ = (
        "done_callback",
        "run_sync_soon_not_threadsafe",
        "run_sync_soon_threadsafe",
        "runner",
        "unrolled_run_gen",
        "unrolled_run_next_send",
    )

    def __init__(
        self,
        runner: Runner,
        run_sync_soon_threadsafe: Callable[[Callable[[], object]], object],
        run_sync_soon_not_threadsafe: Callable[[Callable[[], object]], object],
        done_callback: Callable[[outcome.Outcome[Any]], object],
        unrolled_run_gen: Generator[float, Any, None],
    ) -> None:
        self.runner = runner
        self.run_sync_soon_threadsafe = run_sync_soon_threadsafe
        self.run_sync_soon_not_threadsafe = run_sync_soon_not_threadsafe
        self.done_callback = done_callback
        self.unrolled_run_gen = unrolled_run_gen
        self.unrolled_run_next_send: outcome.Outcome[Any] = outcome.Value(None)

    def guest_tick(self) -> None:
        prev_library = sniffio.thread_local.name
        sniffio.thread_local.name = library_name()
        try:
            timeout = self.unrolled_run_next_send.send(self.unrolled_run_gen)
        except StopIteration:
            assert self.runner.main_task_outcome is not None
            self.done_callback(self.runner.main_task_outcome)
            return
        except TrioInternalError as exc:
            self.done_callback(outcome.Error(exc))
            return
        finally:
            sniffio.thread_local.name = prev_library

        # Skip the thread round-trip when there is no need to block.
        events_outcome = outcome.capture(self.runner.io_manager.get_events, 0)
        if timeout <= 0 or isinstance(events_outcome, outcome.Error) or events_outcome.value:
            self.unrolled_run_next_send = events_outcome
            self.runner.guest_tick_scheduled = True
            self.run_sync_soon_not_threadsafe(self.guest_tick)
        else:
            self.runner.guest_tick_scheduled = False

            def get_events() -> Any:
                return self.runner.io_manager.get_events(timeout)

            def deliver(events_outcome: outcome.Outcome[Any]) -> None:
                def in_main_thread() -> None:
                    self.unrolled_run_next_send = events_outcome
                    self.runner.guest_tick_scheduled = True
                    self.guest_tick()

                self.run_sync_soon_threadsafe(in_main_thread)

            from ._thread_cache import start_thread_soon

            start_thread_soon(get_events, deliver)


def start_guest_run(
    async_fn: Callable[..., Awaitable[RetT]],
    *args: object,
    run_sync_soon_threadsafe: Callable[[Callable[[], object]], object],
    done_callback: Callable[[outcome.Outcome[RetT]], object],
    run_sync_soon_not_threadsafe: Callable[[Callable[[], object]], object] | None = None,
    host_uses_signal_set_wakeup_fd: bool = False,
    clock: Clock | None = None,
    instruments: Sequence[Instrument] = (),
    restrict_keyboard_interrupt_to_checkpoints: bool = False,
    strict_exception_groups: bool = True,
) -> None:
    """Start a run "as a guest" of another event loop (asyncio, Qt, ...) in this thread.

    The host loop drives the run through ``run_sync_soon_threadsafe`` (and, if given,
    the cheaper ``run_sync_soon_not_threadsafe``); I/O waits happen in a worker thread.
    ``done_callback`` receives the main task's outcome. Returns at once.
    """
    if strict_exception_groups is not None and not strict_exception_groups:
        _warn_nonstrict("trio.start_guest_run(..., strict_exception_groups=False)")
    runner = setup_runner(
        clock, instruments, restrict_keyboard_interrupt_to_checkpoints, strict_exception_groups
    )
    runner.is_guest = True
    runner.guest_tick_scheduled = True
    if run_sync_soon_not_threadsafe is None:
        run_sync_soon_not_threadsafe = run_sync_soon_threadsafe
    guest_state = GuestState(
        runner,
        run_sync_soon_threadsafe,
        run_sync_soon_not_threadsafe,
        done_callback,
        unrolled_run(
            runner, async_fn, args, host_uses_signal_set_wakeup_fd=host_uses_signal_set_wakeup_fd
        ),
    )
    # Run the first ticks synchronously, so that the system nursery exists (and
    # spawn_system_task works) by the time we return. No user code runs in them.
    next_send: Any = None
    for _ in range(5):
        if runner.system_nursery is not None:
            break
        try:
            timeout = guest_state.unrolled_run_gen.send(next_send)
        except StopIteration:  # pragma: no cover
            raise TrioInternalError(
                "Guest runner exited before system nursery was initialized"
            ) from None
        if timeout != 0:  # pragma: no cover
            guest_state.unrolled_run_gen.throw(
                TrioInternalError("Guest runner blocked before system nursery was initialized")
            )
        next_send = []
    else:  # pragma: no cover
        guest_state.unrolled_run_gen.throw(
            TrioInternalError(
                "Guest runner yielded too many times before system nursery was initialized"
            )
        )
    guest_state.unrolled_run_next_send = outcome.Value(next_send)
    run_sync_soon_not_threadsafe(guest_state.guest_tick)


def _fire_deadlines(expired: list[Any]) -> None:
    # In deadline order, as trio cancels its scopes (a sleep is a scope there): each
    # expiry reschedules its tasks at once, so instruments and the next batch see the
    # wake-ups in that order. A sleeper whose deadline passed together with an
    # enclosing scope's still raises Cancelled: either the scope aborts it first, or
    # the sleep sees the enclosing cancellation when it resumes.
    payload: Any
    for payload in expired:
        if not isinstance(payload, TaskBase):
            # Every popped scope forgets its entry before any is cancelled: cancelling
            # one recalculates the scopes below it, which cancels those whose deadline
            # has passed (as in trio), and they must not try to remove entries this
            # pass already popped.
            payload._heap_handle = None
    for payload in expired:
        payload._deadline_expired()


@enable_ki_protection
def unrolled_run(
    runner: Runner,
    async_fn: Callable[..., Awaitable[object]],
    args: tuple[Any, ...],
    host_uses_signal_set_wakeup_fd: bool = False,
) -> Generator[float, Any, None]:
    __tracebackhide__ = True
    try:
        _begin(runner, async_fn, args, watch_signals=not host_uses_signal_set_wakeup_fd)
        clock = runner.clock
        deadlines = runner.deadlines
        io_manager = runner.io_manager
        instruments = runner.instruments
        waiting_for_idle = runner.waiting_for_idle
        tasks = runner.tasks
        while tasks:
            if runner.runq:
                timeout: float = 0
            else:
                timeout = clock.deadline_to_sleep_time(deadlines.peek_deadline())
            timeout = min(max(0, timeout), _MAX_TIMEOUT)

            idle_primed = 0  # 1: wake idle waiters, 2: autojump the clock
            cushion = inf
            if waiting_for_idle:
                cushion = waiting_for_idle.keys()[0][0]
                if cushion < timeout:
                    timeout = cushion
                    idle_primed = 1
            elif runner.clock_autojump_threshold < timeout:
                timeout = runner.clock_autojump_threshold
                idle_primed = 2

            if "before_io_wait" in instruments:
                instruments.call("before_io_wait", timeout)
            events = yield timeout
            io_manager.process_events(events)
            if "after_io_wait" in instruments:
                instruments.call("after_io_wait", timeout)

            expired = deadlines.pop_expired(clock.current_time())
            if expired:
                idle_primed = 0
                _fire_deadlines(expired)
            del expired

            if idle_primed and not runner.runq and not events:
                if idle_primed == 1:
                    while waiting_for_idle:
                        key, task = waiting_for_idle.peekitem(0)
                        if key[0] != cushion:
                            break
                        del waiting_for_idle[key]
                        runner.reschedule(task)
                else:
                    clock._autojump()  # type: ignore[attr-defined]

            batch = runner.runq
            runner.runq = []
            if _ALLOW_DETERMINISTIC_SCHEDULING:
                batch.sort(key=_task_counter)
                _r.shuffle(batch)
            elif _r.random() < 0.5:
                batch.reverse()
            runner.run_batch(batch)
            del batch

            # Busy fast path: while tasks stay runnable, let the kernel run more batches
            # without a round trip through this loop (and its zero-timeout I/O poll).
            # Only when nothing observes the loop's iterations: no I/O-wait instruments,
            # not a guest run (the host must get control back), not deterministic mode.
            if (
                runner.runq
                and not runner.is_guest
                and not _ALLOW_DETERMINISTIC_SCHEDULING
                and "before_io_wait" not in instruments
                and "after_io_wait" not in instruments
            ):
                entry_queue = runner.entry_queue
                runner.run_busy(
                    _r.random,
                    clock.current_time,
                    clock.offset if type(clock) is SystemClock else None,
                    deadlines,
                    entry_queue.queue,
                    entry_queue.idempotent_queue,
                    clock.current_time() + _BUSY_SLICE,
                    _BUSY_BATCHES,
                )
    except GeneratorExit:
        warnings.warn(
            RuntimeWarning(
                "Trio guest run got abandoned without properly finishing... "
                "weird stuff might happen"
            ),
            stacklevel=1,
        )
    except TrioInternalError:
        raise
    except BaseException as exc:
        raise TrioInternalError("internal error in vivace - please file a bug!") from exc
    finally:
        runner.close()
        GLOBAL_RUN_CONTEXT.__dict__.clear()
        if runner.ki_pending:
            ki = KeyboardInterrupt()
            if isinstance(runner.main_task_outcome, outcome.Error):
                ki.__context__ = runner.main_task_outcome.error
            runner.main_task_outcome = outcome.Error(ki)


def _begin(
    runner: Runner,
    async_fn: Callable[..., Awaitable[object]],
    args: tuple[Any, ...],
    *,
    watch_signals: bool,
) -> None:
    # Signals must wake the I/O wait unless the host loop already arranged that.
    if watch_signals:
        runner.entry_queue.wakeup.wakeup_on_signals()
    instruments = runner.instruments
    if "before_run" in instruments:
        instruments.call("before_run")
    runner.clock.start_clock()
    runner.init_task = runner.spawn_impl(
        runner.init, (async_fn, args), None, "<init>", system_task=True
    )


def _task_counter(task: Task) -> int:
    return task._counter


# --------------------------------------------------------------------------------------
# Public functions of the core
# --------------------------------------------------------------------------------------


def _runner() -> Runner:
    try:
        return GLOBAL_RUN_CONTEXT.runner
    except AttributeError:
        raise RuntimeError("must be called from async context") from None


def current_task() -> Task:
    """Return the Task that is running the caller."""
    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    task = runner.current_task if runner is not None else None
    if task is None:
        raise RuntimeError("must be called from async context")
    return task


def in_trio_run() -> bool:
    """Whether a run is active in this thread (so ``current_time()`` works)."""
    return hasattr(GLOBAL_RUN_CONTEXT, "runner")


def in_trio_task() -> bool:
    """Whether the caller runs inside a task (so ``current_task()`` works)."""
    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    return runner is not None and runner.current_task is not None


def current_time() -> float:
    """The current time according to the run's clock."""
    return _runner().clock.current_time()


def current_clock() -> Clock:
    """The run's Clock object."""
    return _runner().clock


def current_root_task() -> Task | None:
    """The root task (ancestor of every other task)."""
    return _runner().init_task


def current_statistics() -> RunStatistics:
    """Run-loop statistics; see ``RunStatistics``."""
    return _runner().current_statistics()


def current_trio_token() -> TrioToken:
    """The TrioToken of the current run."""
    return _runner().current_trio_token()


def reschedule(task: Task, next_send: Any = None) -> None:
    """Wake *task*, parked in ``wait_task_rescheduled``, making that call return (or
    raise) *next_send*, an ``outcome.Outcome`` (default: ``Value(None)``)."""
    runner = _runner()
    if task._runner is not runner:
        # Queuing it here would strand it: its own run would wait for it forever.
        raise RuntimeError(
            f"reschedule() was given {task!r}, a task of another run; a task can only "
            "be rescheduled from its own run (from another thread, go through that "
            "run's TrioToken.run_sync_soon)"
        )
    if task not in runner.tasks:
        raise RuntimeError(f"reschedule() was given {task!r}, which has already exited")
    if next_send is not None and not isinstance(next_send, outcome.Outcome):
        # It would only fail later, in the woken task, far from this call.
        raise TypeError(
            f"reschedule() takes an outcome (outcome.Value(x) or outcome.Error(exc)) to "
            f"resume the task with, not {type(next_send).__name__}"
        )
    if next_send is None:
        runner.reschedule(task)
    else:
        runner.reschedule(task, next_send)


def spawn_system_task(
    async_fn: Callable[..., Awaitable[object]],
    *args: object,
    name: object = None,
    context: Any = None,
) -> Task:
    """Spawn a system task: in the system nursery, KI-protected, cancelled when the main
    task finishes; if it crashes, the whole run fails with TrioInternalError."""
    return _runner().spawn_system_task(async_fn, *args, name=name, context=context)


async def wait_all_tasks_blocked(cushion: float = 0.0) -> None:
    """Block until every other task has been blocked for *cushion* real seconds (the
    smallest cushion wins; equal cushions wake together)."""
    await _runner().wait_all_tasks_blocked(cushion)


def add_instrument(instrument: Instrument) -> None:
    """Install *instrument* in the current run."""
    _runner().instruments.add_instrument(instrument)


def remove_instrument(instrument: Instrument) -> None:
    """Remove *instrument* from the current run (KeyError if it is not installed)."""
    _runner().instruments.remove_instrument(instrument)


def current_effective_deadline() -> float:
    """The earliest deadline in force for the caller, taking shields into account:
    ``-inf`` if already cancelled, ``inf`` if none."""
    return current_task()._cancel_status.effective_deadline()


async def checkpoint_if_cancelled() -> None:
    """A checkpoint only if the caller is cancelled (then it raises Cancelled); else
    nothing, not even a schedule point."""
    task = current_task()
    runner = task._runner
    if task._cancel_status.effectively_cancelled or (
        runner.ki_pending and task is runner.main_task
    ):
        await checkpoint()
        raise AssertionError("this should never happen")  # pragma: no cover
    task._cancel_points += 1


@enable_ki_protection
async def wait_readable(fd: Any) -> None:
    """Block until *fd* (an int or an object with ``fileno()``) is readable."""
    await _runner().io_manager.wait_readable(fd)


@enable_ki_protection
async def wait_writable(fd: Any) -> None:
    """Block until *fd* (an int or an object with ``fileno()``) is writable."""
    await _runner().io_manager.wait_writable(fd)


@enable_ki_protection
def notify_closing(fd: Any) -> None:
    """Tell the run that *fd* is about to be closed: tasks waiting on it get
    ClosedResourceError."""
    _runner().io_manager.notify_closing(fd)

