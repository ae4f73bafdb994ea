"""The one thread-safe, signal-safe way into a run: ``TrioToken.run_sync_soon``.

Design notes
------------
Callbacks are appended under a lock (an RLock: a signal handler may interrupt the
holder on the same thread) and a byte is written to a wakeup socketpair so a blocked
I/O wait returns. A system task drains the queue in bounded rounds: callbacks queued
by callbacks run in the next round, after a checkpoint, so one busy producer cannot
starve the run. When the run shuts down, ``done`` is set under the lock, so every call
that did not raise RunFinishedError is guaranteed to run.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any, NoReturn

from ._exceptions import Cancelled, RunFinishedError
from ._util import NoPublicConstructor, final
from ._wakeup import WakeupSocketpair

if TYPE_CHECKING:
    from collections.abc import Callable

Job = tuple["Callable[..., object]", tuple[Any, ...]]


class EntryQueue:
    __slots__ = ("done", "idempotent_queue", "lock", "queue", "wakeup")

    def __init__(self) -> None:
        self.queue: deque[Job] = deque()
        self.idempotent_queue: dict[Job, None] = {}
        self.wakeup: WakeupSocketpair = WakeupSocketpair()
        self.done: bool = False
        self.lock: threading.RLock = threading.RLock()

    async def task(self) -> None:
        from ._run import checkpoint, current_task, spawn_system_task

        def run_cb(job: Job) -> None:
            sync_fn, args = job
            try:
                sync_fn(*args)
            except BaseException as exc:
                # A crashing callback is a bug the whole run must hear about: re-raise
                # it from a fresh system task, which turns it into TrioInternalError.
                async def kill_everything(exc: BaseException) -> NoReturn:
                    raise exc

                try:
                    spawn_system_task(kill_everything, exc)
                except RuntimeError:
                    # The system nursery is already closed (we are shutting down).
                    nursery = current_task().parent_nursery
                    if nursery is None:  # pragma: no cover
                        raise
                    nursery.start_soon(kill_everything, exc)

        def drain_one_round() -> None:
            # Only what is queued now: callbacks queued by these callbacks wait for the
            # next round, after a checkpoint, so a self-requeuing callback cannot starve
            # the other tasks.
            queue = self.queue
            for _ in range(len(queue)):
                run_cb(queue.popleft())
            pending = list(self.idempotent_queue)
            for job in pending:
                self.idempotent_queue.pop(job)
                run_cb(job)

        try:
            while True:
                drain_one_round()
                if self.queue or self.idempotent_queue:
                    await checkpoint()
                else:
                    await self.wakeup.wait_woken()
        except Cancelled:
            # Shutdown: refuse new callbacks, then run the ones already accepted.
            with self.lock:
                self.done = True
            drain_one_round()

    def close(self) -> None:
        self.wakeup.close()

    def size(self) -> int:
        return len(self.queue) + len(self.idempotent_queue)

    def run_sync_soon(
        self, sync_fn: Callable[..., object], *args: object, idempotent: bool = False
    ) -> None:
        with self.lock:
            if self.done:
                raise RunFinishedError("run() has exited")
            if idempotent:
                self.idempotent_queue[(sync_fn, args)] = None
            else:
                self.queue.append((sync_fn, args))
            self.wakeup.wakeup_thread_and_signal_safe()


@final
class TrioToken(metaclass=NoPublicConstructor):
    """Identifies one call to ``run`` and lets other threads (and signal handlers)
    schedule work in it; get it from ``lowlevel.current_trio_token()``."""

    __slots__ = ("__weakref__", "_reentry_queue")

    def __init__(self, reentry_queue: EntryQueue) -> None:
        self._reentry_queue = reentry_queue

    def run_sync_soon(
        self, sync_fn: Callable[..., object], *args: object, idempotent: bool = False
    ) -> None:
        """Arrange for ``sync_fn(*args)`` to run soon inside the run, as part of a
        KI-protected system task. Safe from any thread and from signal handlers.

        Calls run in FIFO order (``idempotent=True`` calls, which must be hashable and
        are deduplicated while pending, are ordered among themselves). Raises
        ``RunFinishedError`` if the run has finished; any call that does not raise is
        guaranteed to run. A callback that raises crashes the run with
        TrioInternalError.
        """
        self._reentry_queue.run_sync_soon(sync_fn, *args, idempotent=idempotent)
