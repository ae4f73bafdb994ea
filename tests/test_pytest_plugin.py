"""vivace.pytest_plugin: vivace-native test suites (async tests, async fixtures, the
``nursery``/``autojump_clock``/``mock_clock`` fixtures, ``vivace_mode``), checked the way
a user meets it: each case is an inner pytest session in a fresh subprocess (pytester),
which inherits this process's engine variables. pytest-trio 0.8.0's behaviour is the spec;
it is installed in this venv, so most inner sessions also have it loaded, as a user's would.
"""

from __future__ import annotations

import pytest

from vivace._core import _impl

pytest_plugins = ["pytester"]

# Each inner session fails on any warning and on an unregistered marker or ini option, so
# the plugin's registration of both is checked everywhere.
_STRICT = ("-p", "no:cacheprovider", "-W", "error", "--strict-markers", "--strict-config")
_PLUGIN = ("-p", "vivace.pytest_plugin")
_HANG_GUARD = 50.0  # seconds; a run takes about one


def _run(pytester: pytest.Pytester, *args: str, plugin: bool = True) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        *(_PLUGIN if plugin else ()), *_STRICT, "-rA", *args, timeout=_HANG_GUARD
    )


def _report(result: pytest.RunResult) -> str:
    return f"\n--- stdout:\n{result.stdout.str()}\n--- stderr:\n{result.stderr.str()}"


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
    result = _run(pytester)
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
    result = _run(pytester)
    result.assert_outcomes(failed=1, skipped=2, xfailed=2)
    # The test's own failure is not wrapped in a group, so pytest's assertion rewriting
    # shows it as for a sync test.
    result.stdout.fnmatch_lines(["E       assert 1 == 2"])
    assert "Exception Group" not in result.stdout.str(), _report(result)
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
    result = _run(pytester)
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
    result = _run(pytester)
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
    result = _run(pytester)
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
    result = _run(pytester)
    result.assert_outcomes(passed=6, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*ValueError: a vivace test can run on one clock, but it uses several: "
         "mock_clock, second_clock"]
    )
    result.stdout.fnmatch_lines(["@pytest.mark.vivace takes no arguments (got *run*"])


# ---------------------------------------------------------------- misuse

MISUSE = """
import pytest

import vivace
from vivace.pytest_plugin import vivace_fixture


@pytest.fixture(scope="module")
async def module_scoped():
    return 1


@pytest.mark.vivace
async def test_module_scoped(module_scoped):
    pass


@pytest.fixture(scope="class")
async def class_scoped():
    return 1


@pytest.mark.vivace
class TestClassScoped:
    async def test_it(self, class_scoped):
        pass


@pytest.fixture
async def async_fixture():
    return 1


def test_sync_uses_async(async_fixture):
    pass


def test_sync_uses_nursery(nursery):
    pass


@vivace_fixture
def needs_vivace():
    return vivace.current_time()


@pytest.fixture
def uses_needs_vivace(needs_vivace):
    return needs_vivace


def test_sync_uses_vivace_fixture(needs_vivace):
    pass


def test_sync_uses_it_indirectly(uses_needs_vivace):
    pass


@pytest.mark.vivace
def test_sync_marked():
    pass


@pytest.mark.vivace
@pytest.mark.trio
async def test_both_marks():
    pass
"""

MARKED_MODULE = """
import pytest

import vivace

pytestmark = pytest.mark.vivace


async def test_async_in_marked_module():
    await vivace.sleep(0)


def test_sync_in_marked_module():
    pass
"""


def test_misuse_gets_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_misuse=MISUSE, test_marked_module=MARKED_MODULE)
    result = _run(pytester)
    result.assert_outcomes(passed=2, failed=1, errors=7)
    result.stdout.fnmatch_lines_random(
        [
            "fixture 'module_scoped' has scope 'module', but fixtures that run inside vivace "
            "*must be function-scoped*",
            "fixture 'class_scoped' has scope 'class', *must be function-scoped*",
            "'test_sync_uses_async' requested the async fixture 'async_fixture', but "
            "'test_sync_uses_async' is not a vivace test: *mark it @pytest.mark.vivace*",
            "the 'nursery' fixture is only for vivace tests, and 'test_sync_uses_nursery' "
            "is not one*",
            "fixture 'needs_vivace' runs inside vivace, so only vivace tests can use it, and "
            "'test_sync_uses_vivace_fixture' is not one*",
            "fixture 'needs_vivace' runs inside vivace, * and "
            "'test_sync_uses_it_indirectly' is not one*",
            "test_sync_marked is marked vivace but is not `async def`",
            "test_both_marks is marked both vivace and trio: pick one*",
        ]
    )


# ---------------------------------------------------------------- vivace_mode

MODE = """
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import vivace


@pytest.fixture
async def async_value():
    await vivace.sleep(0)
    return "value"


async def test_unmarked(async_value):
    assert async_value == "value"


def test_sync_with_async_fixture(async_value):
    pass


@pytest.mark.trio
async def test_left_to_pytest_trio():
    import trio

    await trio.sleep(0)  # only inside a trio run


setups = []
examples = []


@pytest.fixture
async def per_example():
    setups.append(len(examples))
    yield


@settings(deadline=None, max_examples=5,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers())
async def test_hypothesis(per_example, n):
    await vivace.sleep(0)
    examples.append(n)


def test_each_example_had_its_own_run():
    assert len(examples) >= 2
    assert setups == list(range(len(examples)))
"""


def test_vivace_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvivace_mode = true\n")
    pytester.makepyfile(test_mode=MODE)
    result = _run(pytester)
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(
        ["fixture 'async_value' runs inside vivace, so only vivace tests can use it, and "
         "'test_sync_with_async_fixture' is not one: make the test `async def`, or make "
         "'async_value' a plain sync fixture"]
    )


def test_vivace_mode_and_trio_mode_together_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvivace_mode = true\ntrio_mode = true\n")
    pytester.makepyfile(test_nothing="async def test_nothing():\n    pass\n")
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, _report(result)
    result.stderr.fnmatch_lines(
        ["*vivace_mode and pytest-trio's trio_mode are both on*-p no:trio*"]
    )


# ---------------------------------------------------------------- with and without pytest-trio

MIXED = """
import pytest
import trio
import trio.testing

import vivace
import vivace.testing


@pytest.fixture
async def vivace_value():
    await vivace.sleep(1)
    return vivace.current_time()


@pytest.mark.vivace
async def test_vivace(nursery, autojump_clock, vivace_value):
    assert isinstance(nursery, vivace.Nursery)
    assert isinstance(autojump_clock, vivace.testing.MockClock)
    assert vivace_value == 1
    await vivace.sleep(5)
    assert vivace.current_time() == 6


@pytest.mark.vivace
async def test_vivace_mock_clock(mock_clock):
    assert isinstance(mock_clock, vivace.testing.MockClock)


@pytest.fixture
async def trio_value():
    await trio.sleep(1)
    return trio.current_time()


@pytest.mark.trio
async def test_trio(nursery, autojump_clock, trio_value):
    assert isinstance(nursery, trio.Nursery)
    assert isinstance(autojump_clock, trio.testing.MockClock)
    assert trio_value == 1
    await trio.sleep(5)
    assert trio.current_time() == 6


@pytest.mark.trio
async def test_trio_mock_clock(mock_clock):
    assert isinstance(mock_clock, trio.testing.MockClock)
"""


@pytest.mark.parametrize("activation", ["command line", "conftest"])
def test_alongside_pytest_trio(pytester: pytest.Pytester, activation: str) -> None:
    # The fixture definition pytest picks for a shared name is the later-loaded plugin's:
    # pytest-trio's when vivace's comes from -p (loaded before entry points), vivace's when
    # it comes from a conftest. Each plugin must serve its own tests either way.
    pytester.makepyfile(test_mixed=MIXED)
    if activation == "conftest":
        pytester.makeconftest('pytest_plugins = ["vivace.pytest_plugin"]\n')
    result = _run(pytester, plugin=activation == "command line")
    result.assert_outcomes(passed=4)


WITHOUT_TRIO = """
import pytest

import vivace
import vivace.testing


def test_pytest_trio_is_not_loaded(request):
    assert not request.config.pluginmanager.has_plugin("trio")


@pytest.mark.vivace
async def test_fixtures(nursery, autojump_clock):
    assert isinstance(nursery, vivace.Nursery)
    await vivace.sleep(10)
    assert vivace.current_time() == 10


def test_a_sync_test_may_use_a_clock(mock_clock):
    assert isinstance(mock_clock, vivace.testing.MockClock)
"""


def test_without_pytest_trio_enabled_by_addopts(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naddopts = -p vivace.pytest_plugin\n")
    pytester.makepyfile(test_without_trio=WITHOUT_TRIO)
    result = _run(pytester, "-p", "no:trio", plugin=False)
    result.assert_outcomes(passed=3)
