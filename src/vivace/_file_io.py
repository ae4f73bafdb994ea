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
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._abc import AsyncResource
from ._core import CancelScope, checkpoint_if_cancelled
from ._threads import to_thread_run_sync

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import IO, AnyStr, BinaryIO, Literal, Protocol, Self, TypeAlias

    from _typeshed import (
        FileDescriptorOrPath,
        OpenBinaryMode,
        OpenBinaryModeReading,
        OpenBinaryModeUpdating,
        OpenBinaryModeWriting,
        OpenTextMode,
        WriteableBuffer,
    )

    _Opener: TypeAlias = Callable[[str, int], int]
    _T = TypeVar("_T")
    _T_co = TypeVar("_T_co", covariant=True)
    _T_contra = TypeVar("_T_contra", contravariant=True)

    # What a wrapped file must have for each method of the wrapper to apply: the
    # wrapper's methods take ``self`` typed with these, so ``open_file(p, "rb")``'s
    # ``read()`` gives bytes, a text file's gives str, and a method the file lacks is a
    # type error, as it is an AttributeError at run time.
    class _HasRead(Protocol[_T_co]):
        def read(self, size: int = ..., /) -> _T_co: ...

    class _HasReadline(Protocol[_T_co]):
        def readline(self, size: int = ..., /) -> _T_co: ...

    class _HasReadlines(Protocol[_T]):
        def readlines(self, hint: int = ..., /) -> list[_T]: ...

    class _HasWrite(Protocol[_T_contra]):
        def write(self, data: _T_contra, /) -> int: ...

    class _HasWritelines(Protocol[_T_contra]):
        def writelines(self, lines: Iterable[_T_contra], /) -> None: ...

    class _HasBinaryReads(Protocol):
        def peek(self, size: int = ..., /) -> bytes: ...
        def read1(self, size: int = ..., /) -> bytes: ...
        def readinto1(self, buffer: WriteableBuffer, /) -> int: ...

    class _HasReadall(Protocol):
        def readall(self) -> bytes: ...

    class _HasReadinto(Protocol):
        def readinto(self, buffer: WriteableBuffer, /) -> int | None: ...

    class _HasSeek(Protocol):
        def seek(self, offset: int, whence: int = ..., /) -> int: ...
        def tell(self) -> int: ...

    class _HasTruncate(Protocol):
        def truncate(self, size: int | None = ..., /) -> int: ...

    class _HasFlush(Protocol):
        def flush(self) -> None: ...

    class _HasBuffer(Protocol):
        @property
        def buffer(self) -> BinaryIO: ...

    class _HasRaw(Protocol):
        @property
        def raw(self) -> io.RawIOBase: ...

    class _HasTextAttributes(Protocol):
        @property
        def encoding(self) -> str: ...
        @property
        def errors(self) -> str | None: ...
        @property
        def line_buffering(self) -> bool: ...
        @property
        def newlines(self) -> Any: ...

    class _HasFileIOAttributes(Protocol):
        @property
        def closefd(self) -> bool: ...

    class _HasGetvalue(Protocol[_T_co]):
        def getvalue(self) -> _T_co: ...

    class _HasGetbuffer(Protocol):
        def getbuffer(self) -> memoryview: ...


__all__ = ["AsyncIOWrapper", "open_file", "wrap_file"]

FileT = TypeVar("FileT")
# Covariant: an AsyncIOWrapper of a TextIOWrapper is one of anything that can read str.
FileT_co = TypeVar("FileT_co", covariant=True)

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


class AsyncIOWrapper(AsyncResource, Generic[FileT_co]):
    """An async view of a file object (from ``open_file``/``wrap_file``): blocking
    methods are coroutine functions run in worker threads; supports ``async for`` over
    lines and ``async with``."""

    def __init__(self, file: FileT_co) -> None:
        self._wrapped = file

    @property
    def wrapped(self) -> FileT_co:
        """The underlying (synchronous) file object."""
        return self._wrapped

    if TYPE_CHECKING:
        # What __getattr__ provides, as type checkers should see it (see _PASSTHROUGH
        # and _BLOCKING): attributes and synchronous methods passed through ...
        @property
        def closed(self: AsyncIOWrapper[io.IOBase]) -> bool: ...
        @property
        def mode(self: AsyncIOWrapper[IO[Any]]) -> str: ...
        @property
        def name(self: AsyncIOWrapper[IO[Any]]) -> Any: ...
        @property
        def buffer(self: AsyncIOWrapper[_HasBuffer]) -> BinaryIO: ...
        @property
        def raw(self: AsyncIOWrapper[_HasRaw]) -> io.RawIOBase: ...
        @property
        def encoding(self: AsyncIOWrapper[_HasTextAttributes]) -> str: ...
        @property
        def errors(self: AsyncIOWrapper[_HasTextAttributes]) -> str | None: ...
        @property
        def line_buffering(self: AsyncIOWrapper[_HasTextAttributes]) -> bool: ...
        @property
        def newlines(self: AsyncIOWrapper[_HasTextAttributes]) -> Any: ...
        @property
        def closefd(self: AsyncIOWrapper[_HasFileIOAttributes]) -> bool: ...
        def fileno(self: AsyncIOWrapper[IO[Any]]) -> int: ...
        def isatty(self: AsyncIOWrapper[IO[Any]]) -> bool: ...
        def readable(self: AsyncIOWrapper[IO[Any]]) -> bool: ...
        def seekable(self: AsyncIOWrapper[IO[Any]]) -> bool: ...
        def writable(self: AsyncIOWrapper[IO[Any]]) -> bool: ...
        def getvalue(self: AsyncIOWrapper[_HasGetvalue[_T]]) -> _T: ...
        def getbuffer(self: AsyncIOWrapper[_HasGetbuffer]) -> memoryview: ...

        # ... and the blocking methods, as coroutine functions.
        async def read(self: AsyncIOWrapper[_HasRead[AnyStr]], size: int = -1, /) -> AnyStr: ...
        async def readline(
            self: AsyncIOWrapper[_HasReadline[AnyStr]], size: int = -1, /
        ) -> AnyStr: ...
        async def readlines(
            self: AsyncIOWrapper[_HasReadlines[AnyStr]], hint: int = -1, /
        ) -> list[AnyStr]: ...
        async def write(self: AsyncIOWrapper[_HasWrite[_T]], data: _T, /) -> int: ...
        async def writelines(
            self: AsyncIOWrapper[_HasWritelines[_T]], lines: Iterable[_T], /
        ) -> None: ...
        async def peek(self: AsyncIOWrapper[_HasBinaryReads], size: int = 0, /) -> bytes: ...
        async def read1(self: AsyncIOWrapper[_HasBinaryReads], size: int = -1, /) -> bytes: ...
        async def readinto1(
            self: AsyncIOWrapper[_HasBinaryReads], buffer: WriteableBuffer, /
        ) -> int: ...
        async def readall(self: AsyncIOWrapper[_HasReadall]) -> bytes: ...
        async def readinto(
            self: AsyncIOWrapper[_HasReadinto], buffer: WriteableBuffer, /
        ) -> int | None: ...
        async def seek(
            self: AsyncIOWrapper[_HasSeek], offset: int, whence: int = 0, /
        ) -> int: ...
        async def tell(self: AsyncIOWrapper[_HasSeek]) -> int: ...
        async def truncate(
            self: AsyncIOWrapper[_HasTruncate], size: int | None = None, /
        ) -> int: ...
        async def flush(self: AsyncIOWrapper[_HasFlush]) -> None: ...

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

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self: AsyncIOWrapper[_HasReadline[AnyStr]]) -> AnyStr:
        line = await self.readline()
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


# The overloads follow the stdlib's ``open``: the mode (and buffering) decide the file type.
@overload
async def open_file(
    file: FileDescriptorOrPath,
    mode: OpenTextMode = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
) -> AsyncIOWrapper[io.TextIOWrapper]: ...
@overload
async def open_file(
    file: FileDescriptorOrPath,
    mode: OpenBinaryMode,
    buffering: Literal[0],
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
) -> AsyncIOWrapper[io.FileIO]: ...
@overload
async def open_file(
    file: FileDescriptorOrPath,
    mode: OpenBinaryModeUpdating,
    buffering: Literal[-1, 1] = -1,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
) -> AsyncIOWrapper[io.BufferedRandom]: ...
@overload
async def open_file(
    file: FileDescriptorOrPath,
    mode: OpenBinaryModeWriting,
    buffering: Literal[-1, 1] = -1,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
) -> AsyncIOWrapper[io.BufferedWriter]: ...
@overload
async def open_file(
    file: FileDescriptorOrPath,
    mode: OpenBinaryModeReading,
    buffering: Literal[-1, 1] = -1,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
) -> AsyncIOWrapper[io.BufferedReader]: ...
@overload
async def open_file(
    file: FileDescriptorOrPath,
    mode: OpenBinaryMode,
    buffering: int = -1,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
) -> AsyncIOWrapper[BinaryIO]: ...
@overload
async def open_file(
    file: FileDescriptorOrPath,
    mode: str,
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
) -> AsyncIOWrapper[IO[Any]]: ...
async def open_file(
    file: FileDescriptorOrPath,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: _Opener | None = None,
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
