"""Async file objects: ``open_file`` and ``wrap_file``.

Design notes
------------
An ``AsyncIOWrapper`` holds a regular file object. Two word lists decide what it
exposes: attributes that are cheap to read are passed through as they are; methods that
may block become coroutine functions that run the real method in a worker thread. Any
other attribute is an AttributeError, even if the file has it -- the async surface stays
the same whatever file type is wrapped. The coroutine functions are made on first access
and then stored on the instance, so later lookups skip ``__getattr__``.
"""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._abc import AsyncResource
from ._core import CancelScope, checkpoint_if_cancelled
from ._threads import to_thread_run_sync

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["AsyncIOWrapper", "open_file", "wrap_file"]

FileT = TypeVar("FileT")

_PASSTHROUGH = frozenset(
    """buffer closed closefd encoding errors fileno getbuffer getvalue isatty
    line_buffering mode name newlines raw readable seekable writable""".split()
)
_BLOCKING = frozenset(
    """flush peek read read1 readall readinto readinto1 readline readlines seek tell
    truncate write writelines""".split()
)


def _runs_in_thread(sync_method: Callable[..., Any], name: str, file_type: type) -> Any:
    async def method(*args: Any, **kwargs: Any) -> Any:
        return await to_thread_run_sync(functools.partial(sync_method, *args, **kwargs))

    method.__name__ = name
    method.__qualname__ = f"AsyncIOWrapper.{name}"
    where = f"{file_type.__module__}.{file_type.__qualname__}.{name}"
    method.__doc__ = f"Like :meth:`{where}`, but async: it runs in a worker thread."
    return method


class AsyncIOWrapper(AsyncResource, Generic[FileT]):
    """An async view of a file object (from ``open_file``/``wrap_file``): blocking
    methods are coroutine functions run in worker threads; supports ``async for`` over
    lines and ``async with``."""

    def __init__(self, file: FileT) -> None:
        self._wrapped = file

    @property
    def wrapped(self) -> FileT:
        """The underlying (synchronous) file object."""
        return self._wrapped

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            if name in _PASSTHROUGH:
                return getattr(self._wrapped, name)
            if name in _BLOCKING:
                sync_method = getattr(self._wrapped, name)
                # __class__ rather than type(): a spec'd mock reports what it imitates.
                method = _runs_in_thread(sync_method, name, self._wrapped.__class__)
                setattr(self, name, method)
                return method
            raise AttributeError(name)

    def __dir__(self) -> list[str]:
        available = {name for name in _PASSTHROUGH | _BLOCKING if hasattr(self._wrapped, name)}
        return sorted(set(super().__dir__()) | available)

    def __aiter__(self) -> AsyncIOWrapper[FileT]:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()  # type: ignore[attr-defined]
        if not line:
            raise StopAsyncIteration
        return line

    async def detach(self) -> AsyncIOWrapper[Any]:
        """Detach the underlying raw stream (in a thread) and return it, wrapped."""
        raw = await to_thread_run_sync(self._wrapped.detach)  # type: ignore[attr-defined]
        return wrap_file(raw)

    async def aclose(self) -> None:
        """Close the file in a worker thread. The close always completes; if the call
        was cancelled, Cancelled is raised afterwards."""
        with CancelScope(shield=True):
            await to_thread_run_sync(self._wrapped.close)  # type: ignore[attr-defined]
        await checkpoint_if_cancelled()


async def open_file(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
) -> AsyncIOWrapper[Any]:
    """Like :func:`io.open`, run in a worker thread; returns an async file object."""
    raw = await to_thread_run_sync(
        functools.partial(io.open, file, mode, buffering, encoding, errors, newline, closefd, opener)
    )
    return wrap_file(raw)


def wrap_file(file: FileT) -> AsyncIOWrapper[FileT]:
    """Wrap an already open file object in an async one. The object must have
    ``close`` and ``read`` or ``write`` (TypeError otherwise)."""
    has_io = hasattr(file, "read") or hasattr(file, "write")
    if not (hasattr(file, "close") and has_io):
        raise TypeError(
            f"{file!r} does not implement required duck-file methods: "
            "close and (read or write)"
        )
    return AsyncIOWrapper(file)
