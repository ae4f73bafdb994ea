"""Twin tests of the hot half of cancel scopes: ``vivace._core._scope_py`` (reference)
against ``vivace._core._ext._scope`` (compiled) -- ``CancelScopeBase``,
``CancelStatusBase`` and ``set_status_class``.

Each twin runs on a kernel, task and deadline heap of its own engine (see
``_scope_twins_support``).  Scenarios log what the bases do -- which callbacks they
call (``recalculate``, ``_cancel_at_entry``, ``_exit_slow``, ...), in which state, what
they return or raise -- plus snapshots of the status tree, the tasks' places in it and
the heap; each test compares a twin's log with one literal expectation, so both twins
are held to the same values.  The public ``CancelScope``/``CancelStatus`` of
``_cancel.py`` are re-based onto each twin for the scenarios that need the real
callbacks (deadlines, shield, cancel(), misnesting errors).

One check runs in a subprocess: entering a compiled scope when no status class was
ever registered.  That registration is a C global of ``_ext/_scope`` which nothing can
unset, and importing vivace on the compiled engine sets it, so only a fresh process on
the reference engine (``VIVACE_NO_EXTENSIONS=1``) still has it unset.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest
import trio

from _scope_twins_support import (
    COMPILED,
    REFERENCE,
    TWINS,
    Env,
    Twin,
    classes,
    enter_unregistered,
    fields,
    outcome_of,
    s_catching,
    s_deadline_reached_at_entry,
    s_exit_in_another_task,
    s_exit_twice_and_out_of_order,
    s_exit_with_a_child_status,
    s_guest,
    s_outside_async_context,
    s_properly_nested,
    s_reenter,
    s_stale_heap_handle_at_exit,
    s_status_base,
)
from vivace._core import _scope_py

twins = pytest.mark.parametrize("tw", TWINS)
INF = math.inf
NO_STATUS_CLASS = (
    "RuntimeError",
    "no cancel-status class registered; call set_status_class() first",
)
NOT_ASYNC = ("error", "RuntimeError", "must be called from async context")
SINGLE_USE = (
    "error",
    "RuntimeError",
    "Each CancelScope may only be used for a single 'with' block",
)


# ---------------------------------------------------------------- set_status_class


@twins
def test_set_status_class_accepts_only_plain_subclasses_of_its_base(tw: Twin) -> None:
    base = tw.S.CancelStatusBase

    class WithInit(base):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def __init__(self, scope: Any, parent: Any) -> None:
            raise AssertionError("the compiled twin would never call this")

    class WithNew(base):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def __new__(cls, *args: Any) -> Any:
            raise AssertionError("the compiled twin would call this without arguments")

    other = [t for t in (REFERENCE, COMPILED) if t is not None and t is not tw]
    not_subclass = ("TypeError", "the status class must be a CancelStatusBase subclass")
    overriding = ("TypeError", "the status class must not override __init__ or __new__")
    env = Env(tw)
    # Inside active(): whatever gets registered, the engine's own class comes back.
    with env.active():
        for bad in [1, None, "CancelStatus", object, tw.S.CancelScopeBase]:
            assert outcome_of(tw.S.set_status_class, bad) == not_subclass
        for twin in other:  # the other engine's statuses cannot be made by this one
            assert outcome_of(tw.S.set_status_class, classes(twin).RecStatus) == not_subclass
        assert outcome_of(tw.S.set_status_class, WithInit) == overriding
        assert outcome_of(tw.S.set_status_class, WithNew) == overriding
        tw.S.set_status_class(env.c.RecStatus)
        env.run_as(env.task("t1"))
        scope = env.scope("A")
        scope.__enter__()
        assert type(scope._cancel_status) is env.c.RecStatus
        assert scope.__exit__(None, None, None) is True


_UNREGISTERED_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import _scope_twins_support as support
print(json.dumps(support.enter_unregistered(support.Env(support.COMPILED))))
"""


@twins
def test_entering_with_no_status_class_registered_is_a_runtime_error(
    tw: Twin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An internal-usage error: it says what to call, and comes before anything changed
    # (no _cancel_at_entry for the past deadline, the scope is still unentered).
    if tw is REFERENCE:
        monkeypatch.setattr(_scope_py, "_status_class", None)
        log = json.loads(json.dumps(enter_unregistered(Env(tw))))
    else:
        env = {**os.environ, "VIVACE_NO_EXTENSIONS": "1"}
        env.pop("VIVACE_REQUIRE_EXTENSIONS", None)
        tests = os.path.dirname(os.path.abspath(__file__))
        done = subprocess.run(
            [sys.executable, "-c", _UNREGISTERED_SCRIPT, tests],
            env=env,
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        log = json.loads(done.stdout)
    assert log == [
        ["error", *NO_STATUS_CLASS],
        [False, False, None],
        [["A", None, None], ["t1", None], ["heap", 0]],
    ]


# ---------------------------------------------------------------- construction


CONSTRUCTED = [
    ({}, (INF, INF, False)),
    ({"deadline": 3}, (3.0, INF, False)),
    ({"deadline": True}, (1.0, INF, False)),
    ({"deadline": -INF}, (-INF, INF, False)),
    ({"deadline": 2, "relative_deadline": INF}, (2.0, INF, False)),
    ({"relative_deadline": 0}, (INF, 0.0, False)),
    ({"relative_deadline": -0.0}, (INF, -0.0, False)),
    ({"relative_deadline": 2.5, "shield": True}, (INF, 2.5, True)),
]


@twins
@pytest.mark.parametrize(("kwargs", "expected"), CONSTRUCTED, ids=repr)
def test_constructor_stores_float_deadlines(
    tw: Twin, kwargs: dict[str, Any], expected: Any
) -> None:
    scope = classes(tw).RecScope(**kwargs)
    assert fields(scope) == (*expected, None, False, False, None, None, None, False)
    assert [type(f) for f in fields(scope)[:3]] == [float, float, bool]


REFUSED = [
    ({"deadline": math.nan}, ("ValueError", "deadline must not be NaN")),
    ({"relative_deadline": math.nan}, ("ValueError", "relative deadline must not be NaN")),
    ({"relative_deadline": -1e-9}, ("ValueError", "timeout must be non-negative")),
    ({"relative_deadline": -INF}, ("ValueError", "timeout must be non-negative")),
    (
        {"deadline": 1, "relative_deadline": 1},
        ("ValueError", "Cannot specify both a deadline and a relative deadline"),
    ),
    (
        {"deadline": -INF, "relative_deadline": 0},
        ("ValueError", "Cannot specify both a deadline and a relative deadline"),
    ),
    ({"shield": 1}, ("TypeError", "shield must be a bool")),
    ({"shield": None}, ("TypeError", "shield must be a bool")),
    ({"deadline": "soon"}, ("TypeError", "must be real number, not str")),
    ({"relative_deadline": None}, ("TypeError", "must be real number, not NoneType")),
    ({"deadline": 10**400}, ("OverflowError", "int too large to convert to float")),
]


@twins
@pytest.mark.parametrize(("kwargs", "expected"), REFUSED, ids=repr)
def test_constructor_refuses_bad_arguments(tw: Twin, kwargs: dict[str, Any], expected: Any) -> None:
    assert outcome_of(lambda: classes(tw).RecScope(**kwargs)) == expected


@twins
def test_constructor_arguments_are_keyword_only(tw: Twin) -> None:
    # Argument binding is worded by CPython or by Cython: the type is compared.
    cls = classes(tw).RecScope
    assert outcome_of(cls, 1.0)[0] == "TypeError"
    assert outcome_of(lambda: cls(timeout=1.0))[0] == "TypeError"


# ---------------------------------------------------------------- enter and exit


@twins
def test_outside_async_context(tw: Twin) -> None:
    assert s_outside_async_context(Env(tw)) == [
        ("error", "RuntimeError", "must be called from async context"),
        ("error", "RuntimeError", "must be called from async context"),
        (None, False, False, None, None, None, False),
        ("ok", "A"),
        [("A", None, [], ["t1"], False, False, None), ("t1", "A"), ("heap", 0)],
        ("ok", True),
    ]


@twins
def test_properly_nested(tw: Twin) -> None:
    assert s_properly_nested(Env(tw)) == [
        ("ok", "A"),
        ("ok", "B"),
        ("ok", "C"),
        (3.0, INF, True),
        [
            ("A", None, ["B"], [], False, False, None),
            ("B", "A", ["C"], [], False, False, 5.0),
            ("C", "B", [], ["t1"], False, False, 3.0),
            ("t1", "C"),
            ("heap", 2),
        ],
        ("ok", True),
        ("ok", False),
        [
            ("A", None, [], ["t1"], False, False, None),
            ("B", None, None),
            ("C", None, None),
            ("t1", "A"),
            ("heap", 0),
        ],
        ("ok", True),
        [("A", None, None), ("B", None, None), ("C", None, None), ("t1", None), ("heap", 0)],
        ("error", "RuntimeError", "Each CancelScope may only be used for a single 'with' block"),
        ("error", "RuntimeError", "Each CancelScope may only be used for a single 'with' block"),
    ]


@twins
def test_deadline_reached_at_entry(tw: Twin) -> None:
    assert s_deadline_reached_at_entry(Env(tw)) == [
        ("ok", "O"),
        ("cancel_at_entry", "at", 10.0),
        ("recalculate", "at"),
        ("deliver", "t1", True),
        ("ok", "at"),
        [("at", "O", [], ["t1"], True, False, None), ("t1", "at"), ("heap", 0)],
        ("ok", True),
        ("cancel_at_entry", "past", -INF),
        ("recalculate", "past"),
        ("deliver", "t1", True),
        ("ok", "past"),
        [("past", "O", [], ["t1"], True, False, None), ("t1", "past"), ("heap", 0)],
        ("ok", True),
        ("cancel_at_entry", "rel0", 10.0),
        ("recalculate", "rel0"),
        ("deliver", "t1", True),
        ("ok", "rel0"),
        [("rel0", "O", [], ["t1"], True, False, None), ("t1", "rel0"), ("heap", 0)],
        ("ok", True),
        ("ok", "later"),
        [("later", "O", [], ["t1"], False, False, 10.5), ("t1", "later"), ("heap", 1)],
        ("ok", True),
        ("ok", True),
    ]


@twins
def test_exit_twice_and_out_of_order(tw: Twin) -> None:
    assert s_exit_twice_and_out_of_order(Env(tw)) == [
        ("ok", "A"),
        ("ok", "B"),
        ("ok", "C"),
        ("exit_slow", "B", None, True, "t1", False),
        ("close_abandoned", "B", []),
        ("ok", True),
        [
            ("A", None, [], [], False, False, None),
            ("B", None, None),
            ("C", "B", [], ["t1"], False, False, None),
            ("t1", "C"),
            ("heap", 0),
        ],
        ("ok", True),
        ("exit_slow", "C", None, False, "t1", False),
        ("error", "RuntimeError", "C was already exited"),
        ("exit_slow", "A", None, True, "t1", False),
        ("ok", True),
        [("A", None, None), ("B", None, None), ("C", None, None), ("t1", "B"), ("heap", 0)],
    ]


@twins
def test_exit_in_another_task(tw: Twin) -> None:
    assert s_exit_in_another_task(Env(tw)) == [
        ("ok", "A"),
        ("exit_slow", "A", None, True, "t2", False),
        ("close_abandoned", "A", ["t1"]),
        ("ok", True),
        ("ok", "B"),
        ("exit_slow", "B", None, True, "t1", True),
        ("activate", "t1", "A"),
        ("close_abandoned", "B", ["t2"]),
        ("ok", True),
        [("A", None, None), ("B", None, None), ("t1", "A"), ("t2", "B"), ("heap", 0)],
        ("ok", "C"),
        ("exit_slow", "C", None, True, None, False),
        ("close_abandoned", "C", ["t2"]),
        ("ok", True),
    ]


@twins
def test_exit_with_a_child_status(tw: Twin) -> None:
    assert s_exit_with_a_child_status(Env(tw)) == [
        ("ok", "A"),
        ("ok", "inner"),
        [
            ("A", None, ["inner"], ["t1"], False, False, None),
            ("inner", "A", [], ["child"], False, False, None),
            ("child", "inner"),
            ("t1", "A"),
            ("heap", 0),
        ],
        ("exit_slow", "A", None, True, "t1", True),
        ("activate", "t1", None),
        ("close_abandoned", "A", []),
        ("ok", True),
        [
            ("A", None, None),
            ("inner", "A", [], ["child"], False, False, None),
            ("child", "inner"),
            ("t1", None),
            ("heap", 0),
        ],
    ]


@twins
def test_catching(tw: Twin) -> None:
    assert s_catching(Env(tw)) == [
        ("ok", "outer"),
        ("recalculate", "outer"),
        ("deliver", "t1", True),
        ("recalculate", "mid"),
        ("deliver", "t1", True),
        ("ok", "mid"),
        ("ok", "shielded"),
        [
            ("outer", None, ["mid"], [], True, False, None),
            ("mid", "outer", ["shielded"], [], True, False, None),
            ("shielded", "mid", [], ["t1"], False, False, None),
            ("t1", "shielded"),
            ("heap", 0),
        ],
        ("deliver", "t1", True),
        ("ok", False),
        ("deliver", "t1", True),
        ("ok", False),
        ("recalculate", "inner"),
        ("deliver", "t1", True),
        ("ok", "inner"),
        ("deliver", "t1", True),
        ("ok", True),
        ("exit_slow", "outer", "FakeCancelled", True, "t1", True),
        ("activate", "t1", None),
        ("ok", True),
        (True, False),
    ]


@twins
def test_guest(tw: Twin) -> None:
    assert s_guest(Env(tw)) == [
        ("update_registration", "A", 7.0),
        ("ok", "A"),
        ("ok", "B"),
        ("exit_slow", "B", None, True, "t1", True),
        ("activate", "t1", "A"),
        ("ok", True),
        ("exit_slow", "A", None, True, "t1", True),
        ("activate", "t1", None),
        ("ok", True),
        [("A", None, None), ("B", None, None), ("t1", None), ("heap", 0)],
    ]


@twins
def test_stale_heap_handle_at_exit(tw: Twin) -> None:
    assert s_stale_heap_handle_at_exit(Env(tw)) == [
        ("ok", "A"),
        ("error", "KeyError", "4294967296"),
        (4294967296, None, [("A", None, None), ("t1", None), ("heap", 0)]),
    ]


@twins
def test_reenter(tw: Twin) -> None:
    assert s_reenter(Env(tw)) == [
        ("ok", "A"),
        ("error", "RuntimeError", "Each CancelScope may only be used for a single 'with' block"),
        [("A", None, [], ["t1"], False, False, 2.0), ("t1", "A"), ("heap", 1)],
        ("ok", True),
        ("error", "RuntimeError", "Each CancelScope may only be used for a single 'with' block"),
        [("A", None, None), ("t1", None), ("heap", 0)],
    ]


@twins
def test_status_base(tw: Twin) -> None:
    assert s_status_base(Env(tw)) == [
        [False, False, False],
        [False, False, True],
        ("recalculate", "E"),
        (False, True),
        ["B", "C", "E"],
        (None, ["C"]),
        ("close_abandoned", "C", ["t1"]),
        (set(), None, None),
    ]


# ------------------------------------------------- the public CancelScope on each twin


def _first_line(outcome: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*outcome[:-1], outcome[-1].split("\n")[0])


@twins
def test_public_deadline_and_relative_deadline(tw: Twin) -> None:
    env = Env(tw, public=True)
    no_abs = ("RuntimeError", "Unentered relative cancel scope does not have an absolute deadline.")
    no_rel = (
        "RuntimeError",
        "Unentered non-relative cancel scope does not have a relative deadline",
    )
    with env.active():
        env.run_as(env.task("t1"))
        rel, ab = env.scope("R", relative_deadline=2), env.scope("D", deadline=4)
        assert outcome_of(lambda: rel.deadline) == no_abs
        assert (rel.relative_deadline, rel.is_relative, ab.is_relative) == (2.0, True, False)
        assert outcome_of(setattr, rel, "deadline", 5) == no_abs
        assert outcome_of(lambda: ab.relative_deadline) == no_rel
        assert outcome_of(setattr, ab, "relative_deadline", 1) == no_rel
        rel.relative_deadline = 3
        assert [outcome_of(setattr, rel, "relative_deadline", v) for v in (math.nan, -1, "x")] == [
            ("ValueError", "relative deadline must not be NaN"),
            ("ValueError", "relative deadline must be non-negative"),
            ("ValueError", "could not convert string to float: 'x'"),
        ]
        env.now = 1.0
        rel.__enter__()
        assert (rel.deadline, rel.relative_deadline, rel.is_relative) == (4.0, 3.0, None)
        assert env.tree(rel)[0][-1] == 4.0  # its heap entry
        env.now = 2.0
        assert rel.relative_deadline == 2.0
        rel.relative_deadline = 5
        assert (rel.deadline, env.tree(rel)[0][-1]) == (7.0, 7.0)
        handle = rel._heap_handle
        rel.deadline = 3
        assert (rel._heap_handle, env.tree(rel)[0][-1]) == (handle, 3.0)  # re-keyed
        rel.deadline = INF
        assert (rel._heap_handle, env.tree(rel)[-1]) == (None, ("heap", 0))
        assert outcome_of(setattr, rel, "deadline", math.nan) == (
            "ValueError",
            "deadline must not be NaN",
        )
        rel.deadline = 1  # already past, but only the run loop or cancel_called acts
        ab.__enter__()
        assert env.tree(rel, ab)[:2] == [
            ("R", None, ["D"], [], False, False, 1.0),
            ("D", "R", [], ["t1"], False, False, 4.0),
        ]
        assert ab.__exit__(None, None, None) is True
        assert rel.cancel_called is True  # noticed now: cancelled, entry dropped
        assert (rel._cancel_reason.source, env.tree(rel)[-1]) == ("deadline", ("heap", 0))
        assert rel.__exit__(None, None, None) is True
    assert env.log == [("deliver", "t1", True)]


@twins
def test_public_shield_toggling(tw: Twin) -> None:
    env = Env(tw, public=True)
    with env.active():
        env.run_as(env.task("t1"))
        outer, inner = env.scope("O"), env.scope("I", shield=True)
        outer.__enter__()
        outer.cancel()
        inner.__enter__()
        states = [inner._cancel_status.effectively_cancelled]
        for value in (False, True, False):
            inner.shield = value
            states.append((inner.shield, inner._cancel_status.effectively_cancelled))
        assert outcome_of(setattr, inner, "shield", 1) == ("TypeError", "shield must be a bool")
        assert inner.__exit__(None, None, None) is True  # back into the cancelled one
        assert outer.__exit__(None, None, None) is True
        assert (outer.cancelled_caught, inner.cancelled_caught) == (False, False)
    assert states == [False, (False, True), (True, False), (False, True)]
    assert env.log == [("deliver", "t1", True)] * 4


@twins
def test_public_cancel_and_catching(tw: Twin) -> None:
    env = Env(tw, public=True)
    with env.active():
        t1 = env.task("t1")
        env.run_as(t1)
        a, b, c = env.scope("A", deadline=5), env.scope("B", deadline=3), env.scope("C")
        env.scope("root").__enter__()  # as in a run: every task has a status
        a.__enter__()
        assert (a.cancel_called, env.tree(a)[-1]) == (False, ("heap", 1))
        a.cancel("why")
        a.cancel("again")  # idempotent: the first reason stays
        reason = a._cancel_reason
        assert (reason.source, reason.source_task, reason.reason) == (
            "explicit",
            "<Task t1>",
            "why",
        )
        assert (a.cancel_called, a._heap_handle, env.tree(a)[-1]) == (True, None, ("heap", 0))
        exc = t1._cancel_status._make_cancelled()
        assert a.__exit__(type(exc), exc, None) is True
        assert a.cancelled_caught is True
        b.__enter__()
        env.now = 3.0
        assert (b.cancel_called, b._cancel_reason.source, b._heap_handle) == (
            True,
            "deadline",
            None,
        )
        assert b.__exit__(None, None, None) is True
        assert b.cancelled_caught is False
        c.cancel()  # before entering: born cancelled
        assert c._cancel_reason.source_task == "<Task t1>"
        c.__enter__()
        exc = t1._cancel_status._make_cancelled()
        error = ValueError("not a Cancelled")
        assert outcome_of(c.__exit__, ValueError, error, None) == ("ok", False)
        assert c.cancelled_caught is False
    assert env.log == [("deliver", "t1", True)] * 3


@twins
def test_public_misnesting_errors(tw: Twin) -> None:
    env = Env(tw, public=True)
    with env.active():
        t1, t2 = env.task("t1"), env.task("t2")
        env.run_as(t1)
        a, b, c = env.scope("A"), env.scope("B"), env.scope("C")
        a.__enter__()
        b.__enter__()
        out_of_order = _first_line(outcome_of(a.__exit__, None, None, None))
        twice = outcome_of(a.__exit__, None, None, None)
        inner_after = outcome_of(b.__exit__, None, None, None)
        c.__enter__()
        env.run_as(t2)
        unrelated = _first_line(outcome_of(c.__exit__, None, None, None))
    assert out_of_order == (
        "RuntimeError",
        "Cancel scope stack corrupted: attempted to exit <trio.CancelScope at 0x?, active> "
        "in <Task t1> that's still within its child <trio.CancelScope at 0x?, active>",
    )
    assert twice == (
        "RuntimeError",
        "Cancel scope stack corrupted: attempted to exit <trio.CancelScope at 0x?, exited> "
        "which had already been exited",
    )
    assert inner_after == ("ok", True)  # already reported: the inner one exits quietly
    assert unrelated == (
        "RuntimeError",
        "Cancel scope stack corrupted: attempted to exit <trio.CancelScope at 0x?, active> "
        "from unrelated <Task t2>",
    )
    assert ("activate", "t1", None) in env.log


@twins
def test_public_cancelled_caught_is_a_plain_attribute(tw: Twin) -> None:
    # trio's CancelScope stores whatever is assigned (an attrs field, no converter).
    oracle = trio.CancelScope()
    scope = classes(tw).PubScope()
    for value in (True, 5, None, "yes", False):
        oracle.cancelled_caught = value
        scope.cancelled_caught = value
        assert scope.cancelled_caught is oracle.cancelled_caught is value
