"""vivace.pytest_plugin: misuse errors, ``vivace_mode``, and living alongside pytest-trio
(inner pytest sessions, see tests/_pytest_plugin_runner.py).
"""

from __future__ import annotations

import pytest

from _pytest_plugin_runner import report, run_inner

pytest_plugins = ["pytester"]


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
    result = run_inner(pytester)
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
    result = run_inner(pytester)
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(
        ["fixture 'async_value' runs inside vivace, so only vivace tests can use it, and "
         "'test_sync_with_async_fixture' is not one: make the test `async def`, or make "
         "'async_value' a plain sync fixture"]
    )


def test_vivace_mode_and_trio_mode_together_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvivace_mode = true\ntrio_mode = true\n")
    pytester.makepyfile(test_nothing="async def test_nothing():\n    pass\n")
    result = run_inner(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, report(result)
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
    result = run_inner(pytester, plugin=activation == "command line")
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
    result = run_inner(pytester, "-p", "no:trio", plugin=False)
    result.assert_outcomes(passed=3)
