"""``Path``: :class:`pathlib.Path` with coroutine methods for everything that touches
the filesystem.

Design notes
------------
``Path`` is a :class:`pathlib.PurePath`, so pure operations (joining, parents, suffixes)
are inherited and already return our class. The filesystem methods are generated from
three word lists -- by what they return: a plain value, one path, or many paths -- into
coroutine functions that build the matching concrete :class:`pathlib.Path` and run the
method in a worker thread, converting returned paths back to ours (a sequence of paths
is collected into a list inside the thread, so no blocking iteration escapes it).
"""

from __future__ import annotations

import io
import os
import pathlib
import sys
from functools import partial
from typing import IO, TYPE_CHECKING, Any, BinaryIO, ClassVar, overload

from ._core import final
from ._file_io import AsyncIOWrapper, wrap_file
from ._threads import to_thread_run_sync

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Literal, Self

    from _typeshed import (
        OpenBinaryMode,
        OpenBinaryModeReading,
        OpenBinaryModeUpdating,
        OpenBinaryModeWriting,
        OpenTextMode,
        ReadableBuffer,
        StrOrBytesPath,
        StrPath,
    )

__all__ = ["Path", "PosixPath", "WindowsPath"]

_GIVES_VALUE = """stat lstat chmod lchmod exists is_dir is_file is_symlink is_socket is_fifo
    is_block_device is_char_device is_mount is_junction owner group samefile mkdir rmdir
    touch unlink symlink_to hardlink_to link_to read_bytes read_text write_bytes
    write_text""".split()
_GIVES_PATH = "readlink rename replace resolve absolute expanduser".split()
_GIVES_PATHS = "glob rglob iterdir".split()


def _make_method(name: str, convert: Callable[[Any, Any], Any] | None) -> Any:
    sync_method = getattr(pathlib.Path, name)

    def in_thread(self: Path, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = sync_method(self._sync_class(self), *args, **kwargs)
        return result if convert is None else convert(type(self), result)

    async def method(self: Path, *args: Any, **kwargs: Any) -> Any:
        return await to_thread_run_sync(partial(in_thread, self, args, kwargs))

    method.__name__ = name
    method.__qualname__ = f"Path.{name}"
    method.__doc__ = (
        f"Path.{name}: like :meth:`pathlib.Path.{name}`, but a coroutine function that "
        "runs in a worker thread."
        + (" Returns a list of paths." if name in _GIVES_PATHS else "")
    )
    return method


def _one_path(cls: type[Path], result: Any) -> Path:
    return cls(result)


def _many_paths(cls: type[Path], result: Any) -> list[Path]:
    return [cls(item) for item in result]


class Path(pathlib.PurePath):
    """An async :class:`pathlib.Path`: pure operations are synchronous as usual; every
    method that touches the filesystem is a coroutine function run in a worker thread.
    ``Path(...)`` gives a :class:`PosixPath` or :class:`WindowsPath`."""

    __slots__ = ()
    _sync_class: ClassVar[type[pathlib.Path]]

    def __new__(cls, *args: Any) -> Self:
        if cls is Path:
            cls = WindowsPath if os.name == "nt" else PosixPath  # type: ignore[assignment]
        return super().__new__(cls, *args)

    def __repr__(self) -> str:
        # trio's spelling: code written for trio compares against it.
        return f"trio.Path({str(self)!r})"

    @classmethod
    async def cwd(cls) -> Self:
        """Like :meth:`pathlib.Path.cwd`, run in a worker thread."""
        return cls(await to_thread_run_sync(pathlib.Path.cwd))

    @classmethod
    async def home(cls) -> Self:
        """Like :meth:`pathlib.Path.home`, run in a worker thread."""
        return cls(await to_thread_run_sync(pathlib.Path.home))

    # As with open_file, the overloads follow the stdlib's: the mode decides the file type.
    @overload
    async def open(
        self,
        mode: OpenTextMode = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> AsyncIOWrapper[io.TextIOWrapper]: ...
    @overload
    async def open(
        self,
        mode: OpenBinaryMode,
        buffering: Literal[0],
        encoding: None = None,
        errors: None = None,
        newline: None = None,
    ) -> AsyncIOWrapper[io.FileIO]: ...
    @overload
    async def open(
        self,
        mode: OpenBinaryModeUpdating,
        buffering: Literal[-1, 1] = -1,
        encoding: None = None,
        errors: None = None,
        newline: None = None,
    ) -> AsyncIOWrapper[io.BufferedRandom]: ...
    @overload
    async def open(
        self,
        mode: OpenBinaryModeWriting,
        buffering: Literal[-1, 1] = -1,
        encoding: None = None,
        errors: None = None,
        newline: None = None,
    ) -> AsyncIOWrapper[io.BufferedWriter]: ...
    @overload
    async def open(
        self,
        mode: OpenBinaryModeReading,
        buffering: Literal[-1, 1] = -1,
        encoding: None = None,
        errors: None = None,
        newline: None = None,
    ) -> AsyncIOWrapper[io.BufferedReader]: ...
    @overload
    async def open(
        self,
        mode: OpenBinaryMode,
        buffering: int = -1,
        encoding: None = None,
        errors: None = None,
        newline: None = None,
    ) -> AsyncIOWrapper[BinaryIO]: ...
    @overload
    async def open(
        self,
        mode: str,
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> AsyncIOWrapper[IO[Any]]: ...
    async def open(self, *args: Any, **kwargs: Any) -> AsyncIOWrapper[Any]:
        """Like :meth:`pathlib.Path.open`, run in a worker thread; returns an async
        file object."""
        opener = partial(self._sync_class(self).open, *args, **kwargs)
        return wrap_file(await to_thread_run_sync(opener))

    if TYPE_CHECKING:
        # The generated filesystem methods (see module notes), as type checkers should
        # see them: pathlib.Path's signatures for this Python, as coroutine functions.
        # (The many-path ones return lists, declared Iterable as trio declares them.)
        if sys.version_info >= (3, 12):
            async def exists(self, *, follow_symlinks: bool = True) -> bool: ...
            async def is_junction(self) -> bool: ...
            async def glob(
                self, pattern: str, *, case_sensitive: bool | None = None
            ) -> Iterable[Self]: ...
            async def rglob(
                self, pattern: str, *, case_sensitive: bool | None = None
            ) -> Iterable[Self]: ...
        else:
            async def exists(self) -> bool: ...
            async def glob(self, pattern: str) -> Iterable[Self]: ...
            async def rglob(self, pattern: str) -> Iterable[Self]: ...
            async def link_to(self, target: StrOrBytesPath) -> None: ...
        if sys.version_info >= (3, 13):
            async def is_dir(self, *, follow_symlinks: bool = True) -> bool: ...
            async def is_file(self, *, follow_symlinks: bool = True) -> bool: ...
            async def owner(self, *, follow_symlinks: bool = True) -> str: ...
            async def group(self, *, follow_symlinks: bool = True) -> str: ...
            async def read_text(
                self,
                encoding: str | None = None,
                errors: str | None = None,
                newline: str | None = None,
            ) -> str: ...
        else:
            async def is_dir(self) -> bool: ...
            async def is_file(self) -> bool: ...
            async def owner(self) -> str: ...
            async def group(self) -> str: ...
            async def read_text(
                self, encoding: str | None = None, errors: str | None = None
            ) -> str: ...
        async def stat(self, *, follow_symlinks: bool = True) -> os.stat_result: ...
        async def lstat(self) -> os.stat_result: ...
        async def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None: ...
        async def lchmod(self, mode: int) -> None: ...
        async def is_symlink(self) -> bool: ...
        async def is_socket(self) -> bool: ...
        async def is_fifo(self) -> bool: ...
        async def is_block_device(self) -> bool: ...
        async def is_char_device(self) -> bool: ...
        async def is_mount(self) -> bool: ...
        async def samefile(self, other_path: StrPath) -> bool: ...
        async def mkdir(
            self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False
        ) -> None: ...
        async def rmdir(self) -> None: ...
        async def touch(self, mode: int = 0o666, exist_ok: bool = True) -> None: ...
        async def unlink(self, missing_ok: bool = False) -> None: ...
        async def symlink_to(
            self, target: StrOrBytesPath, target_is_directory: bool = False
        ) -> None: ...
        async def hardlink_to(self, target: StrOrBytesPath) -> None: ...
        async def read_bytes(self) -> bytes: ...
        async def write_bytes(self, data: ReadableBuffer) -> int: ...
        async def write_text(
            self,
            data: str,
            encoding: str | None = None,
            errors: str | None = None,
            newline: str | None = None,
        ) -> int: ...
        async def readlink(self) -> Self: ...
        async def rename(self, target: StrPath) -> Self: ...
        async def replace(self, target: StrPath) -> Self: ...
        async def resolve(self, strict: bool = False) -> Self: ...
        async def absolute(self) -> Self: ...
        async def expanduser(self) -> Self: ...
        async def iterdir(self) -> Iterable[Self]: ...


for _names, _convert in ((_GIVES_VALUE, None), (_GIVES_PATH, _one_path), (_GIVES_PATHS, _many_paths)):
    for _name in _names:
        if hasattr(pathlib.Path, _name):
            setattr(Path, _name, _make_method(_name, _convert))
del _names, _convert, _name


@final
class PosixPath(Path, pathlib.PurePosixPath):
    """Async counterpart of :class:`pathlib.PosixPath`; see :class:`Path`."""

    _sync_class = pathlib.PosixPath
    __slots__ = ()


@final
class WindowsPath(Path, pathlib.PureWindowsPath):
    """Async counterpart of :class:`pathlib.WindowsPath`; see :class:`Path`."""

    _sync_class = pathlib.WindowsPath
    __slots__ = ()

