"""The run behind ``vivace.pytest_plugin``: one vivace test and its async fixtures.

pytest sets fixtures up and tears them down synchronously, outside any event loop. So a
fixture that needs vivace is not run by pytest at all: the plugin caches a
``DeferredFixture`` (the function plus its resolved arguments) as its value, and the test
runner below, inside a single ``vivace.run``, sets up the whole graph of deferred fixtures,
runs the test, and tears the graph down again.

Design notes (invariants):
- One ``vivace.run`` per test call (per example, under Hypothesis): every deferred fixture
  is set up, used and torn down inside it; nothing deferred outlives the run.
- Every node (each deferred fixture, and the test itself) runs in a task of its own, so a
  failure in one never cancels another implicitly, and all of them share one
  ``contextvars.Context``: a context variable set by a fixture is seen by the test and by
  the fixtures set up after it.
- Order comes from events, not from task order: a node starts once every fixture it uses
  has finished setting up, and tears down once every node using it has finished. Fixtures
  that do not depend on each other set up (and tear down) concurrently.
- A node that fails (setup, teardown, or a task in its nursery) marks the run crashed:
  whatever is still setting up, and the test if it is running, is cancelled; nodes not yet
  started never start; teardown then goes on in the normal order for those already set up.
- Each node owns a nursery (what the ``nursery`` fixture gives it); it is cancelled when
  the node is done: after the test body returns, or after the fixture's teardown.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any

import vivace
import vivace.lowlevel


class _NurseryRequest:
    """The value of the ``nursery`` fixture for a vivace test: "my own nursery, please"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<the vivace nursery fixture (only usable inside a vivace test)>"


NURSERY = _NurseryRequest()


class DeferredFixture:
    """What pytest caches as the value of a fixture that has to run inside vivace.

    Only static facts live here (pytest may hand the same object to several runs under
    Hypothesis); whatever one run learns about the fixture lives in that run's ``_Node``.
    """

    __slots__ = ("func", "kwargs", "name")

    def __init__(self, name: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        self.name = name
        self.func = func
        self.kwargs = kwargs

    def __repr__(self) -> str:
        # Seen only if the value leaks into code that runs outside the test's vivace.run.
        return f"<{self.name}: set up inside the vivace test that uses it>"


def is_deferred(value: object) -> bool:
    return value is NURSERY or isinstance(value, DeferredFixture)


# Set in the shared context, so each node can check it really switched to it.
_RUN: contextvars.ContextVar[_RunState] = contextvars.ContextVar("vivace.pytest_plugin run")


class _RunState:
    """What all the nodes of one run share: has anything crashed, and what went wrong."""

    def __init__(self) -> None:
        self.crashed = False
        # The nursery scopes of the nodes currently setting up (or of the running test):
        # a crash cancels exactly these. A node that finished setting up is left alone
        # and tears down in order once its users are done.
        self.cancel_on_crash: set[vivace.CancelScope] = set()
        self.errors: list[BaseException] = []
        self.failed: list[_Node] = []
        self.cancelled: list[_Node] = []

    def crash(self, node: _Node, error: BaseException | None) -> None:
        # error None: the node was cancelled from inside (a scope it left open) without
        # anything raising; reported after the run unless it also raised.
        if error is None:
            self.cancelled.append(node)
        else:
            self.errors.append(error)
            self.failed.append(node)
        self.crashed = True
        for scope in self.cancel_on_crash:
            scope.cancel()


class _Node:
    """One deferred fixture, or the test, within one run."""

    def __init__(self, name: str, func: Callable[..., Any], kwargs: dict[str, Any],
                 is_test: bool) -> None:
        self.name = name
        self.func = func
        self.kwargs = kwargs
        self.is_test = is_test
        self.deps: dict[str, _Node] = {}
        # Invariant: once set, either ``value`` is usable or the run has crashed.
        self.setup_done = vivace.Event()
        self.finished = vivace.Event()
        # The ``finished`` events of the nodes that use this one: teardown waits for all.
        self.users_finished: list[vivace.Event] = []
        self.value: Any = None
        self._generator: Any = None
        self._generator_is_async = False

    async def run(self, state: _RunState, context: contextvars.Context) -> None:
        __tracebackhide__ = True
        own_error: BaseException | None = None
        try:
            await _adopt_context(context, state)
            try:
                async with vivace.open_nursery() as own:
                    try:
                        own_error = await self._lifecycle(state, own)
                    finally:
                        own.cancel_scope.cancel()
            except BaseException as background_error:
                # A task in this node's nursery failed (or, rarely, something escaped
                # from outside): own_error, if any, goes first, as it happened first.
                if own_error is not None:
                    state.crash(self, own_error)
                    own_error = None
                state.crash(self, background_error)
            if own_error is not None:
                state.crash(self, own_error)
        finally:
            self.setup_done.set()
            self.finished.set()

    async def _lifecycle(self, state: _RunState,
                         own: vivace.Nursery) -> BaseException | None:
        """Set up (or run the test), wait for the users, tear down.

        The node's own failure is returned rather than raised, so that it reaches the
        report as it was raised instead of wrapped in the group of the node's nursery.
        Cancelled always propagates: it belongs to that nursery's scope.
        """
        __tracebackhide__ = True
        kwargs: dict[str, Any] = {}
        for argname, value in self.kwargs.items():
            if value is NURSERY:
                kwargs[argname] = own
            elif argname in self.deps:
                dep = self.deps[argname]
                await dep.setup_done.wait()
                kwargs[argname] = dep.value
            else:
                kwargs[argname] = value
        if state.crashed:
            # Something failed before this node could start: it never starts.
            return None

        state.cancel_on_crash.add(own.cancel_scope)
        try:
            if self.is_test:
                await self.func(**kwargs)
                return None
            self.value = await self._set_up(kwargs)
        except vivace.Cancelled:
            raise
        except BaseException as exc:
            return exc
        finally:
            state.cancel_on_crash.discard(own.cancel_scope)
        self.setup_done.set()

        # From here until teardown, a cancellation can only come from a scope the fixture
        # left open across its yield (its own nursery, or one of its own making) whose
        # task crashed. It cannot be delivered where it belongs (pytest fixtures are not
        # resumable at an arbitrary point), so: mark the run crashed, which cancels the
        # test; wait, shielded, for the users to finish; then throw the Cancelled in at
        # the fixture's yield so its scope sees it.
        thrown: vivace.Cancelled | None = None
        try:
            for event in self.users_finished:
                await event.wait()
        except vivace.Cancelled as exc:
            thrown = exc
            state.crash(self, None)
            with vivace.CancelScope(shield=True):
                for event in self.users_finished:
                    await event.wait()

        try:
            await self._tear_down(thrown)
        except vivace.Cancelled:
            raise
        except BaseException as exc:
            return exc
        return None

    async def _set_up(self, kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        func = self.func
        if inspect.iscoroutinefunction(func):
            return await func(**kwargs)
        if inspect.isasyncgenfunction(func):
            self._generator = agen = func(**kwargs)
            self._generator_is_async = True
            try:
                return await agen.asend(None)
            except StopAsyncIteration:
                raise RuntimeError(f"{self.name} did not yield a value") from None
        if inspect.isgeneratorfunction(func):
            self._generator = gen = func(**kwargs)
            try:
                return gen.send(None)
            except StopIteration:
                raise RuntimeError(f"{self.name} did not yield a value") from None
        return func(**kwargs)

    async def _tear_down(self, thrown: vivace.Cancelled | None) -> None:
        __tracebackhide__ = True
        gen = self._generator
        if gen is None:
            return
        self._generator = None
        if self._generator_is_async:
            try:
                if thrown is None:
                    await gen.asend(None)
                else:
                    await gen.athrow(thrown)
            except StopAsyncIteration:
                return
            # Close it here, inside the run, rather than leave it to the collector.
            await gen.aclose()
        else:
            try:
                if thrown is None:
                    gen.send(None)
                else:
                    gen.throw(thrown)
            except StopIteration:
                return
            gen.close()
        raise RuntimeError(f"{self.name} yielded more than once; a fixture yields once")


async def _adopt_context(context: contextvars.Context, state: _RunState) -> None:
    # A task's context is fixed when it is spawned (a copy of its parent's); nodes must
    # share one, so each switches its own task over. The switch takes effect at the
    # task's next step, hence the checkpoint (shielded: nothing can cancel it yet anyway).
    vivace.lowlevel.current_task().context = context
    await vivace.lowlevel.cancel_shielded_checkpoint()
    if _RUN.get(None) is not state:
        raise RuntimeError("vivace.pytest_plugin: could not switch the task's context")


def _build_graph(test: _Node) -> list[_Node]:
    """Every node the test needs, each once, dependencies before their users."""
    nodes: dict[int, _Node] = {}
    order: list[_Node] = []

    def visit(node: _Node) -> None:
        for argname, value in node.kwargs.items():
            if not isinstance(value, DeferredFixture):
                continue
            dep = nodes.get(id(value))
            if dep is None:
                dep = nodes[id(value)] = _Node(value.name, value.func, value.kwargs, False)
                visit(dep)
            node.deps[argname] = dep
            dep.users_finished.append(node.finished)
        order.append(node)

    visit(test)
    return order


async def run_test(name: str, testfunc: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Set up the test's deferred fixtures, run it, tear them down: the main task."""
    __tracebackhide__ = True
    state = _RunState()
    context = contextvars.copy_context()
    context.run(_RUN.set, state)
    nodes = _build_graph(_Node(name, testfunc, kwargs, True))
    async with vivace.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(node.run, state, context, name=node.name)

    for node in state.cancelled:
        if node not in state.failed:
            state.errors.append(
                RuntimeError(f"{node.name} cancelled the test but did not raise an error")
            )
    if len(state.errors) == 1:
        raise state.errors[0]
    if state.errors:
        raise BaseExceptionGroup("errors in a vivace test and its fixtures", state.errors)
