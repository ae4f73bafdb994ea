"""vivace.Path and async files: filesystem work runs in worker threads, pure path
operations stay synchronous, and the async surface is the same for every file type."""

from __future__ import annotations

import io
import pathlib

import pytest

import vivace as trio


def test_path_is_the_platform_flavour_and_pure_ops_stay_ours(tmp_path: pathlib.Path) -> None:
    p = trio.Path(tmp_path)
    assert isinstance(p, trio.PosixPath)
    child = p / "a" / "b.txt"
    assert isinstance(child, trio.Path)
    assert child.suffix == ".txt"
    assert isinstance(child.parent, trio.Path)
    assert repr(trio.Path(".")) == "trio.Path('.')"


def test_path_rejects_non_paths() -> None:
    with pytest.raises(TypeError):
        trio.Path(1)  # type: ignore[arg-type]


def test_filesystem_methods_are_coroutine_functions(tmp_path: pathlib.Path) -> None:
    async def main() -> None:
        p = trio.Path(tmp_path) / "f.txt"
        assert not await p.exists()
        await p.write_text("hello")
        assert await p.read_text() == "hello"
        assert await p.is_file()
        resolved = await p.resolve()
        assert isinstance(resolved, trio.Path)
        listing = await trio.Path(tmp_path).iterdir()
        assert listing == [p] and isinstance(listing[0], trio.Path)
        assert isinstance(await trio.Path.cwd(), trio.Path)

    trio.run(main)


def test_generated_methods_are_named_and_documented() -> None:
    method = trio.Path(".").resolve
    assert method.__name__ == "resolve"
    assert method.__qualname__ == "Path.resolve"
    assert "Path.resolve" in (method.__doc__ or "")


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        trio.Path(".").no_such_method  # noqa: B018


def test_open_file_reads_and_writes_in_threads(tmp_path: pathlib.Path) -> None:
    async def main() -> list[str]:
        target = tmp_path / "data.txt"
        async with await trio.open_file(target, "w") as f:
            await f.write("one\ntwo\n")
        async with await trio.Path(target).open() as f:
            return [line async for line in f]

    assert trio.run(main) == ["one\n", "two\n"]


def test_wrap_file_forwards_only_the_async_surface() -> None:
    class Odd(io.StringIO):
        def unusual(self) -> None:
            pass

    wrapped = trio.wrap_file(Odd("x"))
    assert hasattr(wrapped.wrapped, "unusual")
    with pytest.raises(AttributeError):
        wrapped.unusual  # noqa: B018
    assert wrapped.closed is False


def test_wrap_file_refuses_non_files() -> None:
    with pytest.raises(TypeError, match="duck-file"):
        trio.wrap_file("")


def test_aclose_completes_even_when_cancelled() -> None:
    async def main() -> io.StringIO:
        raw = io.StringIO("x")
        wrapped = trio.wrap_file(raw)
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await wrapped.aclose()
        return raw

    assert trio.run(main).closed
