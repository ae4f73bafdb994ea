"""pytest support for test suites written against vivace.

Enable it (it is not loaded automatically) with any of::

    pytest -p vivace.pytest_plugin            # on the command line
    pytest_plugins = ["vivace.pytest_plugin"] # in the rootdir's conftest.py
    addopts = -p vivace.pytest_plugin         # in the pytest configuration

Then:

- ``@pytest.mark.vivace`` on an ``async def`` test runs it with ``vivace.run``. The mark
  may also sit on a class or module (``pytestmark = pytest.mark.vivace``); there it applies
  to the ``async def`` tests and leaves the sync ones alone.
- ``vivace_mode = true`` (ini option) marks every ``async def`` test that carries no other
  async framework's mark (``trio``, ``anyio``, ``asyncio``), so no mark is needed.
- ``async def`` fixtures and async generator fixtures used by a vivace test are set up
  inside the same ``vivace.run`` as the test, before it, and torn down after it in reverse
  order; context variables they set are visible to the test. Fixtures that do not depend
  on each other set up concurrently. Sync fixtures run as pytest runs them, unless they
  depend on an async fixture, in which case they run inside the test's run too;
  ``@vivace_fixture`` forces that for a sync fixture that needs vivace (to call
  ``vivace.current_time()``, say). Such fixtures must be function-scoped, and only vivace
  tests may use them.
- A failure in a fixture (setup, teardown, or a task it started in the background) fails
  the test: the test is cancelled if it is running, fixtures not yet set up are skipped,
  and the others are torn down as usual. All failures are reported, together.
- Fixtures:

  ``nursery``
      a nursery that lives as long as its user: tasks a test starts in it are cancelled
      when the test returns; a fixture asking for it gets a nursery of its own, cancelled
      after the fixture's teardown.
  ``autojump_clock``
      ``vivace.testing.MockClock(autojump_threshold=0)``: virtual time that jumps ahead
      whenever every task is blocked, so sleeps and timeouts take no real time.
  ``mock_clock``
      ``vivace.testing.MockClock()``: virtual time moved only by hand.

  A test that uses a fixture whose value is a ``vivace.abc.Clock`` runs with that clock
  (at most one); fixture values that are ``vivace.abc.Instrument`` instances are installed
  as instruments for the run. Without either, the test runs with vivace's defaults.

pytest-trio's fixtures have the same names. When pytest-trio is installed too, each plugin
serves its own tests: vivace tests get vivace's fixtures and trio tests (``@pytest.mark.trio``)
keep pytest-trio's, whichever plugin pytest loaded first. A test cannot be both, and
``vivace_mode`` cannot be combined with pytest-trio's ``trio_mode`` (pytest reports a usage
error; run with ``-p no:trio`` to leave pytest-trio out).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator
from typing import Any, NoReturn, TypeVar

import pytest

import vivace
import vivace.abc
import vivace.testing
from vivace._pytest_fixtures import NURSERY, DeferredFixture, is_deferred, run_test

__all__ = ["vivace_fixture"]

# Design notes:
# - One vivace.run per test call. pytest's own machinery is synchronous, so fixtures that
#   need vivace are "deferred": this plugin's pytest_fixture_setup caches a DeferredFixture
#   as their value, and the test's runner sets the whole graph up and down inside the run
#   (see vivace._pytest_fixtures for the ordering and crash rules).
# - Fixture order: a deferred fixture starts once all the fixtures it uses are set up and
#   is torn down once everything using it has finished; the test is the root of the graph.
#   Plain sync fixtures stay pytest's and wrap the whole run.
# - Cancellation at the end: every node's nursery (the ``nursery`` fixture) is cancelled
#   when the node is done, so background tasks never outlive the test's run.
# - Coexistence with pytest-trio: the two plugins define fixtures of the same names, and
#   which definition pytest picks depends on load order. So nothing here depends on it:
#   this plugin's setup hook runs first (tryfirst) and answers for vivace tests whichever
#   definition was picked, and this plugin's definitions hand non-vivace requests on to
#   the definition they override (pytest-trio's, if any).

_T = TypeVar("_T", bound=Callable[..., Any])

_MARK = "vivace"
# Marks of other async test runners: vivace_mode leaves tests carrying them alone.
_FOREIGN_MARKS = ("trio", "anyio", "asyncio")
_BUILTIN_FIXTURES = ("nursery", "autojump_clock", "mock_clock")
_PYTEST_TRIO_MODULE = "pytest_trio.plugin"


def vivace_fixture(func: _T) -> _T:
    """A function-scoped fixture set up inside the vivace test's run, even if it is sync."""
    func._vivace_fixture = True  # type: ignore[attr-defined]
    return pytest.fixture(func)  # type: ignore[return-value]


# ---------------------------------------------------------------- configuration


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "vivace_mode",
        "run every async def test (and async fixture) with vivace, without marks",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "vivace: run this async def test with vivace.run (its async fixtures in the same run)",
    )
    if _vivace_mode(config) and _trio_mode(config):
        raise pytest.UsageError(
            "vivace_mode and pytest-trio's trio_mode are both on: each would claim every "
            "async test. Turn one off, or run with -p no:trio to leave pytest-trio out."
        )


def _vivace_mode(config: pytest.Config) -> bool:
    return bool(config.getini("vivace_mode"))


def _trio_mode(config: pytest.Config) -> bool:
    if not config.pluginmanager.has_plugin("trio"):
        return False
    try:
        return bool(config.getini("trio_mode"))
    except ValueError:  # a plugin named "trio" that is not pytest-trio
        return False


# ---------------------------------------------------------------- which tests are ours


def _test_function(item: pytest.Function) -> Any:
    # Under Hypothesis, item.obj is its sync wrapper; the user's function is inside.
    obj = item.obj
    hypothesis = getattr(obj, "hypothesis", None)
    return obj if hypothesis is None else hypothesis.inner_test


def _is_async_test(item: pytest.Function) -> bool:
    return inspect.iscoroutinefunction(_test_function(item))


def _is_vivace_test(node: object) -> bool:
    if not isinstance(node, pytest.Function) or node.get_closest_marker(_MARK) is None:
        return False
    # A mark inherited from a class or module covers only the async tests in it; one put
    # on a sync test itself is a mistake, reported when the test runs.
    return _is_async_test(node) or any(m.name == _MARK for m in node.own_markers)


def _has_foreign_mark(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(name) is not None for name in _FOREIGN_MARKS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _vivace_mode(config):
        return
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and _is_async_test(item)
            and item.get_closest_marker(_MARK) is None
            and not _has_foreign_mark(item)
        ):
            item.add_marker(_MARK)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture is set up: mistakes that would otherwise surface as confusing
    # fixture errors.
    if not _is_vivace_test(item):
        return
    if item.get_closest_marker("trio") is not None:
        pytest.fail(
            f"{item.name} is marked both vivace and trio: pick one (with pytest-trio's "
            "trio_mode on, every async test is marked trio; run with -p no:trio to "
            "leave pytest-trio out)",
            pytrace=False,
        )
    for mark in item.iter_markers(_MARK):
        if mark.args or mark.kwargs:
            pytest.fail(
                f"@pytest.mark.vivace takes no arguments (got {mark}): vivace tests always "
                "run with vivace.run; use a clock or instrument fixture to configure the run",
                pytrace=False,
            )


# ---------------------------------------------------------------- fixtures


def _requesting_item(request: pytest.FixtureRequest) -> object:
    # For a fixture wider than function scope, request.node is the class, module or
    # session; the test whose request triggered the setup is only privately known.
    item = getattr(request, "_pyfuncitem", None)
    return item if item is not None else request.node


def _builtin_value(argname: str) -> object:
    if argname == "nursery":
        return NURSERY
    if argname == "autojump_clock":
        return vivace.testing.MockClock(autojump_threshold=0)
    return vivace.testing.MockClock()


def _is_builtin(fixturedef: pytest.FixtureDef[Any]) -> bool:
    # Ours, or pytest-trio's namesake (whichever pytest picked): not a user's override.
    func = fixturedef.func
    return fixturedef.argname in _BUILTIN_FIXTURES and (
        func in _OUR_FIXTURE_FUNCS or getattr(func, "__module__", None) == _PYTEST_TRIO_MODULE
    )


def _bound_fixture_function(fixturedef: pytest.FixtureDef[Any],
                            request: pytest.FixtureRequest) -> Callable[..., Any]:
    # A fixture defined in a test class is bound to the instance pytest collected with;
    # bind it to the instance the test runs on instead, as pytest does for sync fixtures.
    func = fixturedef.func
    instance = request.instance
    if (
        instance is not None
        and inspect.ismethod(func)
        and type(func.__self__) is type(instance)
    ):
        return func.__func__.__get__(instance)
    return func


def _is_async_function(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


def _cache(fixturedef: pytest.FixtureDef[Any], request: Any, value: object) -> object:
    # What pytest's own setup would record; its teardown then just forgets the value.
    # (request is the SubRequest pytest passes, a type pytest does not export.)
    fixturedef.cached_result = (value, fixturedef.cache_key(request), None)
    return value


def _refuse(fixturedef: pytest.FixtureDef[Any], request: Any, message: str) -> NoReturn:
    # Cached like any setup failure: a second request for the fixture in the same test
    # (through another fixture) must see the same error, not set it up again.
    try:
        pytest.fail(message, pytrace=False)
    except pytest.fail.Exception as exc:
        exc.__suppress_context__ = True  # replacing pytest's own refusal: show ours alone
        fixturedef.cached_result = (None, fixturedef.cache_key(request), (exc, exc.__traceback__))
        raise


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any],
                         request: pytest.FixtureRequest) -> object | None:
    item = _requesting_item(request)
    vivace_test = _is_vivace_test(item)
    argname = fixturedef.argname

    if _is_builtin(fixturedef):
        if vivace_test:
            return _cache(fixturedef, request, _builtin_value(argname))
        if (
            argname == "nursery"
            and isinstance(item, pytest.Item)
            and item.get_closest_marker("trio") is None
        ):
            # Neither plugin can give a nursery to a test that runs no event loop.
            _refuse(fixturedef, request, _nursery_refusal(item))
        return None

    func = _bound_fixture_function(fixturedef, request)
    forced = getattr(fixturedef.func, "_vivace_fixture", False)
    if not (vivace_test or forced or _vivace_mode(request.config)):
        return None  # not ours: pytest or another plugin handles it
    if (
        not vivace_test
        and not forced
        and isinstance(item, pytest.Item)
        and _has_foreign_mark(item)
    ):
        return None  # another framework's test, even in vivace_mode

    kwargs = {name: request.getfixturevalue(name) for name in fixturedef.argnames}
    if not (forced or _is_async_function(func) or any(map(is_deferred, kwargs.values()))):
        return None  # a plain sync fixture: pytest runs it

    if fixturedef.scope != "function":
        _refuse(
            fixturedef,
            request,
            f"fixture {argname!r} has scope {fixturedef.scope!r}, but fixtures that run "
            "inside vivace (async ones, or sync ones using them) must be function-scoped: "
            "each vivace test runs them in its own vivace.run",
        )
    if not vivace_test:
        test_name = getattr(item, "name", "this test")
        _refuse(
            fixturedef,
            request,
            f"fixture {argname!r} runs inside vivace, so only vivace tests can use it, and "
            f"{test_name!r} is not one: make the test `async def`"
            + ("" if _vivace_mode(request.config) else " and mark it @pytest.mark.vivace")
            + f", or make {argname!r} a plain sync fixture",
        )
    return _cache(fixturedef, request, DeferredFixture(f"<fixture {argname!r}>", func, kwargs))


@pytest.hookimpl(wrapper=True, specname="pytest_fixture_setup")
def pytest_fixture_setup_unhandled_async(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    # pytest itself refuses an async fixture that no plugin took on; when the test is not
    # another framework's, say what would make vivace take it on.
    try:
        return (yield)
    except pytest.fail.Exception as exc:
        item = _requesting_item(request)
        if (
            "requested an async fixture" in str(exc)
            and _is_async_function(fixturedef.func)
            and isinstance(item, pytest.Item)
            and not _has_foreign_mark(item)
        ):
            _refuse(
                fixturedef,
                request,
                f"{item.name!r} requested the async fixture {fixturedef.argname!r}, but "
                f"{item.name!r} is not a vivace test: to run it with vivace, make it "
                "`async def` and mark it @pytest.mark.vivace (or set vivace_mode = true "
                "in the pytest configuration); a sync test can only use sync fixtures",
            )
        raise


def _nursery_refusal(item: pytest.Item) -> str:
    return (
        f"the 'nursery' fixture is only for vivace tests, and {item.name!r} is not one: "
        "make it `async def` and mark it @pytest.mark.vivace"
    )


def _overridden_value(request: pytest.FixtureRequest, argname: str) -> object:
    # A fixture asking for its own name gets the definition it overrides.
    try:
        return request.getfixturevalue(argname)
    except pytest.FixtureLookupError:
        return _NOT_FOUND


_NOT_FOUND = object()


# The bodies below serve only tests that are not vivace's: for a vivace test the setup
# hook answers first. With pytest-trio loaded, they pass a trio test pytest-trio's own.


@pytest.fixture
def nursery(request: pytest.FixtureRequest) -> object:
    """A nursery living as long as the vivace test (or fixture) that asks for it."""
    value = _overridden_value(request, "nursery")
    if value is _NOT_FOUND:
        pytest.fail(_nursery_refusal(request.node), pytrace=False)
    return value


@pytest.fixture
def autojump_clock(request: pytest.FixtureRequest) -> object:
    """``vivace.testing.MockClock(autojump_threshold=0)``; the vivace test runs on it."""
    value = _overridden_value(request, "autojump_clock")
    return _builtin_value("autojump_clock") if value is _NOT_FOUND else value


@pytest.fixture
def mock_clock(request: pytest.FixtureRequest) -> object:
    """``vivace.testing.MockClock()``; the vivace test runs on it."""
    value = _overridden_value(request, "mock_clock")
    return _builtin_value("mock_clock") if value is _NOT_FOUND else value


def _unwrapped(fixture: object) -> object:
    # pytest wraps fixture functions in a definition object; fixturedef.func is the
    # function itself.
    return getattr(fixture, "_get_wrapped_function", lambda: fixture)()


_OUR_FIXTURE_FUNCS = frozenset(_unwrapped(f) for f in (nursery, autojump_clock, mock_clock))


# ---------------------------------------------------------------- running the test


def _single_kind(kwargs: dict[str, Any], kind: type) -> list[tuple[str, Any]]:
    return [(name, value) for name, value in kwargs.items() if isinstance(value, kind)]


def _runner(testfunc: Callable[..., Any]) -> Callable[..., None]:
    @functools.wraps(testfunc)
    def run_with_vivace(*args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        clocks = _single_kind(kwargs, vivace.abc.Clock)
        if len(clocks) > 1:
            names = ", ".join(name for name, _ in clocks)
            raise ValueError(f"a vivace test can run on one clock, but it uses several: {names}")
        clock = clocks[0][1] if clocks else None
        instruments = [value for _, value in _single_kind(kwargs, vivace.abc.Instrument)]
        name = f"<test {getattr(testfunc, '__name__', repr(testfunc))!r}>"
        call = functools.partial(testfunc, *args) if args else testfunc
        try:
            vivace.run(run_test, name, call, kwargs, clock=clock, instruments=instruments)
        except BaseExceptionGroup as group:
            _reraise_lone_outcome(group)
            raise

    return run_with_vivace


def _reraise_lone_outcome(group: BaseExceptionGroup[BaseException]) -> None:
    # pytest.skip() or pytest.xfail() called in a child task arrives wrapped in a group;
    # when it is the only thing in there, it is the test's outcome.
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    if len(leaves) == 1 and isinstance(leaves[0], (pytest.skip.Exception, pytest.xfail.Exception)):
        raise leaves[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    __tracebackhide__ = True
    if not _is_vivace_test(item):
        return (yield)
    assert isinstance(item, pytest.Function)
    if not _is_async_test(item):
        pytest.fail(f"{item.name} is marked vivace but is not `async def`", pytrace=False)
    # Swapped in only for this call: the item keeps its own function for reporting.
    original = item.obj
    hypothesis = getattr(original, "hypothesis", None)
    if hypothesis is not None:
        inner = hypothesis.inner_test
        hypothesis.inner_test = _runner(inner)
        try:
            return (yield)
        finally:
            hypothesis.inner_test = inner
    item.obj = _runner(original)
    try:
        return (yield)
    finally:
        item.obj = original
