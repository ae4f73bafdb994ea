"""The kernel twins must behave identically (module surface and awaitables driven by hand). Every
test runs against each twin directly (not through the engine switch) with the same literal
expectations; the differential tests also compare the twins' traces with each other.
"""

from __future__ import annotations

import collections.abc
import types
from typing import Any

import outcome
import pytest

from _kernel_twins_support import (
    _KERNEL_C_ERROR,
    _REQUIRED,
    TWINS,
    _kernel_c,
)
from vivace._core import _kernel_py


@pytest.fixture(params=TWINS)
def K(request: pytest.FixtureRequest) -> types.ModuleType:
    return request.param  # type: ignore[no-any-return]


EXPORTS = [
    "CANCEL_SHIELDED_CHECKPOINT",
    "CHECKPOINT",
    "RESUME_NONE",
    "KernelBase",
    "TaskBase",
    "WaitTaskRescheduled",
    "PermanentlyDetachCoroutineObject",
    "async_yield",
    "cancel_shielded_checkpoint",
    "checkpoint",
    "permanently_detach_coroutine_object",
    "wait_task_rescheduled",
    "IDLE",
    "SEND",
    "THROW",
    "CHECKPOINT_RESUME",
]


def test_compiled_twin_is_present_when_required() -> None:
    if _REQUIRED:
        assert _kernel_c is not None, f"compiled kernel missing: {_KERNEL_C_ERROR!r}"


# ------------------------------------------------------------------ module surface


def test_twins_export_the_same_names(K: types.ModuleType) -> None:
    for name in EXPORTS:
        assert hasattr(K, name), name
    assert (K.IDLE, K.SEND, K.THROW, K.CHECKPOINT_RESUME) == (0, 1, 2, 3)


def test_trap_singletons_repr(K: types.ModuleType) -> None:
    assert repr(K.CHECKPOINT) == "Checkpoint"
    assert repr(K.CANCEL_SHIELDED_CHECKPOINT) == "CancelShieldedCheckpoint"
    assert repr(K.RESUME_NONE) == "Value(None)"
    assert type(K.CHECKPOINT).__name__ == "_CheckpointType"
    assert type(K.CANCEL_SHIELDED_CHECKPOINT).__name__ == "_CancelShieldedCheckpointType"


def test_resume_none_acts_as_value_none(K: types.ModuleType) -> None:
    assert K.RESUME_NONE.unwrap() is None

    def gen() -> Any:
        got = yield 1
        yield ("got", got)

    g = gen()
    next(g)
    assert K.RESUME_NONE.send(g) == ("got", None)


def test_trap_message_classes(K: types.ModuleType) -> None:
    w = K.WaitTaskRescheduled(len)
    assert w.abort_func is len
    assert repr(w) == "WaitTaskRescheduled(abort_func=<built-in function len>)"
    assert K.WaitTaskRescheduled(abort_func=len).abort_func is len
    p = K.PermanentlyDetachCoroutineObject(outcome.Value(1))
    assert repr(p) == "PermanentlyDetachCoroutineObject(final_outcome=Value(1))"
    with pytest.raises(AttributeError):
        w.other = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "make",
    [
        lambda K: K.checkpoint(),
        lambda K: K.cancel_shielded_checkpoint(),
        lambda K: K.wait_task_rescheduled(len),
        lambda K: K.async_yield("x"),
        lambda K: K.permanently_detach_coroutine_object(outcome.Value(1)),
    ],
)
def test_trap_awaitables_are_registered_coroutines(K: types.ModuleType, make: Any) -> None:
    aw = make(K)
    assert isinstance(aw, collections.abc.Coroutine)
    assert isinstance(aw, collections.abc.Awaitable)
    aw.close()


# ------------------------------------------------------------------ awaitables by hand

RN = object()  # placeholder for "this twin's RESUME_NONE"


def drive(K: types.ModuleType, make: Any, ops: list[tuple[str, Any]]) -> list[tuple[Any, ...]]:
    """Drive ``make(K).__await__()`` by hand; record what each operation did."""
    it = make(K).__await__()
    events: list[tuple[Any, ...]] = []
    for op, arg in ops:
        if arg is RN:
            arg = K.RESUME_NONE
        elif callable(arg) and op == "send":
            arg = arg()  # a fresh (single-use) outcome
        try:
            if op == "send":
                result = it.send(arg)
            elif op == "next":
                result = next(it)
            elif op == "throw":
                result = it.throw(*arg)
            else:
                result = it.close()
            events.append(("ok", repr(result)))
        except StopIteration as stop:
            events.append(("return", repr(stop.value)))
        except BaseException as exc:
            events.append(("raise", type(exc).__name__, str(exc)))
    it.close()
    return events


DRIVES = {
    "checkpoint_resume_none": (
        lambda K: K.checkpoint(),
        [("send", None), ("send", RN), ("send", RN)],
        [
            ("ok", "Checkpoint"),
            ("return", "None"),
            ("raise", "RuntimeError", "cannot reuse already awaited coroutine"),
        ],
    ),
    "checkpoint_discards_value": (
        lambda K: K.checkpoint(),
        [("send", None), ("send", lambda: outcome.Value(5))],
        [("ok", "Checkpoint"), ("return", "None")],
    ),
    "checkpoint_raises_error": (
        lambda K: K.checkpoint(),
        [("send", None), ("send", lambda: outcome.Error(KeyError("k"))), ("send", RN)],
        [
            ("ok", "Checkpoint"),
            ("raise", "KeyError", "'k'"),
            ("raise", "RuntimeError", "cannot reuse already awaited coroutine"),
        ],
    ),
    "first_send_must_be_none": (
        lambda K: K.checkpoint(),
        [("send", 1)],
        [("raise", "TypeError", "can't send non-None value to a just-started coroutine")],
    ),
    "resume_with_non_outcome": (
        lambda K: K.checkpoint(),
        [("send", None), ("send", 7)],
        [
            ("ok", "Checkpoint"),
            ("raise", "AttributeError", "'int' object has no attribute 'unwrap'"),
        ],
    ),
    "next_twice": (
        lambda K: K.checkpoint(),
        [("next", None), ("next", None)],
        [
            ("ok", "Checkpoint"),
            ("raise", "AttributeError", "'NoneType' object has no attribute 'unwrap'"),
        ],
    ),
    "cancel_shielded": (
        lambda K: K.cancel_shielded_checkpoint(),
        [("send", None), ("send", RN)],
        [("ok", "CancelShieldedCheckpoint"), ("return", "None")],
    ),
    "wait_returns_unwrapped": (
        lambda K: K.wait_task_rescheduled(len),
        [("send", None), ("send", lambda: outcome.Value((1, 2)))],
        [("ok", "WaitTaskRescheduled(abort_func=<built-in function len>)"), ("return", "(1, 2)")],
    ),
    "wait_resume_none": (
        lambda K: K.wait_task_rescheduled(len),
        [("send", None), ("send", RN)],
        [("ok", "WaitTaskRescheduled(abort_func=<built-in function len>)"), ("return", "None")],
    ),
    "async_yield_returns_raw": (
        lambda K: K.async_yield("m"),
        [("send", None), ("send", lambda: outcome.Value(5))],
        [("ok", "'m'"), ("return", "Value(5)")],
    ),
    "async_yield_resume_none_not_unwrapped": (
        lambda K: K.async_yield("m"),
        [("send", None), ("send", RN)],
        [("ok", "'m'"), ("return", "Value(None)")],
    ),
    "async_yield_returns_tuple_and_exception_values": (
        lambda K: K.async_yield("m"),
        [("send", None), ("send", lambda: (ValueError(1),))],
        [("ok", "'m'"), ("return", "(ValueError(1),)")],
    ),
    "detach_returns_raw": (
        lambda K: K.permanently_detach_coroutine_object(outcome.Value(1)),
        [("send", None), ("send", lambda: 9)],
        [("ok", "PermanentlyDetachCoroutineObject(final_outcome=Value(1))"), ("return", "9")],
    ),
    "throw_before_start": (
        lambda K: K.checkpoint(),
        [("throw", (ValueError("a"),)), ("send", None)],
        [
            ("raise", "ValueError", "a"),
            ("raise", "RuntimeError", "cannot reuse already awaited coroutine"),
        ],
    ),
    "throw_while_suspended_then_done": (
        lambda K: K.checkpoint(),
        [("send", None), ("throw", (ValueError("a"),)), ("throw", (ValueError("b"),))],
        [
            ("ok", "Checkpoint"),
            ("raise", "ValueError", "a"),
            ("raise", "RuntimeError", "cannot reuse already awaited coroutine"),
        ],
    ),
    "throw_class_and_value": (
        lambda K: K.checkpoint(),
        [("send", None), ("throw", (ValueError, "x"))],
        [("ok", "Checkpoint"), ("raise", "ValueError", "x")],
    ),
    "throw_bad_arguments": (
        lambda K: K.checkpoint(),
        [
            ("send", None),
            ("throw", ()),
            ("throw", (5,)),
            ("throw", (ValueError("a"), "x")),
            ("throw", (ValueError, None, 5)),
            ("send", RN),
        ],
        [
            ("ok", "Checkpoint"),
            ("raise", "TypeError", "throw expected at least 1 argument, got 0"),
            (
                "raise",
                "TypeError",
                "exceptions must be classes or instances deriving from BaseException, not int",
            ),
            ("raise", "TypeError", "instance exception may not have a separate value"),
            ("raise", "TypeError", "throw() third argument must be a traceback object"),
            ("raise", "RuntimeError", "cannot reuse already awaited coroutine"),
        ],
    ),
    "throw_bad_exception_before_start_leaves_it_fresh": (
        lambda K: K.checkpoint(),
        [("throw", (5,)), ("send", None), ("send", RN)],
        [
            (
                "raise",
                "TypeError",
                "exceptions must be classes or instances deriving from BaseException, not int",
            ),
            ("ok", "Checkpoint"),
            ("return", "None"),
        ],
    ),
    "close_fresh": (
        lambda K: K.checkpoint(),
        [("close", None), ("send", None), ("close", None)],
        [
            ("ok", "None"),
            ("raise", "RuntimeError", "cannot reuse already awaited coroutine"),
            ("ok", "None"),
        ],
    ),
    "close_suspended": (
        lambda K: K.checkpoint(),
        [("send", None), ("close", None), ("send", RN)],
        [
            ("ok", "Checkpoint"),
            ("ok", "None"),
            ("raise", "RuntimeError", "cannot reuse already awaited coroutine"),
        ],
    ),
}


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")
# Python 3.12+ deprecates throw(type, value, tb), which these cases drive on purpose.
@pytest.mark.filterwarnings(r"ignore:the \(type, exc, tb\) signature of throw\(\):DeprecationWarning")
@pytest.mark.parametrize("case", sorted(DRIVES))
def test_awaitable_driven_by_hand(K: types.ModuleType, case: str) -> None:
    make, ops, expected = DRIVES[case]
    assert drive(K, make, ops) == expected


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")
@pytest.mark.skipif(_kernel_c is None, reason="compiled kernel not built")
@pytest.mark.parametrize("case", sorted(DRIVES))
def test_awaitable_traces_match_between_twins(case: str) -> None:
    make, ops, _ = DRIVES[case]
    assert drive(_kernel_c, make, ops) == drive(_kernel_py, make, ops)


def test_thrown_exception_keeps_identity(K: types.ModuleType) -> None:
    it = K.checkpoint().__await__()
    next(it)
    exc = ValueError("same")
    with pytest.raises(ValueError) as info:
        it.throw(exc)
    assert info.value is exc
