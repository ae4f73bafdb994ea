"""Inner test file for the pytest-trio session (tests/test_ecosystem_pytest_trio.py copies
it into a pytester directory and runs it with ``-p vivace.install_plugin``).

Expected outcome: every test passes except ``test_reported_as_failed``, which fails with
``AssertionError: 1 + 1 == 3``.
"""

from __future__ import annotations

import sys

import ecocheck
import pytest
import trio
import trio.testing
from hypothesis import given, settings, strategies as st

events: list[str] = []


@pytest.fixture
async def answer() -> int:
    await trio.sleep(0)
    return 42


@pytest.fixture
async def connection():
    # Set up and torn down inside the test's own run.
    token = trio.lowlevel.current_trio_token()
    events.append("setup")
    await trio.sleep(0)
    yield token
    await trio.sleep(0)
    assert trio.lowlevel.current_trio_token() is token
    events.append("teardown")


@pytest.fixture
async def doubled(answer: int) -> int:
    # An async fixture depending on another async fixture.
    await trio.sleep(0)
    return answer * 2


@pytest.mark.trio
async def test_runs_on_vivace() -> None:
    assert sys.modules["trio"].__name__ == "vivace"
    ecocheck.ran_on_vivace()


@pytest.mark.trio
async def test_async_fixtures(answer: int, doubled: int) -> None:
    assert (answer, doubled) == (42, 84)


@pytest.mark.trio
async def test_yield_fixture_shares_the_run(connection: trio.lowlevel.TrioToken) -> None:
    assert connection is trio.lowlevel.current_trio_token()
    assert events == ["setup"]


def test_yield_fixture_was_torn_down() -> None:
    assert events == ["setup", "teardown"]


@pytest.mark.trio
async def test_nursery_fixture(nursery: trio.Nursery) -> None:
    started = trio.Event()

    async def background(*, task_status: trio.TaskStatus[str]) -> None:
        task_status.started("up")
        started.set()
        await trio.sleep_forever()  # pytest-trio cancels the fixture's nursery at the end

    assert await nursery.start(background) == "up"
    await started.wait()


@pytest.mark.trio
async def test_autojump_clock(autojump_clock: trio.testing.MockClock) -> None:
    assert isinstance(autojump_clock, trio.testing.MockClock)
    start = trio.current_time()
    await trio.sleep(3600)  # an hour of virtual time, no real waiting
    with trio.move_on_after(86400) as scope:
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() - start == pytest.approx(3600 + 86400)


@pytest.mark.trio
async def test_mock_clock_by_hand(mock_clock: trio.testing.MockClock) -> None:
    done = trio.Event()

    async def sleeper() -> None:
        await trio.sleep(10)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        mock_clock.jump(10)
        await done.wait()


@pytest.mark.trio
@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5), max_size=5))
async def test_hypothesis_given(delays: list[int]) -> None:
    finished: list[int] = []

    async def sleep_then_record(i: int, delay: int) -> None:
        await trio.sleep(delay / 1000)
        finished.append(i)

    async with trio.open_nursery() as nursery:
        for i, delay in enumerate(delays):
            nursery.start_soon(sleep_then_record, i, delay)
    assert sorted(finished) == list(range(len(delays)))


@pytest.mark.trio
async def test_reported_as_failed() -> None:
    await trio.sleep(0)
    assert 1 + 1 == 3, "1 + 1 == 3"
