"""vivace.pytest_plugin: async fixtures (order, context, concurrency), how outcomes are
reported, and fixture failures. Each case is an inner pytest session in a fresh
subprocess (pytester) that inherits this process's engine variables; pytest-trio 0.8.0's
behaviour is the spec (see tests/_pytest_plugin_runner.py).
"""

from __future__ import annotations

import pytest

from _pytest_plugin_runner import report, run_inner
from vivace._core import _impl

pytest_plugins = ["pytester"]


# ---------------------------------------------------------------- async fixtures

FIXTURES = """
import contextvars

import pytest

import vivace
import vivace.lowlevel
from vivace.pytest_plugin import vivace_fixture
from vivace.testing import Sequencer

events = []


@pytest.fixture
async def leaf():
    events.append("leaf setup")
    await vivace.sleep(0)
    yield "leaf"
    await vivace.sleep(0)
    events.append("leaf teardown")


@pytest.fixture
async def middle(leaf):
    events.append("middle setup")
    await vivace.sleep(0)
    return leaf + "+middle"


@pytest.fixture
def sync_over_async(middle):
    # Sync, but it uses an async fixture: it runs inside the test's run too.
    events.append("sync_over_async setup")
    yield middle + "+sync"
    events.append("sync_over_async teardown")


@pytest.fixture
def plain():
    events.append("plain setup")
    yield "plain"
    events.append("plain teardown")


def test_before():
    assert events == []


@pytest.mark.vivace
async def test_chain(plain, sync_over_async):
    await vivace.sleep(0)
    assert sync_over_async == "leaf+middle+sync"
    assert events == ["plain setup", "leaf setup", "middle setup", "sync_over_async setup"]


def test_after_chain():
    assert events[4:] == ["sync_over_async teardown", "leaf teardown", "plain teardown"]


cv = contextvars.ContextVar("cv", default=None)


@pytest.fixture
async def cv_checker():
    assert cv.get() is None
    yield
    assert cv.get() is None


@pytest.fixture
async def cv_setter(cv_checker):
    token = cv.set("setter")
    yield
    assert cv.get() == "setter2"  # what cv_setter2 left behind, in the shared context
    cv.reset(token)


@pytest.fixture
async def cv_setter2(cv_setter):
    assert cv.get() == "setter"
    cv.set("setter2")
    yield


@pytest.mark.vivace
async def test_contextvars(cv_setter2):
    assert cv.get() == "setter2"


seq_events = []


@vivace_fixture
def seq():
    return Sequencer()


@pytest.fixture
async def concurrent_1(seq):
    async with seq(0):
        seq_events.append("1 setup a")
    async with seq(2):
        seq_events.append("1 setup b")
    yield
    async with seq(4):
        seq_events.append("1 teardown a")
    async with seq(6):
        seq_events.append("1 teardown b")


@pytest.fixture
async def concurrent_2(seq):
    async with seq(1):
        seq_events.append("2 setup a")
    async with seq(3):
        seq_events.append("2 setup b")
    yield
    async with seq(5):
        seq_events.append("2 teardown a")
    async with seq(7):
        seq_events.append("2 teardown b")


@pytest.mark.vivace
async def test_independent_fixtures_interleave(concurrent_1, concurrent_2):
    assert seq_events == ["1 setup a", "2 setup a", "1 setup b", "2 setup b"]


def test_after_interleaving():
    assert seq_events[4:] == ["1 teardown a", "2 teardown a", "1 teardown b", "2 teardown b"]


@pytest.fixture
async def fixture_task():
    return vivace.lowlevel.current_task()


@vivace_fixture
def forced_task_name():
    return vivace.lowlevel.current_task().name


@pytest.mark.vivace
async def test_one_run_one_task_each(fixture_task, forced_task_name):
    me = vivace.lowlevel.current_task()
    assert me.name == "<test 'test_one_run_one_task_each'>"
    assert fixture_task.name == "<fixture 'fixture_task'>"
    assert forced_task_name == "<fixture 'forced_task_name'>"
    assert fixture_task.parent_nursery is me.parent_nursery


class TestInAClass:
    @pytest.fixture
    async def method_fixture(self):
        await vivace.sleep(0)
        return self

    @pytest.mark.vivace
    async def test_method(self, method_fixture):
        assert method_fixture is self


@pytest.fixture(params=[1, 2])
async def parametrized(request):
    await vivace.sleep(0)
    return request.param * 10


@pytest.mark.vivace
async def test_parametrized(parametrized):
    assert parametrized in (10, 20)
"""


def test_async_fixtures_order_context_and_concurrency(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fixtures=FIXTURES
        + "\n\ndef test_engine():\n"
        + f"    from vivace._core import _impl\n    assert _impl.ENGINE == {_impl.ENGINE!r}\n"
    )
    result = run_inner(pytester)
    result.assert_outcomes(passed=11)


# ---------------------------------------------------------------- test outcomes

OUTCOMES = """
import pytest

import vivace


@pytest.mark.vivace
async def test_assert_fails():
    await vivace.sleep(0)
    value = 1
    assert value == 2


@pytest.mark.vivace
async def test_skip():
    await vivace.sleep(0)
    pytest.skip("skipped in the test")


@pytest.mark.vivace
async def test_skip_in_a_child_task():
    async def child():
        pytest.skip("skipped in a child task")

    async with vivace.open_nursery() as nursery:
        nursery.start_soon(child)


@pytest.mark.vivace
async def test_xfail():
    pytest.xfail("xfailed in the test")


@pytest.mark.vivace
async def test_xfail_in_a_child_task():
    async def child():
        pytest.xfail("xfailed in a child task")

    async with vivace.open_nursery() as nursery:
        nursery.start_soon(child)
"""


def test_outcomes_are_reported_as_raised(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_outcomes=OUTCOMES)
    result = run_inner(pytester)
    result.assert_outcomes(failed=1, skipped=2, xfailed=2)
    # The test's own failure is not wrapped in a group, so pytest's assertion rewriting
    # shows it as for a sync test.
    result.stdout.fnmatch_lines(["E       assert 1 == 2"])
    assert "Exception Group" not in result.stdout.str(), report(result)
    result.stdout.fnmatch_lines_random(
        ["SKIPPED*skipped in the test", "SKIPPED*skipped in a child task",
         "XFAIL*xfailed in the test", "XFAIL*xfailed in a child task"]
    )


# ---------------------------------------------------------------- fixture failures

FAILURES = """
import pytest

import vivace
from vivace.pytest_plugin import vivace_fixture


@pytest.fixture
async def setup_raises():
    await vivace.sleep(0)
    raise RuntimeError("SETUP_" + "RAISED")
    yield


@pytest.mark.vivace
async def test_setup_raises(setup_raises):
    pass


torn_down = set()


@pytest.fixture
async def good():
    async with vivace.open_nursery():
        yield
        torn_down.add("good")


@pytest.fixture
async def bad():
    yield
    torn_down.add("bad")
    raise RuntimeError("TEARDOWN_" + "RAISED")


@pytest.mark.vivace
async def test_teardown_raises(bad, good):
    pass


def test_every_teardown_ran():
    assert torn_down == {"good", "bad"}


@pytest.fixture
async def yields_twice():
    yield 1
    yield 2


@pytest.mark.vivace
async def test_yields_twice(yields_twice):
    pass


@pytest.fixture
async def cancels_silently():
    with vivace.CancelScope() as scope:
        scope.cancel()
        yield


@pytest.mark.vivace
async def test_cancelled_silently(cancels_silently):
    pass


@pytest.fixture
async def hangs():
    await vivace.Event().wait()
    yield


@pytest.fixture
async def explodes():
    raise Exception("EXPLO" + "DED")
    yield


@pytest.mark.vivace
async def test_crash_cancels_a_hanging_setup(explodes, hangs):
    pass


async def fail_later(delay, token):
    with vivace.CancelScope(shield=True):
        await vivace.sleep(delay)
        raise RuntimeError(token.upper())


@vivace_fixture
async def crash_nongen():
    with vivace.CancelScope(shield=True):
        await vivace.sleep(2)
    raise RuntimeError("crash_nongen".upper())


@vivace_fixture
async def crash_early_agen():
    with vivace.CancelScope(shield=True):
        await vivace.sleep(2)
    raise RuntimeError("crash_early_agen".upper())
    yield


@vivace_fixture
async def crash_late_agen():
    yield
    raise RuntimeError("crash_late_agen".upper())


@vivace_fixture
def crash_background(nursery):
    nursery.start_soon(fail_later, 1, "crash_background_early")
    nursery.start_soon(fail_later, 3, "crash_background_late")


test_started = False


@pytest.mark.vivace
async def test_all_the_crashes(
    autojump_clock, crash_nongen, crash_early_agen, crash_late_agen, crash_background
):
    global test_started
    test_started = True


def test_crashed_before_the_test_started():
    assert not test_started


@pytest.mark.vivace
async def test_skip_and_fail():
    async def skip():
        pytest.skip()

    async def fail():
        raise RuntimeError("ALSO_" + "FAILED")

    async with vivace.open_nursery() as nursery:
        nursery.start_soon(skip)
        nursery.start_soon(fail)
"""


def test_fixture_failures_fail_the_test_and_all_are_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_failures=FAILURES)
    result = run_inner(pytester)
    result.assert_outcomes(passed=2, failed=7)
    result.stdout.fnmatch_lines_random(
        [
            "*RuntimeError: SETUP_RAISED",
            "*RuntimeError: TEARDOWN_RAISED",
            "*RuntimeError: <fixture 'yields_twice'> yielded more than once*",
            "*RuntimeError: <fixture 'cancels_silently'> cancelled the test but did not "
            "raise an error",
            "*Exception: EXPLODED",
            "*CRASH_NONGEN",
            "*CRASH_EARLY_AGEN",
            "*CRASH_LATE_AGEN",
            "*CRASH_BACKGROUND_EARLY",
            "*CRASH_BACKGROUND_LATE",
            "*RuntimeError: ALSO_FAILED",
        ]
    )
    for name in ("test_setup_raises", "test_teardown_raises", "test_yields_twice",
                 "test_cancelled_silently", "test_crash_cancels_a_hanging_setup",
                 "test_all_the_crashes", "test_skip_and_fail"):
        result.stdout.fnmatch_lines([f"FAILED test_failures.py::{name} - *"])
