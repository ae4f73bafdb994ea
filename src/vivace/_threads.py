"""Threads: ``to_thread.run_sync`` and the ``from_thread`` calls back into a run.

Design notes
------------
* One ``to_thread.run_sync`` call is one ``_ThreadCall``, shared by the waiting task (in
  the run's thread) and the worker. The task parks once and stays parked in a loop: each
  reschedule brings either the worker's final ``outcome`` (return it) or a request from
  ``from_thread`` (serve it, reply, park again). Only the run's thread writes
  ``call.task``; the worker only reads ``call.raise_cancel``.
* Cancellation: the abort callback records ``raise_cancel`` (so
  ``from_thread.check_cancelled`` can re-raise it in the worker). Without
  ``abandon_on_cancel`` it refuses the abort, so the task waits for the worker whatever
  happens. With it, it clears ``call.task`` (the worker's result is then dropped) and
  accepts. The limiter token belongs to the *thread* (a placeholder borrower), so it is
  released only when the worker really finishes, even after an abandon.
* ``from_thread`` requests from a worker whose caller cannot be abandoned run *inside
  that caller's task*: it is guaranteed to be parked in the loop above, so the request
  is delivered with ``reschedule``, and an async function runs under the caller's
  cancel scopes (cancelling the caller cancels it). The reply is sent in the same task
  step that parks the task again, so the worker's next request always finds it parked.
  Requests from foreign threads (``trio_token=``) or from abandonable workers (whose
  caller may be gone) run in the run's system context instead: sync functions as
  ``run_sync_soon`` callbacks, async ones as system tasks.
* Context: the worker runs ``fn`` in a copy of the caller's context (with sniffio's
  context variable cleared, so the worker reports no async library); each request runs
  in a copy of the worker's context, so changes flow neither back into the worker nor
  into the caller. To run an async request in the caller's task under the worker's
  context without an extra schedule point, the delivering callback swaps
  ``task.context`` before waking the task; the task swaps it back before parking.
* The worker finds its call through a thread-local, set only while ``fn`` runs.
"""

from __future__ import annotations

import collections.abc
import contextvars
import inspect
import threading
from itertools import count
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, TypeVar

import outcome
import sniffio

from ._core import (
    Abort,
    ParkingLot,
    RunFinishedError,
    RunVar,
    TrioToken,
    checkpoint,
    checkpoint_if_cancelled,
    current_task,
    current_trio_token,
    disable_ki_protection,
    enable_ki_protection,
    in_trio_task,
    reschedule,
    spawn_system_task,
    start_thread_soon,
    wait_task_rescheduled,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._core import RaiseCancelT, Task
    from ._sync import CapacityLimiter

RetT = TypeVar("RetT")

# The default limiter's size; trio's number, kept so programs tuned for it behave alike.
DEFAULT_LIMIT = 40

_limiter_var: RunVar[CapacityLimiter] = RunVar("vivace.to_thread default limiter")
_active_var: RunVar[_ActiveThreads] = RunVar("vivace.to_thread active threads")
_call_numbers = count()


# -- bookkeeping per run ---------------------------------------------------------------


def current_default_thread_limiter() -> CapacityLimiter:
    """Return the ``CapacityLimiter`` that ``to_thread.run_sync`` uses when given no
    ``limiter``: one per run, with 40 tokens (change ``total_tokens`` to resize it)."""
    try:
        return _limiter_var.get()
    except LookupError:
        from ._sync import CapacityLimiter

        limiter = CapacityLimiter(DEFAULT_LIMIT)
        _limiter_var.set(limiter)
        return limiter


class _ActiveThreads:
    __slots__ = ("count", "idle_waiters")

    def __init__(self) -> None:
        self.count = 0
        self.idle_waiters = ParkingLot()


def _active_threads() -> _ActiveThreads:
    try:
        return _active_var.get()
    except LookupError:
        state = _ActiveThreads()
        _active_var.set(state)
        return state


def active_thread_count() -> int:
    """Return how many ``to_thread.run_sync`` calls of this run are waiting for their
    thread (an abandoned call no longer counts)."""
    try:
        return _active_var.get().count
    except LookupError:
        return 0


async def wait_all_threads_completed() -> None:
    """Wait until no ``to_thread.run_sync`` call of this run is waiting for its thread.

    Pair it with ``wait_all_tasks_blocked`` in tests to wait until background work in
    threads and tasks has settled. A checkpoint.
    """
    await checkpoint()
    try:
        state = _active_var.get()
    except LookupError:
        return
    while state.count:
        await state.idle_waiters.park()


# -- shared state of one call ----------------------------------------------------------


class _ThreadBorrower:
    """Holds the limiter token on behalf of a worker thread (which outlives its caller
    when abandoned)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<thread borrower {self.name!r}>"


class _ThreadCall:
    __slots__ = ("abandon", "raise_cancel", "task", "token")

    def __init__(self, token: TrioToken, task: Task, abandon: bool) -> None:
        self.token = token
        self.abandon = abandon
        # The parked caller, or None once it abandoned the thread.
        self.task: Task | None = task
        # Set by the first attempt to cancel the caller; re-raised by check_cancelled.
        self.raise_cancel: RaiseCancelT | None = None


class _WorkerLocal(threading.local):
    call: _ThreadCall | None = None


_worker_local = _WorkerLocal()


# -- to_thread.run_sync ----------------------------------------------------------------


def _fn_name(fn: object) -> str:
    return repr(getattr(fn, "__qualname__", fn))


@enable_ki_protection
async def to_thread_run_sync(
    sync_fn: Callable[..., RetT],
    *args: object,
    thread_name: str | None = None,
    abandon_on_cancel: bool = False,
    limiter: CapacityLimiter | None = None,
) -> RetT:
    """Run ``sync_fn(*args)`` in a worker thread and return (or raise) its result,
    letting other tasks run meanwhile.

    ``thread_name`` names the thread while it runs (default:
    ``"<sync_fn name> from <task name>"``). ``limiter`` caps how many threads run at
    once: anything with ``acquire_on_behalf_of`` / ``release_on_behalf_of`` (default:
    ``current_default_thread_limiter()``); the token is held until the thread finishes.

    Cancellation is checked on entry. After that, by default the call is shielded: it
    waits for the thread, since a thread cannot be interrupted. With
    ``abandon_on_cancel=True`` a cancel makes it raise ``Cancelled`` at once and leaves
    the thread running, its result discarded: use that only for work whose effects
    don't matter once nobody waits for it. Inside the thread, ``from_thread``
    functions reach back into this run, and ``from_thread.check_cancelled()`` reports
    a cancel of this call.
    """
    await checkpoint_if_cancelled()
    abandon = bool(abandon_on_cancel)  # may raise: before any resource is taken
    if limiter is None:
        limiter = current_default_thread_limiter()
    task = current_task()
    token = current_trio_token()
    call = _ThreadCall(token, task, abandon)
    if thread_name is None:
        thread_name = f"{getattr(sync_fn, '__name__', None)} from {task.name}"
    borrower = _ThreadBorrower(f"vivace.to_thread.run_sync-{next(_call_numbers)}")

    context = contextvars.copy_context()
    # sniffio consults this variable when its thread-local is unset, as it is in the
    # worker; a value set by some other library must not make the worker look async.
    context.run(sniffio.current_async_library_cvar.set, None)

    def worker_fn() -> RetT:
        previous = _worker_local.call
        _worker_local.call = call
        try:
            result = context.run(sync_fn, *args)
        finally:
            _worker_local.call = previous
        if inspect.iscoroutine(result):
            result.close()  # don't leave a never-awaited warning behind
            raise TypeError(
                f"to_thread.run_sync expected a sync function, but {_fn_name(sync_fn)} "
                "appears to be asynchronous: await it directly instead of running it "
                "in a thread"
            )
        return result

    def finish_in_run(result: outcome.Outcome[RetT]) -> None:
        # In the run's thread. The release is user code (any limiter-like object): its
        # error replaces the result, chained to the result's own error if any.
        def release_then_unwrap() -> RetT:
            try:
                return result.unwrap()
            finally:
                limiter.release_on_behalf_of(borrower)

        final = outcome.capture(release_then_unwrap)
        if call.task is not None:
            reschedule(call.task, outcome.Value(final))

    def deliver(result: outcome.Outcome[RetT]) -> None:
        # In the worker. If the run is over, the caller abandoned us long ago.
        try:
            token.run_sync_soon(finish_in_run, result)
        except RunFinishedError:
            pass

    await limiter.acquire_on_behalf_of(borrower)
    active = _active_threads()
    active.count += 1
    try:
        try:
            start_thread_soon(worker_fn, deliver, thread_name)
        except BaseException:
            limiter.release_on_behalf_of(borrower)
            raise

        def abort(raise_cancel: RaiseCancelT) -> Abort:
            call.raise_cancel = raise_cancel
            if abandon:
                call.task = None
                return Abort.SUCCEEDED
            return Abort.FAILED

        home_context = task.context
        while True:
            message = await wait_task_rescheduled(abort)
            if isinstance(message, outcome.Outcome):
                return message.unwrap()
            await message.serve_in_caller(task, home_context)
            del message
    finally:
        active.count -= 1
        if not active.count:
            active.idle_waiters.unpark_all()


# -- calls from a worker back into the run ----------------------------------------------


@disable_ki_protection
def _call_sync(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = fn(*args)
    if inspect.iscoroutine(result):
        result.close()
        raise TypeError(
            f"from_thread.run_sync expected a synchronous function, but {_fn_name(fn)} "
            "appears to be asynchronous: use from_thread.run for async functions"
        )
    return result


def _coroutine_or_error(afn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    try:
        coro = afn(*args)
    except TypeError:
        if isinstance(afn, collections.abc.Coroutine):
            afn.close()
            raise TypeError(
                f"from_thread.run expected an async function, but got a coroutine object "
                f"{afn!r}: pass the function and its arguments, as in "
                "from_thread.run(fn, arg), not from_thread.run(fn(arg))"
            ) from None
        raise
    if isinstance(coro, collections.abc.Coroutine):
        return coro
    if inspect.isawaitable(coro) or isinstance(coro, collections.abc.Generator):
        raise TypeError(
            f"from_thread.run got {coro!r} from {_fn_name(afn)}, which is not a "
            "coroutine - is this from a library written for asyncio/twisted/tornado? "
            "It needs a compatibility shim to run under trio's API"
        )
    raise TypeError(
        f"from_thread.run expected an async function, but {_fn_name(afn)} appears to "
        f"be synchronous (it returned {coro!r}): use from_thread.run_sync for sync "
        "functions"
    )


@disable_ki_protection
async def _call_async(afn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> Any:
    return await _coroutine_or_error(afn, args)


class _Request:
    """One from_thread call, waiting in its worker for ``reply``."""

    __slots__ = ("args", "context", "fn", "reply")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.context = contextvars.copy_context()
        self.reply: SimpleQueue[outcome.Outcome[Any]] = SimpleQueue()

    def deliver_to_caller(self, call: _ThreadCall) -> None:
        """In the run's thread: wake the to_thread caller with this request."""
        task = call.task
        assert task is not None, "a caller that cannot abandon its thread is parked"
        reschedule(task, outcome.Value(self))

    async def serve_in_caller(self, task: Task, home_context: contextvars.Context) -> None:
        raise NotImplementedError

    def submit_to_system(self, token: TrioToken) -> None:
        raise NotImplementedError


class _SyncRequest(_Request):
    __slots__ = ()

    async def serve_in_caller(self, task: Task, home_context: contextvars.Context) -> None:
        self.reply.put(outcome.capture(self.context.run, _call_sync, self.fn, self.args))

    def submit_to_system(self, token: TrioToken) -> None:
        token.run_sync_soon(self.serve_as_callback)

    def serve_as_callback(self) -> None:
        self.reply.put(outcome.capture(self.context.run, _call_sync, self.fn, self.args))


class _AsyncRequest(_Request):
    __slots__ = ()

    def deliver_to_caller(self, call: _ThreadCall) -> None:
        task = call.task
        assert task is not None, "a caller that cannot abandon its thread is parked"
        # The task's next step runs in the request's context; it restores its own.
        task.context = self.context
        reschedule(task, outcome.Value(self))

    async def serve_in_caller(self, task: Task, home_context: contextvars.Context) -> None:
        try:
            result = await outcome.acapture(_call_async, self.fn, self.args)
        finally:
            task.context = home_context
        # No await between this reply and the caller parking again (see design notes).
        self.reply.put(result)

    def submit_to_system(self, token: TrioToken) -> None:
        token.run_sync_soon(self.spawn_in_system_nursery)

    def spawn_in_system_nursery(self) -> None:
        try:
            spawn_system_task(self.serve_as_system_task, name=self.fn, context=self.context)
        except RuntimeError:
            # The run is shutting down and its system nursery takes no new tasks.
            self.reply.put(
                outcome.Error(RunFinishedError("the run is finishing and takes no new tasks"))
            )

    async def serve_as_system_task(self) -> None:
        self.reply.put(await outcome.acapture(_call_async, self.fn, self.args))


def _send_to_run(request: _Request, trio_token: TrioToken | None) -> Any:
    call = None
    if trio_token is None:
        call = _worker_local.call
        if call is None:
            raise RuntimeError(
                "this thread was not started by to_thread.run_sync, so there is no run "
                "to go back to: pass trio_token=... (get one inside the run from "
                "lowlevel.current_trio_token())"
            )
        token = call.token
    elif isinstance(trio_token, TrioToken):
        token = trio_token
    else:
        raise RuntimeError(f"trio_token must be a TrioToken, not {trio_token!r}")
    if in_trio_task():
        raise RuntimeError(
            "this is a blocking function; call it from a thread (calling it from the "
            "run's own thread would deadlock)"
        )
    if call is None or call.abandon:
        request.submit_to_system(token)
    else:
        token.run_sync_soon(request.deliver_to_caller, call)
    return request.reply.get().unwrap()


def from_thread_run(
    afn: Callable[..., Awaitable[RetT]], *args: object, trio_token: TrioToken | None = None
) -> RetT:
    """From a thread, run ``await afn(*args)`` in the run and block until it finishes;
    return or raise its result.

    In a thread started by ``to_thread.run_sync`` (and with no ``trio_token``), it runs
    inside the waiting task, so a cancel of that call cancels ``afn`` too (if the call
    used ``abandon_on_cancel=True``, it runs as a system task instead, since the caller
    may be gone). From any other thread pass ``trio_token`` (from
    ``lowlevel.current_trio_token()``); ``afn`` then runs as a system task, and is
    cancelled when the run ends. Raises ``RunFinishedError`` if the run is over or
    shutting down, and ``RuntimeError`` if called from the run's own thread (which
    would deadlock) or with no way to find the run.
    """
    return _send_to_run(_AsyncRequest(afn, args), trio_token)


def from_thread_run_sync(
    fn: Callable[..., RetT], *args: object, trio_token: TrioToken | None = None
) -> RetT:
    """From a thread, call ``fn(*args)`` in the run's thread and block until it
    returns; return or raise its result.

    The run is found as for ``from_thread.run``. Raises ``RunFinishedError`` if the run
    is over, ``RuntimeError`` if called from the run's own thread or with no way to find
    the run, and ``TypeError`` if ``fn`` is an async function.
    """
    return _send_to_run(_SyncRequest(fn, args), trio_token)


def from_thread_check_cancelled() -> None:
    """In a thread started by ``to_thread.run_sync``, raise ``Cancelled`` if that call
    has been cancelled (whether or not it abandoned the thread); else return.

    Lets a long job in a thread stop early. Once a cancel has reached the call, this
    keeps raising, even if the cancel scope was later shielded. Raises
    ``RuntimeError`` in any other thread.
    """
    call = _worker_local.call
    if call is None:
        raise RuntimeError(
            "this thread was not started by to_thread.run_sync, so it has no call to "
            "check for cancellation"
        )
    raise_cancel = call.raise_cancel
    if raise_cancel is not None:
        raise_cancel()
