"""Inner test file for pytest-trio's ``trio_mode = true`` (set by the session's ini file):
async tests and fixtures need no marker. Tests run in file order. Expected: 3 passed, 1 failed
(``test_fails_in_trio_mode``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import ecocheck
import pytest
import trio
import trio.testing

closed: list[str] = []


@pytest.fixture
async def resource() -> AsyncIterator[str]:
    await trio.sleep(0)
    yield "ready"
    await trio.sleep(0)
    closed.append("resource")


async def test_unmarked_async_test_runs_on_vivace() -> None:
    await trio.sleep(0)
    ecocheck.ran_on_vivace()


async def test_unmarked_async_fixture(resource: str) -> None:
    assert resource == "ready"


async def test_nursery_and_clock(nursery: trio.Nursery,
                                 autojump_clock: trio.testing.MockClock) -> None:
    assert closed == ["resource"]
    results: list[int] = []
    for i in range(3):
        nursery.start_soon(_sleep_append, results, i)
    await trio.sleep(10)
    assert results == [0, 1, 2]


async def _sleep_append(results: list[int], i: int) -> None:
    await trio.sleep(i + 1)
    results.append(i)


async def test_fails_in_trio_mode() -> None:
    raise ValueError("expected failure")
