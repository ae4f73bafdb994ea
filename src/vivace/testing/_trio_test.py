"""``trio_test``: turn an async test function into a sync one that runs it."""

from __future__ import annotations

from functools import partial, wraps
from typing import TYPE_CHECKING, Any, TypeVar

from .._core import Clock, Instrument, run

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

RetT = TypeVar("RetT")


def trio_test(fn: Callable[..., Awaitable[RetT]]) -> Callable[..., RetT]:
    """Decorator for async test functions: calling the result runs *fn* in a new run.

    Keyword arguments that are Clock or Instrument instances (e.g. pytest fixtures) are
    also passed to ``run`` as its clock (at most one) and instruments.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> RetT:
        __tracebackhide__ = True
        clocks = [value for value in kwargs.values() if isinstance(value, Clock)]
        if len(clocks) > 1:
            raise ValueError("too many clocks spoil the broth!")
        instruments = [value for value in kwargs.values() if isinstance(value, Instrument)]
        return run(
            partial(fn, *args, **kwargs),
            clock=clocks[0] if clocks else None,
            instruments=instruments,
        )

    return wrapper
