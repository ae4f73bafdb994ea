"""Inner test file for anyio's pytest plugin on its trio backend (tests/test_ecosystem_anyio.py
copies it into a pytester directory and runs it with ``-p vivace.install_plugin``).

Tests run in file order. Expected: every test passes except ``test_reported_as_failed``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import anyio
import ecocheck
import pytest
import sniffio
import trio

pytestmark = pytest.mark.anyio
events: list[str] = []


@pytest.fixture(scope="module", params=["trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def stream_pair() -> AsyncIterator[tuple[object, object]]:
    send, receive = anyio.create_memory_object_stream[int](10)
    events.append(f"setup on {sniffio.current_async_library()}")
    async with send, receive:
        yield send, receive
    events.append("teardown")


@pytest.fixture(scope="module")
async def module_token() -> trio.lowlevel.TrioToken:
    # A module-scoped async fixture lives in the same run as every test that uses it.
    await anyio.sleep(0)
    return trio.lowlevel.current_trio_token()


async def test_runs_on_vivace(anyio_backend: str) -> None:
    assert anyio_backend == "trio"
    assert sys.modules["trio"].__name__ == "vivace"
    ecocheck.ran_on_vivace()


async def test_async_yield_fixture(stream_pair: tuple) -> None:
    send, receive = stream_pair
    for i in range(5):
        await send.send(i)
    assert [await receive.receive() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert events == ["setup on trio"]


def test_async_fixture_was_torn_down() -> None:
    assert events == ["setup on trio", "teardown"]


async def test_module_fixture_shares_the_run(module_token: trio.lowlevel.TrioToken) -> None:
    assert module_token is trio.lowlevel.current_trio_token()


async def test_task_group_and_timeout(module_token: trio.lowlevel.TrioToken) -> None:
    assert module_token is trio.lowlevel.current_trio_token()
    results: list[int] = []
    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(_append, results, i)
    assert sorted(results) == [0, 1, 2]
    with anyio.move_on_after(0.01) as scope:
        await anyio.sleep_forever()
    assert scope.cancelled_caught


async def test_to_thread() -> None:
    assert await anyio.to_thread.run_sync(sum, [1, 2, 3]) == 6


async def _append(results: list[int], i: int) -> None:
    await anyio.sleep(0)
    results.append(i)


async def test_reported_as_failed() -> None:
    await anyio.sleep(0)
    raise KeyError("expected failure")
