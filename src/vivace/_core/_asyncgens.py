"""Async generator finalization, trio-style.

Design notes
------------
Async generators first iterated inside one of our tasks are "ours": when one is
garbage-collected unfinished we cannot run its ``aclose()`` from the GC callback, so the
finalizer hook queues (thread- and reentrancy-safely, via the entry queue) a system task
that closes it inside the run, with cancellation already requested so its cleanup cannot
block. At shutdown, after the main task and system tasks are gone, every still-alive
async generator of ours is closed the same way, in batches until none remain. Async
generators first iterated outside our tasks (another loop in a guest run, plain sync
code) are handed to the hooks that were installed before us.
"""

from __future__ import annotations

import logging
import sys
import warnings
import weakref
from typing import TYPE_CHECKING, Any

from ._abort import Abort
from ._ki import disable_ki_protection, enable_ki_protection
from ._util import name_asyncgen

if TYPE_CHECKING:
    from collections.abc import Callable

ASYNCGEN_LOGGER = logging.getLogger("trio.async_generator_errors")


@disable_ki_protection
def _call_unprotected(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class AsyncGenerators:
    __slots__ = ("alive", "foreign", "prev_hooks", "trailing_needs_finalize")

    def __init__(self) -> None:
        # Weak while the run is going: an abandoned generator must be collectable so its
        # finalizer fires. Strong (a plain set) once shutdown finalization starts.
        self.alive: Any = weakref.WeakSet()
        self.foreign: set[int] = set()
        self.trailing_needs_finalize: set[Any] = set()
        self.prev_hooks: Any = None

    def install_hooks(self, runner: Any) -> None:
        def firstiter(agen: Any) -> None:
            if runner.current_task is not None:
                self.alive.add(agen)
            else:
                self.foreign.add(id(agen))
                if self.prev_hooks.firstiter is not None:
                    self.prev_hooks.firstiter(agen)

        def finalize_in_run(agen: Any, agen_name: str) -> None:
            try:
                runner.spawn_system_task(
                    self._finalize_one, agen, agen_name,
                    name=f"close asyncgen {agen_name} (abandoned)",
                )
            except RuntimeError:
                # The system nursery is closed: shutdown finalization picks it up.
                self.trailing_needs_finalize.add(agen)

        @enable_ki_protection
        def finalizer(agen: Any) -> None:
            ours = id(agen) not in self.foreign
            self.foreign.discard(id(agen))
            agen_name = name_asyncgen(agen)
            if ours:
                runner.entry_queue.run_sync_soon(finalize_in_run, agen, agen_name)
                warnings.warn(
                    f"Async generator {agen_name!r} was garbage collected before it had "
                    "been exhausted. Surround its use in 'async with aclosing(...):' to "
                    "ensure that it gets cleaned up as soon as you're done using it.",
                    ResourceWarning,
                    stacklevel=2,
                    source=agen,
                )
            else:
                prev_finalizer = self.prev_hooks.finalizer
                if prev_finalizer is not None:
                    _call_unprotected(prev_finalizer, agen)
                else:
                    closer = agen.aclose()
                    try:
                        _call_unprotected(closer.send, None)
                    except StopIteration:
                        pass
                    else:
                        raise RuntimeError(
                            f"Non-vivace async generator {agen_name!r} awaited something "
                            "during finalization; install a finalization hook to support "
                            "this, or wrap it in 'async with aclosing(...):'"
                        )

        self.prev_hooks = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)

    async def finalize_remaining(self, runner: Any) -> None:
        from ._impl import wait_task_rescheduled

        # Hold the survivors strongly from here on, so none is finalized by the GC while
        # we are closing its siblings.
        self.alive = set(self.alive)
        # Let any finalizer callbacks that are already queued run first.
        runner.entry_queue.run_sync_soon(runner.reschedule, runner.init_task)
        await wait_task_rescheduled(lambda _: Abort.FAILED)
        self.alive.update(self.trailing_needs_finalize)
        self.trailing_needs_finalize.clear()
        while self.alive:
            batch = self.alive
            self.alive = set()
            for agen in batch:
                await self._finalize_one(agen, name_asyncgen(agen))

    def close(self) -> None:
        if self.prev_hooks is not None:
            sys.set_asyncgen_hooks(*self.prev_hooks)

    async def _finalize_one(self, agen: Any, name: object) -> None:
        from ._cancel import CancelScope

        try:
            # Cancelled from the start: cleanup code may not block at shutdown.
            with CancelScope(shield=True) as scope:
                scope.cancel(
                    reason="disallow async work when closing async generators during "
                    "trio shutdown"
                )
                await agen.aclose()
        except BaseException:
            ASYNCGEN_LOGGER.exception(
                "Exception ignored during finalization of async generator %r -- surround "
                "your use of the generator in 'async with aclosing(...):' to raise "
                "exceptions like this in the context where they're generated",
                name,
            )
