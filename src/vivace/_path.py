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

import os
import pathlib
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from ._core import final
from ._file_io import AsyncIOWrapper, wrap_file
from ._threads import to_thread_run_sync

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Self

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

    async def open(self, *args: Any, **kwargs: Any) -> AsyncIOWrapper[Any]:
        """Like :meth:`pathlib.Path.open`, run in a worker thread; returns an async
        file object."""
        opener = partial(self._sync_class(self).open, *args, **kwargs)
        return wrap_file(await to_thread_run_sync(opener))

    if TYPE_CHECKING:
        # The generated filesystem methods (see module notes).
        def __getattr__(self, name: str) -> Any: ...


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

