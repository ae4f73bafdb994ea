"""vivace.pytest_plugin: background crashes, the ``nursery`` fixture, clock and
instrument fixtures (inner pytest sessions, see tests/_pytest_plugin_runner.py).
"""

from __future__ import annotations

import pytest

from _pytest_plugin_runner import run_inner

pytest_plugins = ["pytester"]


# ---------------------------------------------------------------- background crashes

BACKGROUND = """
from contextlib import asynccontextmanager

import pytest

import vivace
from vivace.pytest_plugin import vivace_fixture

deadlines = {}
final_times = {}


async def crashy():
    await vivace.sleep(1)
    raise RuntimeError("CRA" + "SHY")


@vivace_fixture
def crashy_in_nursery_fixture(request, nursery):
    nursery.start_soon(crashy)
    with pytest.raises(vivace.Cancelled):
        yield
    deadlines[request.node.name, "crashy"] = vivace.current_effective_deadline()


@pytest.fixture
async def crashy_in_own_nursery(request):
    async with vivace.open_nursery() as nursery:
        nursery.start_soon(crashy)
        with pytest.raises(vivace.Cancelled):
            yield
        deadlines[request.node.name, "crashy"] = vivace.current_effective_deadline()


@vivace_fixture
def side(request):
    yield
    deadlines[request.node.name, "side"] = vivace.current_effective_deadline()


@vivace_fixture
def user_a(request, crashy_in_nursery_fixture):
    yield
    deadlines[request.node.name, "user"] = vivace.current_effective_deadline()


@vivace_fixture
def user_b(request, crashy_in_own_nursery):
    yield
    deadlines[request.node.name, "user"] = vivace.current_effective_deadline()


@pytest.mark.vivace
async def test_with_nursery_fixture(request, user_a, side, autojump_clock):
    try:
        await vivace.sleep_forever()
    finally:
        final_times[request.node.name] = vivace.current_time()


@pytest.mark.vivace
async def test_with_own_nursery(request, user_b, side, autojump_clock):
    try:
        await vivace.sleep_forever()
    finally:
        final_times[request.node.name] = vivace.current_time()


def test_only_the_crashed_fixture_was_cancelled():
    inf = float("inf")
    for name in ("test_with_nursery_fixture", "test_with_own_nursery"):
        assert deadlines[name, "crashy"] == -inf
        assert deadlines[name, "side"] == inf
        assert deadlines[name, "user"] == inf
        assert final_times[name] == 1


async def die_soon():
    raise RuntimeError("OO" + "PS")


@asynccontextmanager
async def async_finalizer():
    try:
        yield
    finally:
        await vivace.sleep(0)


@pytest.fixture
async def nested_nurseries(nursery):
    async with vivace.open_nursery() as nursery1:
        async with async_finalizer():
            async with vivace.open_nursery() as nursery2:
                nursery2.start_soon(die_soon)
                yield
                nursery1.cancel_scope.cancel()


@pytest.mark.vivace
async def test_crash_inside_nested_nurseries(nested_nurseries):
    await vivace.sleep_forever()
"""


def test_a_background_crash_cancels_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_background=BACKGROUND)
    result = run_inner(pytester)
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(["*RuntimeError: CRASHY"])
    result.stdout.fnmatch_lines(["*RuntimeError: OOPS"])


# ---------------------------------------------------------------- the nursery fixture

NURSERY = """
import pytest

import vivace
import vivace.lowlevel
from vivace.testing import wait_all_tasks_blocked

events = []


async def record_cancel(message):
    try:
        await vivace.sleep_forever()
    finally:
        events.append(message)


@pytest.fixture
def check_order():
    yield
    assert events == [
        "test", "test cancel",
        "fix2 teardown", "fix2 cancel",
        "fix1 teardown", "fix1 cancel",
    ]


@pytest.fixture
def fix1(nursery):
    nursery.start_soon(record_cancel, "fix1 cancel")
    yield
    events.append("fix1 teardown")


@pytest.fixture
def fix2(fix1, nursery):
    nursery.start_soon(record_cancel, "fix2 cancel")
    yield
    events.append("fix2 teardown")


@pytest.mark.vivace
async def test_cancelled_when_their_user_is_done(check_order, fix2, nursery):
    nursery.start_soon(record_cancel, "test cancel")
    await wait_all_tasks_blocked()
    events.append("test")


@pytest.fixture
async def started_value(nursery):
    async def serve(task_status=vivace.TASK_STATUS_IGNORED):
        task_status.started("ready")
        await vivace.sleep_forever()

    return await nursery.start(serve)


@pytest.mark.vivace
async def test_the_tests_own_nursery(started_value, nursery):
    assert started_value == "ready"
    assert isinstance(nursery, vivace.Nursery)
    assert nursery.parent_task is vivace.lowlevel.current_task()


background = []


async def background_task():
    try:
        await vivace.sleep_forever()
    finally:
        background.append("background cancelled")


@pytest.fixture
async def with_background(nursery):
    nursery.start_soon(background_task)
    yield
    background.append("teardown")


@pytest.mark.vivace
async def test_fails_while_background_runs(with_background):
    await wait_all_tasks_blocked()
    raise AssertionError("TEST_" + "FAILED")


def test_background_cleaned_up_after_the_failure():
    assert background == ["teardown", "background cancelled"]
"""


def test_nursery_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nursery=NURSERY)
    result = run_inner(pytester)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["E   *AssertionError: TEST_FAILED"])


# ---------------------------------------------------------------- clocks and instruments

CLOCKS = """
import math

import pytest

import vivace
import vivace.abc
import vivace.lowlevel
from vivace.pytest_plugin import vivace_fixture
from vivace.testing import MockClock


@pytest.mark.vivace
async def test_autojump_clock(autojump_clock):
    assert vivace.lowlevel.current_clock() is autojump_clock
    assert isinstance(autojump_clock, MockClock)
    assert autojump_clock.autojump_threshold == 0
    start = vivace.current_time()
    await vivace.sleep(100)
    assert vivace.current_time() - start == 100


@pytest.mark.vivace
async def test_mock_clock(mock_clock):
    assert vivace.lowlevel.current_clock() is mock_clock
    assert mock_clock.autojump_threshold == math.inf
    assert vivace.current_time() == 0
    mock_clock.jump(5)
    assert vivace.current_time() == 5


@pytest.mark.vivace
async def test_no_clock_fixture_means_the_default_clock():
    assert not isinstance(vivace.lowlevel.current_clock(), MockClock)


@pytest.fixture
def my_clock():
    return MockClock(rate=2.0)


@pytest.mark.vivace
async def test_any_clock_fixture(my_clock):
    assert vivace.lowlevel.current_clock() is my_clock


@vivace_fixture
def started_at(autojump_clock):
    return vivace.current_time()


@pytest.mark.vivace
async def test_fixtures_see_the_tests_clock(autojump_clock, started_at):
    assert started_at == 0


class StepCounter(vivace.abc.Instrument):
    def __init__(self):
        self.steps = 0

    def before_task_step(self, task):
        self.steps += 1


@pytest.fixture
def counter():
    return StepCounter()


@pytest.mark.vivace
async def test_instrument_fixture(counter):
    before = counter.steps
    await vivace.sleep(0)
    assert counter.steps > before


@pytest.fixture
def second_clock(mock_clock):
    return mock_clock


@pytest.mark.vivace
async def test_two_clocks(mock_clock, second_clock):
    pass


@pytest.mark.vivace(run=vivace.run)
async def test_run_argument():
    pass
"""


def test_clocks_and_instruments(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_clocks=CLOCKS)
    result = run_inner(pytester)
    result.assert_outcomes(passed=6, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*ValueError: a vivace test can run on one clock, but it uses several: "
         "mock_clock, second_clock"]
    )
    result.stdout.fnmatch_lines(["@pytest.mark.vivace takes no arguments (got *run*"])
