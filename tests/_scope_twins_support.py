"""Shared by ``test_twins_scope``: the cancel-scope twins (``vivace._core._scope_py`` and,
when built, ``vivace._core._ext._scope``) and a small harness that drives each twin on a
kernel of the SAME engine.

Why a kernel per engine: the compiled ``__enter__``/``__exit__`` cast the runner and the
task to the compiled ``KernelBase``/``TaskBase`` and push onto the compiled
``DeadlineHeap`` in C, so each twin runs with its own engine's kernel, task and heap.
The harness plays the Runner's part: it sets ``GLOBAL_RUN_CONTEXT.runner`` and
``runner.current_task`` (which task is "running"), and owns a settable clock.

Two kinds of subclasses are built per twin:

* ``Rec*`` classes implement the callbacks the bases call (``recalculate``,
  ``_close_abandoned``, ``_cancel_at_entry``, ``_update_deadline_registration``,
  ``_exit_slow``) by logging them, so a test sees exactly which path a base took and
  in which state;
* ``Pub*`` classes are the public ``CancelScope``/``CancelStatus`` of ``_cancel.py``
  re-based onto the twin's bases (their methods copied over), so the public behaviour
  -- deadlines, shield, cancel(), misnesting errors -- is compared on both twins in one
  process, not only on the engine that happens to be loaded.

A status class is registered per module (``set_status_class``); ``status_class``
restores the loaded engine's ``CancelStatus`` afterwards.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import os
import re
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from vivace._core import _cancel, _heap_py, _impl, _kernel_py, _scope_py
from vivace._core._run_context import GLOBAL_RUN_CONTEXT

_REQUIRED = os.environ.get("VIVACE_REQUIRE_EXTENSIONS", "") not in ("", "0")

try:
    from vivace._core._ext import _heap as _heap_c, _kernel as _kernel_c, _scope as _scope_c
except ImportError:  # not built
    if _REQUIRED:
        raise
    _scope_c = None


@dataclasses.dataclass(frozen=True)
class Twin:
    name: str
    S: types.ModuleType  # the scope twin
    K: types.ModuleType  # the kernel of the same engine
    Heap: type  # the deadline heap of the same engine

    def __repr__(self) -> str:
        return self.name


REFERENCE = Twin("reference", _scope_py, _kernel_py, _heap_py.DeadlineHeap)
TWINS = [pytest.param(REFERENCE, id="reference")]
if _scope_c is not None:
    COMPILED: Twin | None = Twin("compiled", _scope_c, _kernel_c, _heap_c.DeadlineHeap)
    TWINS.append(pytest.param(COMPILED, id="compiled"))
else:
    COMPILED = None


class FakeCancelled(BaseException):
    """What the recording harness treats as its scopes' Cancelled."""


_ADDRESS = re.compile(r"0x[0-9a-f]+")


def describe(exc: BaseException) -> tuple[str, ...]:
    """An error as (type name, message) with object addresses blanked."""
    return (type(exc).__name__, _ADDRESS.sub("0x?", str(exc)))


def outcome_of(fn: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001
        return describe(exc)


def _name(obj: Any) -> Any:
    return None if obj is None else obj.name


# ------------------------------------------------------------------ per-twin classes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def current_time(self) -> float:
        return self.now


@dataclasses.dataclass
class Classes:
    Task: type
    Runner: type
    RecStatus: type
    RecScope: type
    PubStatus: type
    PubScope: type


_CLASSES: dict[str, Classes] = {}


def _copied(source: type, base: type, name: str, slots: tuple[str, ...]) -> type:
    skip = {"__dict__", "__weakref__", "__slots__", "__module__", "__doc__"}
    ns = {k: v for k, v in vars(source).items() if k not in skip}
    ns["__slots__"] = slots
    ns["__module__"] = __name__
    return type(name, (base,), ns)


def classes(tw: Twin) -> Classes:
    if tw.name in _CLASSES:
        return _CLASSES[tw.name]
    K, S = tw.K, tw.S

    class Task(K.TaskBase):  # type: ignore[misc,name-defined]
        __slots__ = ("log", "name")

        def __repr__(self) -> str:
            return f"<Task {self.name}>"

        def _attempt_delivery_of_any_pending_cancel(self) -> None:
            self.log.append(("deliver", self.name, self._cancel_status.effectively_cancelled))

        def _activate_cancel_status(self, status: Any) -> None:
            self.log.append(("activate", self.name, _name(getattr(status, "_scope", None))))
            old = self._cancel_status
            if old is not None:
                old._tasks.discard(self)
            self._cancel_status = status
            if status is not None:
                status._tasks.add(self)
                if status.effectively_cancelled:
                    self._attempt_delivery_of_any_pending_cancel()

    class Runner(K.KernelBase):  # type: ignore[misc,name-defined]
        def force_guest_tick_asap(self) -> None:
            self.log.append(("guest_tick",))

    class RecStatus(S.CancelStatusBase):  # type: ignore[misc,name-defined]
        __slots__ = ()

        def recalculate(self) -> None:
            scope = self._scope
            scope.log.append(("recalculate", scope.name))
            new = scope._cancel_called or self.parent_cancellation_is_visible_to_us
            if new != self.effectively_cancelled:
                self.effectively_cancelled = new
                if new:
                    for task in sorted(self._tasks, key=_name):
                        task._attempt_delivery_of_any_pending_cancel()
                for child in sorted(self._children or (), key=lambda s: s._scope.name):
                    child.recalculate()

        def _close_abandoned(self) -> None:
            scope = self._scope
            scope.log.append(("close_abandoned", scope.name, sorted(_name(t) for t in self._tasks)))
            self.abandoned_by_misnesting = True

    class RecScope(S.CancelScopeBase):  # type: ignore[misc,name-defined]
        __slots__ = ("log", "name")

        def _cancel_at_entry(self) -> None:
            self.log.append(("cancel_at_entry", self.name, self._deadline))
            self._cancel_called = True

        def _update_deadline_registration(self) -> None:
            self.log.append(("update_registration", self.name, self._deadline))

        def _exit_slow(self, exc_type: Any, exc_value: Any, traceback: Any) -> bool:
            # Log the state the base handed over, then clean up roughly as _cancel does
            # so a scenario can go on.
            status = self._cancel_status
            runner = self._runner
            task = runner.current_task if runner is not None else None
            self.log.append(
                (
                    "exit_slow",
                    self.name,
                    None if exc_type is None else exc_type.__name__,
                    status is not None,
                    _name(task),
                    task is not None and task._cancel_status is status,
                )
            )
            if status is None:
                raise RuntimeError(f"{self.name} was already exited")
            if task is not None and task._cancel_status is status:
                task._activate_cancel_status(status._parent)
            caught = isinstance(exc_value, FakeCancelled) and status.effectively_cancelled
            status.close()
            self._cancel_status = None
            if self._heap_handle is not None:
                runner.deadlines.discard(self._heap_handle)
                self._heap_handle = None
            if caught:
                self.cancelled_caught = True
            return exc_value is None or caught

    PubStatus = _copied(_cancel.CancelStatus, S.CancelStatusBase, "CancelStatus", ())
    PubScope = _copied(_cancel.CancelScope, S.CancelScopeBase, "CancelScope", ("name",))
    made = Classes(Task, Runner, RecStatus, RecScope, PubStatus, PubScope)
    _CLASSES[tw.name] = made
    return made


@contextmanager
def status_class(tw: Twin, cls: type) -> Iterator[None]:
    """Register *cls* as *tw*'s status class for a while.

    Afterwards the loaded engine's module gets ``_cancel.CancelStatus`` back and the
    reference its previous class; the compiled module's registration is a C global
    nobody can read, so when it is not the loaded engine it keeps *cls* (nothing else
    in the process enters its scopes)."""
    before = tw.S._status_class if tw.S is _scope_py else None
    tw.S.set_status_class(cls)
    try:
        yield
    finally:
        if _impl.set_status_class is tw.S.set_status_class:
            tw.S.set_status_class(_cancel.CancelStatus)
        elif before is not None:
            tw.S.set_status_class(before)


# ------------------------------------------------------------------ the harness


class Env:
    """One twin's runner, tasks and log; ``run_as`` makes a task the current one."""

    def __init__(self, tw: Twin, public: bool = False) -> None:
        self.tw = tw
        self.c = classes(tw)
        self.public = public
        self.log: list[Any] = []
        self.runner = self.c.Runner()
        self.runner.clock = Clock()
        self.runner.deadlines = tw.Heap()
        self.runner.log = self.log
        self.tasks: dict[str, Any] = {}

    def task(self, name: str) -> Any:
        task = self.c.Task(None, contextvars.copy_context(), self.runner, len(self.tasks), False)
        task.name = name
        task.log = self.log
        self.tasks[name] = task
        return task

    def scope(self, name: str, **kwargs: Any) -> Any:
        cls = self.c.PubScope if self.public else self.c.RecScope
        scope = cls(**kwargs)
        scope.name = name
        if not self.public:
            scope.log = self.log
        return scope

    def status(self, scope: Any, parent: Any) -> Any:
        cls = self.c.PubStatus if self.public else self.c.RecStatus
        return cls(scope, parent)

    @property
    def now(self) -> float:
        return float(self.runner.clock.now)

    @now.setter
    def now(self, value: float) -> None:
        self.runner.clock.now = value

    @contextmanager
    def active(self, register: bool = True) -> Iterator[Env]:
        """The run is active in this thread (no task current until ``run_as``)."""
        cls = self.c.PubStatus if self.public else self.c.RecStatus
        old = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        GLOBAL_RUN_CONTEXT.runner = self.runner
        try:
            if register:
                with status_class(self.tw, cls):
                    yield self
            else:
                yield self
        finally:
            self.runner.current_task = None
            if old is None:
                del GLOBAL_RUN_CONTEXT.runner
            else:
                GLOBAL_RUN_CONTEXT.runner = old

    def run_as(self, task: Any) -> None:
        self.runner.current_task = task

    def tree(self, *scopes: Any) -> list[Any]:
        """The status tree, the tasks' positions in it and the heap, by name."""
        out: list[Any] = []
        for scope in scopes:
            status = scope._cancel_status
            handle = scope._heap_handle
            heap_deadline = None if handle is None else self.runner.deadlines.deadline_of(handle)
            if status is None:
                out.append((scope.name, None, heap_deadline))
                continue
            out.append(
                (
                    scope.name,
                    _name(getattr(status._parent, "_scope", None)),
                    sorted(c._scope.name for c in status._children or ()),
                    sorted(t.name for t in status._tasks),
                    status.effectively_cancelled,
                    status.abandoned_by_misnesting,
                    heap_deadline,
                )
            )
        for name, task in sorted(self.tasks.items()):
            out.append((name, _name(getattr(task._cancel_status, "_scope", None))))
        out.append(("heap", len(self.runner.deadlines)))
        return out

    def call(self, fn: Any, *args: Any) -> Any:
        """Run *fn* and log its result or error; returns the result (None on error)."""
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001
            self.log.append(("error", *describe(exc)))
            return None
        self.log.append(("ok", result if not hasattr(result, "name") else result.name))
        return result


# ------------------------------------------------------------------ scenarios
# Each drives the recording subclasses through one situation and returns the log.

INF = math.inf


def fields(scope: Any) -> tuple[Any, ...]:
    return (
        scope._deadline,
        scope._relative_deadline,
        scope._shield,
        scope._cancel_status,
        scope._has_been_entered,
        scope._cancel_called,
        scope._cancel_reason,
        scope._heap_handle,
        scope._runner,
        scope.cancelled_caught,
    )


def s_outside_async_context(env: Env) -> list[Any]:
    scope = env.scope("A")
    env.call(scope.__enter__)  # no run at all
    with env.active():
        env.call(scope.__enter__)  # a run, but no task running
        env.log.append(fields(scope)[3:])
        env.run_as(env.task("t1"))
        env.call(scope.__enter__)  # still usable
        env.log.append(env.tree(scope))
        env.call(scope.__exit__, None, None, None)
    return env.log


def s_properly_nested(env: Env) -> list[Any]:
    with env.active():
        env.now = 1.0
        env.run_as(env.task("t1"))
        a, b, c = env.scope("A"), env.scope("B", deadline=5), env.scope("C", relative_deadline=2)
        env.call(a.__enter__)
        env.call(b.__enter__)
        env.call(c.__enter__)
        env.log.append((c._deadline, c._relative_deadline, b._runner is env.runner))
        env.log.append(env.tree(a, b, c))
        env.call(c.__exit__, None, None, None)
        error = ValueError("passes through")
        env.call(b.__exit__, ValueError, error, None)  # not ours to catch: False
        env.log.append(env.tree(a, b, c))
        env.call(a.__exit__, None, None, None)
        env.log.append(env.tree(a, b, c))
        env.call(a.__enter__)
        env.call(c.__enter__)
    return env.log


def s_deadline_reached_at_entry(env: Env) -> list[Any]:
    with env.active():
        env.now = 10.0
        env.run_as(env.task("t1"))
        outer = env.scope("O")
        env.call(outer.__enter__)
        scopes = [
            env.scope("at", deadline=10),
            env.scope("past", deadline=-INF),
            env.scope("rel0", relative_deadline=0),
            env.scope("later", deadline=10.5),
        ]
        for scope in scopes:
            env.call(scope.__enter__)
            env.log.append(env.tree(scope))
            env.call(scope.__exit__, None, None, None)
        env.call(outer.__exit__, None, None, None)
    return env.log


def s_exit_twice_and_out_of_order(env: Env) -> list[Any]:
    with env.active():
        env.run_as(env.task("t1"))
        a, b, c = env.scope("A"), env.scope("B", deadline=4), env.scope("C")
        env.call(a.__enter__)
        env.call(b.__enter__)
        env.call(c.__enter__)
        env.call(b.__exit__, None, None, None)  # C is still inside
        env.log.append(env.tree(a, b, c))
        env.call(c.__exit__, None, None, None)
        env.call(c.__exit__, None, None, None)  # twice
        env.call(a.__exit__, None, None, None)
        env.log.append(env.tree(a, b, c))
    return env.log


def s_exit_in_another_task(env: Env) -> list[Any]:
    with env.active():
        t1, t2 = env.task("t1"), env.task("t2")
        a, b = env.scope("A"), env.scope("B")
        env.run_as(t1)
        env.call(a.__enter__)
        env.run_as(t2)
        env.call(a.__exit__, None, None, None)  # t2 is not in A
        env.run_as(t1)
        env.call(b.__enter__)
        t2._cancel_status = b._cancel_status  # a second task inside B
        b._cancel_status._tasks.add(t2)
        env.call(b.__exit__, None, None, None)
        env.log.append(env.tree(a, b))
        env.run_as(None)
        c = env.scope("C")
        env.run_as(t2)
        env.call(c.__enter__)
        env.run_as(None)
        env.call(c.__exit__, None, None, None)  # no task running at all
    return env.log


def s_exit_with_a_child_status(env: Env) -> list[Any]:
    # A nursery-like shape: a child task's status hangs below the one being exited.
    with env.active():
        t1, child = env.task("t1"), env.task("child")
        a, inner = env.scope("A"), env.scope("inner")
        env.run_as(t1)
        env.call(a.__enter__)
        env.run_as(child)
        child._cancel_status = a._cancel_status
        a._cancel_status._tasks.add(child)
        env.call(inner.__enter__)
        env.log.append(env.tree(a, inner))
        env.run_as(t1)
        env.call(a.__exit__, None, None, None)
        env.log.append(env.tree(a, inner))
    return env.log


def s_catching(env: Env) -> list[Any]:
    with env.active():
        env.run_as(env.task("t1"))
        outer, mid, inner, shielded = (
            env.scope("outer"),
            env.scope("mid"),
            env.scope("inner"),
            env.scope("shielded", shield=True),
        )
        env.call(outer.__enter__)
        outer._cancel_called = True
        outer._cancel_status.recalculate()
        env.call(mid.__enter__)  # born cancelled (the parent's, visible)
        env.call(shielded.__enter__)  # not
        env.log.append(env.tree(outer, mid, shielded))
        exc = FakeCancelled()
        env.call(shielded.__exit__, FakeCancelled, exc, None)  # fast, passes through
        env.call(mid.__exit__, FakeCancelled, exc, None)  # the parent's: fast, False
        env.call(inner.__enter__)
        env.call(inner.__exit__, None, None, None)  # cancelled, nothing raised: fast
        env.call(outer.__exit__, FakeCancelled, exc, None)  # its own: the slow path
        env.log.append((outer.cancelled_caught, mid.cancelled_caught))
    return env.log


def s_guest(env: Env) -> list[Any]:
    with env.active():
        env.runner.is_guest = True
        env.run_as(env.task("t1"))
        a = env.scope("A", deadline=7)
        b = env.scope("B")
        env.call(a.__enter__)
        env.call(b.__enter__)
        env.call(b.__exit__, None, None, None)
        env.call(a.__exit__, None, None, None)
        env.log.append(env.tree(a, b))
    return env.log


def s_stale_heap_handle_at_exit(env: Env) -> list[Any]:
    with env.active():
        env.run_as(env.task("t1"))
        a = env.scope("A", deadline=3)
        env.call(a.__enter__)
        handle = a._heap_handle
        env.runner.deadlines.remove(handle)
        env.call(a.__exit__, None, None, None)
        env.log.append((handle, a._heap_handle, env.tree(a)))
    return env.log


def s_reenter(env: Env) -> list[Any]:
    with env.active():
        env.run_as(env.task("t1"))
        a = env.scope("A", deadline=2)
        env.call(a.__enter__)
        env.call(a.__enter__)
        env.log.append(env.tree(a))
        env.call(a.__exit__, None, None, None)
        env.call(a.__enter__)
        env.log.append(env.tree(a))
    return env.log


def s_status_base(env: Env) -> list[Any]:
    with env.active():
        t1 = env.task("t1")
        a, b, c = env.scope("A"), env.scope("B", shield=True), env.scope("C")
        sa = env.status(a, None)
        sb = env.status(b, sa)
        sc = env.status(c, sa)
        visible = [s.parent_cancellation_is_visible_to_us for s in (sa, sb, sc)]
        env.log.append(visible)
        sa.effectively_cancelled = True
        visible = [s.parent_cancellation_is_visible_to_us for s in (sa, sb, sc)]
        env.log.append(visible)
        c._cancel_called = True
        sd = env.status(env.scope("D"), sc)  # its own scope is not cancelled
        e = env.scope("E")
        e._cancel_called = True
        se = env.status(e, sa)  # born cancelled: recalculated at once
        env.log.append((sd.effectively_cancelled, se.effectively_cancelled))
        env.log.append(sorted(x._scope.name for x in sa._children))
        se.close()
        sb.close()
        env.log.append((sb._parent, sorted(x._scope.name for x in sa._children)))
        sc._tasks.add(t1)
        sc.close()  # a task and a child still there: abandoned
        sa.close()
        env.log.append((sa._children, sc._parent, sa._parent))
    return env.log


def enter_unregistered(env: Env) -> list[Any]:
    """Enter a scope whose deadline has passed with no status class registered."""
    with env.active(register=False):
        env.run_as(env.task("t1"))
        scope = env.scope("A", deadline=-1.0)
        env.call(scope.__enter__)
        env.log.append((scope._has_been_entered, scope._cancel_called, scope._cancel_status))
        env.log.append(env.tree(scope))
    return env.log
