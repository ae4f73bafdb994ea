"""Validation of what users pass to spawn functions: it must produce a coroutine.

Every spawn path goes through ``coroutine_or_error`` so the common mistakes (passing a
coroutine object instead of a function, an asyncio function, a sync function) get an
error that says how to fix them.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
from typing import TYPE_CHECKING, Any

import sniffio

from ._run_context import library_name

if TYPE_CHECKING:
    from collections.abc import Callable

_CoroutineType = types.CoroutineType


def _looks_foreign(value: object) -> bool:
    # Values produced by other event loops' async functions: generator-based coroutines,
    # asyncio futures, twisted Deferreds.
    if isinstance(value, collections.abc.Generator):
        return True
    if getattr(value, "_asyncio_future_blocking", None) is not None:
        return True
    return value.__class__.__name__ in ("Future", "Deferred")


def coroutine_or_error(
    async_fn: Callable[..., Any], *args: object
) -> collections.abc.Coroutine[Any, Any, Any]:
    """Call ``async_fn(*args)`` and insist that it produced a coroutine."""
    # Sync code that runs before the first await must see the right library; inside a
    # run the name is already set, so skip the two thread-local writes then.
    prev = sniffio.thread_local.name
    name = library_name()
    if prev != name:
        sniffio.thread_local.name = name
    try:
        coro = async_fn(*args)
    except TypeError:
        if isinstance(async_fn, collections.abc.Coroutine):
            # The user wrote run(f()) instead of run(f): don't leak a never-awaited warning.
            async_fn.close()
            name = getattr(async_fn, "__name__", "fn")
            # The message's opening words are trio's: users match on them.
            raise TypeError(
                "Trio was expecting an async function, but instead it got a coroutine "
                f"object {async_fn!r}\n\nProbably you wrote something like\n\n"
                f"  vivace.run({name}(...))            # incorrect!\n"
                f"  nursery.start_soon({name}(...))  # incorrect!\n\n"
                "Pass the function and its arguments instead (no parentheses):\n\n"
                f"  vivace.run({name}, ...)            # correct!\n"
                f"  nursery.start_soon({name}, ...)  # correct!"
            ) from None
        if _looks_foreign(async_fn):
            raise TypeError(
                f"expected an async function, but got {async_fn!r} - is this from a "
                "library written for asyncio/twisted/tornado? It needs a compatibility "
                "shim to run under trio's API."
            ) from None
        raise
    finally:
        if prev != name:
            sniffio.thread_local.name = prev

    if type(coro) is _CoroutineType:
        return coro
    if not isinstance(coro, collections.abc.Coroutine):
        if _looks_foreign(coro):
            raise TypeError(
                f"got unexpected {coro!r} - is this from a library written for "
                "asyncio/twisted/tornado? It needs a compatibility shim to run under "
                "trio's API."
            )
        if inspect.isasyncgen(coro):
            raise TypeError(
                "expected an async function but got an async generator "
                f"{coro!r}; iterate it with 'async for' inside an async function instead"
            )
        qualname = getattr(async_fn, "__qualname__", async_fn)
        raise TypeError(
            f"expected an async function, but {qualname!r} appears to be synchronous: "
            "define it with 'async def' (or pass the async function itself, not the "
            "result of calling it)"
        )
    return coro
