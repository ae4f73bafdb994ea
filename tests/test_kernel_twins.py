"""The kernel twins: ``vivace._core._kernel_py`` (reference) and ``vivace._core._ext._kernel``
(compiled) must behave identically. Every test runs against each twin directly (not through
the engine switch) with the same literal expectations; the differential tests also compare
the twins' event traces with each other.

The compiled twin is required when ``VIVACE_REQUIRE_EXTENSIONS=1``; otherwise, if it was not
built, only the reference is tested.
"""

from __future__ import annotations

import abc
import collections.abc
import contextvars
import gc
import os
import sys
import types
import weakref
from typing import Any

import outcome
import pytest

from vivace._core import _kernel_py
from vivace._core._exceptions import TrioInternalError

try:
    from vivace._core._ext import _kernel as _kernel_c
except ImportError as exc:  # not built
    _kernel_c = None
    _KERNEL_C_ERROR: ImportError | None = exc
else:
    _KERNEL_C_ERROR = None

_REQUIRED = os.environ.get("VIVACE_REQUIRE_EXTENSIONS", "") not in ("", "0")
TWINS = [pytest.param(_kernel_py, id="reference")]
if _kernel_c is not None:
    TWINS.append(pytest.param(_kernel_c, id="compiled"))

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
FOREIGN_MSG = (
    "vivace received unrecognized yield message 'foreign'. Are you trying to use a "
    "library written for some other framework like asyncio? That won't work without "
    "some kind of compatibility shim."
)


@pytest.fixture(params=TWINS)
def K(request: pytest.FixtureRequest) -> types.ModuleType:
    return request.param  # type: ignore[no-any-return]


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


# ------------------------------------------------------------------ a tiny kernel


class FakeCancelled(BaseException):
    pass


class Status:
    """Stand-in for a CancelStatus: what the kernel reads at cancel points."""

    def __init__(self) -> None:
        self.effectively_cancelled = False
        self.made = 0

    def _make_cancelled(self) -> FakeCancelled:
        self.made += 1
        return FakeCancelled("cancelled")


class Meta(abc.ABCMeta):
    """Like vivace's NoPublicConstructor: an ABCMeta subclass as the task metaclass."""


_CLASSES: dict[str, tuple[type, type]] = {}


def classes(K: types.ModuleType) -> tuple[Any, Any]:
    if K.__name__ in _CLASSES:
        return _CLASSES[K.__name__]

    class MiniTask(K.TaskBase, metaclass=Meta):  # type: ignore[misc,name-defined]
        __slots__ = ("calls", "name")

        def __repr__(self) -> str:
            return f"<MiniTask {self.name}>"

        def _attempt_delivery_of_any_pending_cancel(self) -> None:
            self.calls.append("any_pending_cancel")
            if self._abort_func is not None and self._cancel_status.effectively_cancelled:
                status = self._cancel_status

                def raise_cancel() -> Any:
                    raise status._make_cancelled()

                if self._abort_func(raise_cancel):
                    self._abort_func = None
                    self._runner.reschedule(self, outcome.capture(raise_cancel))

        def _attempt_delivery_of_pending_ki(self) -> None:
            self.calls.append("pending_ki")

    class MiniKernel(K.KernelBase):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.exited: list[tuple[Any, Any]] = []
            self.instr: list[tuple[str, tuple[Any, ...]]] = []
            self.guest_ticks = 0
            self.exc_info_at_exit: list[Any] = []
            self.counter = 0

        def task_exited(self, task: Any, result: Any) -> None:
            self.exited.append((task.name, result))
            self.exc_info_at_exit.append(sys.exc_info()[1])

        def force_guest_tick_asap(self) -> None:
            self.guest_ticks += 1

        def _call_instrument(self, hook: str, *args: object) -> None:
            self.instr.append((hook, args))

        def spawn(self, name: str, coro: Any, context: Any = None) -> Any:
            task = MiniTask(coro, context or contextvars.copy_context(), self, self.counter, False)
            self.counter += 1
            task.name = name
            task.calls = []
            task._cancel_status = Status()
            self.reschedule(task, None)
            return task

        def run_all(self, limit: int = 100) -> int:
            batches = 0
            while self.runq and batches < limit:
                batch = self.runq
                self.runq = []
                self.run_batch(batch)
                batches += 1
            return batches

    _CLASSES[K.__name__] = (MiniTask, MiniKernel)
    return MiniTask, MiniKernel


def kernel(K: types.ModuleType) -> Any:
    return classes(K)[1]()


def test_task_base_fields_after_init(K: types.ModuleType) -> None:
    MiniTask, _ = classes(K)
    ctx = contextvars.copy_context()
    t = MiniTask("coro", ctx, "runner", 7, True)
    assert (t.coro, t.context, t._runner, t._counter) == ("coro", ctx, "runner", 7)
    assert t._ki_protected
    assert (t._send_mode, t._next_send, t._abort_func, t._cancel_status) == (
        K.IDLE,
        None,
        None,
        None,
    )
    assert (t.custom_sleep_data, t._cancel_points, t._schedule_points) == (None, 0, 0)
    t.context = contextvars.copy_context()  # writable, as trio's is
    assert type(t).__mro__[1] is K.TaskBase
    assert weakref.ref(t)() is t
    with pytest.raises(AttributeError):
        t.not_a_slot = 1


def test_kernel_base_fields_and_hooks(K: types.ModuleType) -> None:
    k = K.KernelBase()
    assert (k.runq, k.current_task, k.main_task) == ([], None, None)
    assert not (
        k.ki_pending
        or k.is_guest
        or k._instr_before_step
        or k._instr_after_step
        or k._instr_scheduled
    )
    k.anything = 1  # the Runner keeps its state in the instance dict
    assert k.__dict__ == {"anything": 1}
    assert weakref.ref(k)() is k
    for call in (
        lambda: k.task_exited(None, None),
        k.force_guest_tick_asap,
        lambda: k._call_instrument("x"),
    ):
        with pytest.raises(NotImplementedError):
            call()


def test_run_batch_steps_from_the_end(K: types.ModuleType) -> None:
    k = kernel(K)
    log: list[tuple[str, int]] = []

    async def worker(name: str) -> str:
        for i in range(2):
            log.append((name, i))
            await K.checkpoint()
        return name

    for name in "abc":
        k.spawn(name, worker(name))
    assert k.run_all() == 3
    assert log == [("c", 0), ("b", 0), ("a", 0), ("a", 1), ("b", 1), ("c", 1)]
    assert [(name, res.unwrap()) for name, res in k.exited] == [("c", "c"), ("b", "b"), ("a", "a")]
    assert k.current_task is None


def test_counters_and_send_modes(K: types.ModuleType) -> None:
    k = kernel(K)
    seen: list[int] = []

    async def worker() -> None:
        await K.checkpoint()
        await K.cancel_shielded_checkpoint()
        seen.append(t._send_mode)
        await K.wait_task_rescheduled(lambda _: False)
        await K.checkpoint()

    t = k.spawn("t", worker())
    assert t._send_mode == K.SEND
    k.run_all()
    assert t._send_mode == K.IDLE and t._abort_func is not None
    assert (t._schedule_points, t._cancel_points) == (3, 2)
    assert seen == [K.IDLE]
    k.reschedule(t)
    assert t._next_send is K.RESUME_NONE and t._abort_func is None
    k.run_batch([k.runq.pop()])
    assert t._send_mode == K.CHECKPOINT_RESUME
    k.run_all()
    assert (t._schedule_points, t._cancel_points) == (4, 3)
    assert [r.unwrap() for _, r in k.exited] == [None]
    assert t.calls == ["any_pending_cancel"]


def test_step_runs_in_task_context_and_sets_current_task(K: types.ModuleType) -> None:
    k = kernel(K)
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outside")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "inside")
    seen = []

    async def worker() -> None:
        seen.append((var.get(), k.current_task.name))
        var.set("changed")
        await K.checkpoint()
        seen.append((var.get(), k.current_task.name))

    k.spawn("w", worker(), ctx)
    k.run_all()
    assert seen == [("inside", "w"), ("changed", "w")]
    assert var.get() == "outside" and ctx[var] == "changed"


def test_foreign_yield_throws_type_error(K: types.ModuleType) -> None:
    k = kernel(K)

    @types.coroutine
    def foreign() -> Any:
        yield "foreign"

    async def worker() -> str:
        try:
            await foreign()
        except TypeError as exc:
            return str(exc)
        return "no error"

    t = k.spawn("f", worker())
    k.run_all()
    assert [(n, r.unwrap()) for n, r in k.exited] == [("f", FOREIGN_MSG)]
    assert t._schedule_points == 1


def test_exit_outcomes_and_traceback_starts_at_coroutine(K: types.ModuleType) -> None:
    k = kernel(K)

    async def inner() -> None:
        await K.checkpoint()
        raise ValueError("boom")

    async def fails() -> None:
        await inner()

    async def returns() -> tuple[int, int]:
        await K.checkpoint()
        return (1, 2)

    k.spawn("fails", fails())
    k.spawn("returns", returns())
    k.run_all()
    results = dict(k.exited)
    assert results["returns"] == outcome.Value((1, 2))
    err = results["fails"].error
    assert type(err) is ValueError
    frames = [tb.tb_frame.f_code for tb in _walk(err.__traceback__)]
    assert frames[:2] == [fails.__code__, inner.__code__]


def test_task_exited_runs_outside_the_except_block(K: types.ModuleType) -> None:
    # As in trio: otherwise every exception raised while the Python layer processes the
    # exit (say, the Cancelled delivered to a sibling) gets the dead task's exception as
    # its implicit __context__.
    k = kernel(K)

    async def fails() -> None:
        raise ValueError("boom")

    async def returns() -> None:
        pass

    k.spawn("fails", fails())
    k.spawn("returns", returns())
    k.run_all()
    assert k.exc_info_at_exit == [None, None]


def test_counters_keep_any_value_like_plain_attributes(K: types.ModuleType) -> None:
    MiniTask, _ = classes(K)
    t = MiniTask(None, contextvars.copy_context(), None, 0, False)
    for value in ["hello!", None, 2**70, -(2**70), True, -5, 0]:
        t._schedule_points = value
        t._cancel_points = value
        assert t._schedule_points is value or (
            t._schedule_points == value and type(t._schedule_points) is type(value)
        )
        assert t._cancel_points == value and type(t._cancel_points) is type(value)


def test_non_int_counter_makes_the_step_fail(K: types.ModuleType) -> None:
    k = kernel(K)

    async def worker() -> None:
        k.current_task._schedule_points = "hello!"
        await K.checkpoint()

    t = k.spawn("w", worker())
    with pytest.raises(TypeError):
        k.run_all()
    t.coro.close()


def test_huge_counter_keeps_counting(K: types.ModuleType) -> None:
    k = kernel(K)

    async def worker() -> None:
        await K.checkpoint()

    t = k.spawn("w", worker())
    t._schedule_points = sys.maxsize
    k.run_all()
    assert t._schedule_points == sys.maxsize + 1


def _walk(tb: Any) -> Any:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_cancelled_checkpoint_raises_one_batch_later(K: types.ModuleType) -> None:
    k = kernel(K)
    steps: list[str] = []

    async def worker() -> None:
        steps.append("start")
        await K.checkpoint()
        steps.append("not reached")

    t = k.spawn("w", worker())
    k.run_batch([k.runq.pop()])
    t._cancel_status.effectively_cancelled = True
    k._instr_before_step = k._instr_after_step = k._instr_scheduled = True
    k.run_batch([k.runq.pop()])
    # The resume was a schedule point only: the coroutine did not run.
    assert steps == ["start"]
    assert t._send_mode == K.THROW and type(t._next_send) is FakeCancelled
    assert (t._schedule_points, t._cancel_points, t._cancel_status.made) == (2, 1, 1)
    assert k.instr == [
        ("before_task_step", (t,)),
        ("task_scheduled", (t,)),
        ("after_task_step", (t,)),
    ]
    assert k.runq == [t] and k.current_task is None
    k.run_all()
    ((name, result),) = k.exited
    assert type(result.error) is FakeCancelled
    assert result.error.__traceback__.tb_frame.f_code is worker.__code__


def test_wait_task_rescheduled_delivers_pending_cancel(K: types.ModuleType) -> None:
    k = kernel(K)
    aborts: list[Any] = []

    async def worker() -> str:
        try:
            await K.wait_task_rescheduled(lambda rc: aborts.append(rc) or True)
        except FakeCancelled:
            return "cancelled"
        return "not cancelled"

    t = k.spawn("w", worker())
    t._cancel_status.effectively_cancelled = True
    k.run_all()
    assert len(aborts) == 1 and t.calls == ["any_pending_cancel"]
    assert [r.unwrap() for _, r in k.exited] == ["cancelled"]


def test_reschedule_with_outcomes(K: types.ModuleType) -> None:
    k = kernel(K)
    got: list[Any] = []

    async def worker() -> None:
        got.append(await K.wait_task_rescheduled(lambda _: False))
        try:
            await K.wait_task_rescheduled(lambda _: False)
        except KeyError as exc:
            got.append(exc)

    t = k.spawn("w", worker())
    k.run_all()
    k.reschedule(t, outcome.Value(42))
    k.run_all()
    k.reschedule(t, outcome.Error(KeyError("k")))
    k.run_all()
    assert got[0] == 42 and type(got[1]) is KeyError
    assert [r.unwrap() for _, r in k.exited] == [None]


def test_async_yield_returns_what_was_sent(K: types.ModuleType) -> None:
    k = kernel(K)
    got: list[Any] = []

    async def worker() -> None:
        got.append(await K.async_yield(K.WaitTaskRescheduled(lambda _: False)))

    t = k.spawn("w", worker())
    k.run_all()
    sent = outcome.Value("v")
    k.reschedule(t, sent)
    k.run_all()
    assert got == [sent] and got[0] is sent


def test_permanently_detach_ends_the_task(K: types.ModuleType) -> None:
    k = kernel(K)
    final = outcome.Value("detached")
    coro_holder: list[Any] = []

    async def worker() -> None:
        await K.permanently_detach_coroutine_object(final)

    t = k.spawn("w", worker())
    coro_holder.append(t.coro)
    k.run_all()
    assert k.exited == [("w", final)]
    assert t._send_mode == K.IDLE
    coro_holder[0].close()


def test_double_reschedule_is_an_internal_error(K: types.ModuleType) -> None:
    k = kernel(K)

    async def worker() -> None:
        await K.checkpoint()

    t = k.spawn("w", worker())
    with pytest.raises(TrioInternalError) as info:
        k.reschedule(t)
    assert str(info.value) == "attempted to reschedule <MiniTask w>, which is already scheduled"
    k.run_all()


def test_schedule_throw_and_checkpoint_helpers(K: types.ModuleType) -> None:
    k = kernel(K)

    async def worker() -> str:
        try:
            await K.wait_task_rescheduled(lambda _: False)
        except KeyError:
            pass
        await K.wait_task_rescheduled(lambda _: False)
        return "done"

    t = k.spawn("w", worker())
    k.run_all()
    k._schedule_throw(t, KeyError("x"))
    assert t._send_mode == K.THROW
    k.run_all()
    k._schedule_checkpoint(t)
    assert t._send_mode == K.CHECKPOINT_RESUME and t._next_send is K.RESUME_NONE
    k.run_all()
    assert [r.unwrap() for _, r in k.exited] == ["done"]


def test_guest_mode_pokes_host_when_runq_becomes_nonempty(K: types.ModuleType) -> None:
    k = kernel(K)
    k.is_guest = True

    async def worker() -> None:
        await K.checkpoint()

    k.spawn("a", worker())
    k.spawn("b", worker())
    assert k.guest_ticks == 1
    k.run_all()
    assert k.guest_ticks == 2  # b's checkpoint was the batch's first reschedule


def test_instruments_called_only_when_flagged(K: types.ModuleType) -> None:
    k = kernel(K)

    async def worker() -> None:
        await K.checkpoint()

    t = k.spawn("a", worker())
    k.run_all()
    assert k.instr == []
    k._instr_before_step = k._instr_after_step = k._instr_scheduled = True
    t2 = k.spawn("b", worker())
    k.run_all()
    assert k.instr == [
        ("task_scheduled", (t2,)),
        ("before_task_step", (t2,)),
        ("task_scheduled", (t2,)),
        ("after_task_step", (t2,)),
        ("before_task_step", (t2,)),
        ("after_task_step", (t2,)),
    ]
    del t


def test_keyboard_interrupt_goes_to_main_task_only(K: types.ModuleType) -> None:
    k = kernel(K)

    async def worker() -> str:
        await K.checkpoint()
        return "done"

    main = k.spawn("main", worker())
    other = k.spawn("other", worker())
    k.main_task = main
    k.run_all(limit=1)
    k.ki_pending = True
    k.run_all()
    assert not k.ki_pending
    results = dict(k.exited)
    assert type(results["main"].error) is KeyboardInterrupt
    assert results["other"].unwrap() == "done"
    assert main._cancel_status.made == other._cancel_status.made == 0


def test_keyboard_interrupt_at_checkpoint_resume(K: types.ModuleType) -> None:
    k = kernel(K)

    async def worker() -> str:
        try:
            await K.checkpoint()
        except KeyboardInterrupt:
            return "ki"
        return "none"

    t = k.spawn("main", worker())
    k.main_task = t
    k.run_all(limit=1)
    k.ki_pending = True
    t._cancel_status.effectively_cancelled = True
    k.run_batch([k.runq.pop()])
    assert not k.ki_pending
    assert t._send_mode == K.THROW and type(t._next_send) is KeyboardInterrupt
    assert t._cancel_status.made == 0  # KI wins over a cancellation check
    k.run_all()
    assert [r.unwrap() for _, r in k.exited] == ["ki"]


def test_pending_ki_offered_to_parked_main_task(K: types.ModuleType) -> None:
    k = kernel(K)

    async def worker() -> None:
        await K.wait_task_rescheduled(lambda _: False)

    t = k.spawn("main", worker())
    k.main_task = t
    k.ki_pending = True
    k.run_all()
    assert t.calls == ["pending_ki", "any_pending_cancel"]
    assert k.ki_pending  # only the Python layer's delivery clears it
    k.reschedule(t)
    k.run_all()


def test_entered_context_fails_the_task(K: types.ModuleType) -> None:
    k = kernel(K)

    async def worker() -> None:
        await K.checkpoint()

    ctx = contextvars.copy_context()
    t = k.spawn("w", worker(), ctx)
    ctx.run(k.run_all)
    t.coro.close()
    ((_, result),) = k.exited
    assert type(result.error) is RuntimeError
    assert "is already entered" in str(result.error)
    gc.collect()


# ------------------------------------------------------------------ run_busy


class FakeDeadlines:
    def __init__(self) -> None:
        self.due = float("inf")

    def peek_deadline(self) -> float:
        return self.due

    def push(self, deadline: float, payload: object) -> None:
        self.due = min(self.due, deadline)


class FakeQueue:
    """Stands in for the entry queue's deque: empty until *pending_after* truth tests."""

    def __init__(self, pending_after: int | None = None) -> None:
        self.pending_after = pending_after
        self.calls = 0

    def __bool__(self) -> bool:
        self.calls += 1
        return self.pending_after is not None and self.calls > self.pending_after


def _busy_kernel(K: types.ModuleType, rounds: int = 10) -> tuple[Any, list[Any]]:
    """Two tasks that each make *rounds* schedule points; their first step is done."""
    k = kernel(K)
    log: list[Any] = []

    async def worker(name: str) -> None:
        for i in range(rounds):
            log.append((name, i))
            await K.cancel_shielded_checkpoint()

    for name in ("t0", "t1"):
        k.spawn(name, worker(name))
    batch = k.runq[::-1]
    k.runq = []
    k.run_batch(batch)  # t0 first
    return k, log


def _heap_types() -> list[Any]:
    from vivace._core._heap_py import DeadlineHeap as PyHeap

    heaps = [FakeDeadlines, PyHeap]
    try:
        from vivace._core._ext._heap import DeadlineHeap as CHeap
    except ImportError:
        pass
    else:
        heaps.append(CHeap)
    return heaps


HEAPS = pytest.mark.parametrize(
    "heap_type", _heap_types(), ids=lambda t: f"{t.__module__}.{t.__name__}"
)


@HEAPS
def test_run_busy_runs_until_the_queue_is_empty(K: types.ModuleType, heap_type: Any) -> None:
    k, log = _busy_kernel(K, rounds=3)
    coins = iter([0.9, 0.1, 0.9])  # < 0.5 reverses the batch
    ran = k.run_busy(lambda: next(coins), lambda: 0.0, None, heap_type(), FakeQueue(), {}, 1.0, 100)
    assert ran == 3  # two more checkpoints each, then the exits
    assert log == [("t0", 0), ("t1", 0), ("t1", 1), ("t0", 1), ("t1", 2), ("t0", 2)]
    assert [name for name, _ in k.exited] == ["t0", "t1"] and k.runq == []


def test_run_busy_stops_after_max_batches(K: types.ModuleType) -> None:
    k, log = _busy_kernel(K)
    assert k.run_busy(lambda: 0.9, lambda: 0.0, None, FakeDeadlines(), FakeQueue(), {}, 1.0, 4) == 4
    assert len(log) == 2 * 5 and len(k.runq) == 2


def test_run_busy_stops_at_until(K: types.ModuleType) -> None:
    k, _ = _busy_kernel(K)
    times = iter([0.0, 0.5, 1.0, 2.0])
    ran = k.run_busy(lambda: 0.9, lambda: next(times), None, FakeDeadlines(), FakeQueue(), {}, 1.0, 100)
    assert ran == 2 and len(k.runq) == 2


@HEAPS
def test_run_busy_stops_when_a_deadline_is_due(K: types.ModuleType, heap_type: Any) -> None:
    k, _ = _busy_kernel(K)
    deadlines = heap_type()
    deadlines.push(5.0, "payload")
    times = iter([1.0, 4.0, 5.0, 6.0])
    ran = k.run_busy(lambda: 0.9, lambda: next(times), None, deadlines, FakeQueue(), {}, 100.0, 100)
    assert ran == 2


def test_run_busy_stops_when_the_entry_queue_has_work(K: types.ModuleType) -> None:
    k, _ = _busy_kernel(K)
    queue = FakeQueue(pending_after=3)
    assert k.run_busy(lambda: 0.9, lambda: 0.0, None, FakeDeadlines(), queue, {}, 1.0, 100) == 3
    assert queue.calls == 4


def test_run_busy_stops_when_an_idempotent_callback_is_queued(K: types.ModuleType) -> None:
    k, _ = _busy_kernel(K)
    pending = {("callback", ()): None}
    assert k.run_busy(lambda: 0.9, lambda: 0.0, None, FakeDeadlines(), FakeQueue(), pending, 1.0, 100) == 0


def test_run_busy_reads_the_system_clock_itself_given_an_offset(K: types.ModuleType) -> None:
    import time

    def boom() -> float:
        raise AssertionError("clock_now must not be called when an offset is given")

    k, log = _busy_kernel(K, rounds=3)
    offset = 1000.0
    # until already passed on the offset clock: nothing runs.
    assert k.run_busy(lambda: 0.9, boom, offset, FakeDeadlines(), FakeQueue(), {}, offset, 100) == 0
    until = offset + time.perf_counter() + 60
    assert k.run_busy(lambda: 0.9, boom, offset, FakeDeadlines(), FakeQueue(), {}, until, 100) == 3
    assert k.runq == [] and len(log) == 6


def test_run_busy_with_an_empty_queue_calls_nothing(K: types.ModuleType) -> None:
    k = kernel(K)

    def boom() -> float:
        raise AssertionError("called")

    assert k.run_busy(boom, boom, None, FakeDeadlines(), FakeQueue(), {}, 1.0, 100) == 0


# -- the spawn and exit fast paths -------------------------------------------------------


class TracedSet(set):  # type: ignore[type-arg]
    """A set subclass that logs its mutations (the twins must then use its methods)."""

    def __init__(self, log: list[Any], label: str) -> None:
        super().__init__()
        self.log = log
        self.label = label

    def add(self, item: Any) -> None:
        self.log.append((self.label, "add"))
        super().add(item)

    def discard(self, item: Any) -> None:
        self.log.append((self.label, "discard"))
        super().discard(item)

    def remove(self, item: Any) -> None:
        self.log.append((self.label, "remove"))
        super().remove(item)


class TreeStatus(Status):
    """A CancelStatus stand-in with the fields the spawn/exit paths touch."""

    def __init__(self, tasks: Any = None) -> None:
        super().__init__()
        self._tasks = set() if tasks is None else tasks
        self.abandoned_by_misnesting = False


class FakeNursery:
    def __init__(self, log: list[Any], traced: bool = False) -> None:
        self.log = log
        self._closed = False
        self._children: Any = TracedSet(log, "children") if traced else set()
        self._cancel_status = TreeStatus(TracedSet(log, "status") if traced else None)
        self._nested_child_running = False
        self._pending_starts = 0
        self._pending_excs: list[Any] = []

    def _check_nursery_closed(self) -> None:
        self.log.append(("check_closed", len(self._children)))


_SPAWN_CLASSES: dict[str, tuple[type, type]] = {}


def spawn_classes(K: types.ModuleType) -> tuple[Any, Any]:
    if K.__name__ in _SPAWN_CLASSES:
        return _SPAWN_CLASSES[K.__name__]

    class SpawnTask(K.TaskBase, metaclass=Meta):  # type: ignore[misc,name-defined]
        __slots__ = ()

        def __call__(self) -> None:  # pragma: no cover
            raise AssertionError

        def _attempt_delivery_of_any_pending_cancel(self) -> None:
            self._runner.log.append(("pending_cancel", self._abort_func))

    class SpawnKernel(K.KernelBase):  # type: ignore[misc,name-defined]
        def __init__(self, traced: bool = False) -> None:
            super().__init__()
            self.log: list[Any] = []
            self._task_class = SpawnTask
            self._fast_paths = True
            self._lot_breakers = {}
            if traced:
                self.tasks = TracedSet(self.log, "tasks")

        def spawn_impl(self, async_fn: Any, args: Any, nursery: Any, name: object) -> Any:
            self.log.append(("spawn_impl", async_fn, args, name))
            return "slow"

        def task_exited(self, task: Any, result: Any) -> None:
            self.log.append(("task_exited", result))

        def _call_instrument(self, hook: str, *args: object) -> None:
            self.log.append(("instrument", hook))

        def run_all(self) -> None:
            while self.runq:
                batch = self.runq
                self.runq = []
                self.run_batch(batch)

    _SPAWN_CLASSES[K.__name__] = (SpawnTask, SpawnKernel)
    return SpawnTask, SpawnKernel


_cv: contextvars.ContextVar[str] = contextvars.ContextVar("_cv", default="unset")


async def _returns(x: Any, y: Any = "dflt") -> Any:
    return (x, y, _cv.get())


def test_kernel_base_spawn_state_defaults(K: types.ModuleType) -> None:
    k = K.KernelBase()
    assert not (k._fast_paths or k._instr_spawned or k._instr_exited)
    assert (k.tasks, k.init_task, k._task_class, k._lot_breakers) == (set(), None, None, {})
    assert next(k._task_counter) == 0
    with pytest.raises(NotImplementedError):
        k.spawn_impl(None, (), None, None)


def test_task_base_tree_fields(K: types.ModuleType) -> None:
    MiniTask, _ = classes(K)
    t = MiniTask("coro", contextvars.copy_context(), "runner", 7, False)
    # No list until the task opens a nursery: spawning allocates none.
    assert (t._parent_nursery, t._name, t._child_nurseries, t._eventual_parent_nursery) == (
        None,
        None,
        (),
        None,
    )
    t2 = MiniTask("coro", contextvars.copy_context(), "runner", 7, False, "nursery", "nm")
    assert (t2._parent_nursery, t2._name) == ("nursery", "nm")
    assert t2._child_nurseries == ()
    # The shared stand-in reads like trio's empty list.
    empty = t._child_nurseries
    assert empty == [] and [] == empty and not empty and len(empty) == 0
    assert list(empty) == [] and repr(empty) == "[]" and empty != [1]
    assert empty is t2._child_nurseries  # one shared object: nothing allocated per task


def test_spawn_child_fast_path(K: types.ModuleType) -> None:
    SpawnTask, SpawnKernel = spawn_classes(K)
    k = SpawnKernel()
    nursery = FakeNursery(k.log)
    next(k._task_counter)
    token = _cv.set("spawner")
    try:
        task = k.spawn_child(_returns, (1,), nursery, None)
        named = k.spawn_child(_returns, (2, 3), nursery, "given")
    finally:
        _cv.reset(token)
    assert type(task) is SpawnTask
    assert type(task.coro) is types.CoroutineType and task.coro.cr_frame is not None
    assert task.context is not named.context and task.context[_cv] == "spawner"
    assert (task._runner, task._counter, named._counter) == (k, 1, 2)
    assert not task._ki_protected
    assert (task._parent_nursery, task._name, named._name) == (nursery, _returns, "given")
    assert task._child_nurseries == () and named._child_nurseries == ()
    assert task._eventual_parent_nursery is None
    assert task._cancel_status is nursery._cancel_status
    assert k.tasks == nursery._children == nursery._cancel_status._tasks == {task, named}
    assert k.runq == [task, named]
    assert (task._send_mode, task._next_send, task._abort_func) == (K.SEND, None, None)
    assert (task.custom_sleep_data, task._cancel_points, task._schedule_points) == (None, 0, 0)
    assert k.log == []
    k.run_all()
    # Normal exits took the fast path: no task_exited, everything unlinked.
    assert k.log == [("check_closed", 0)]
    assert k.tasks == nursery._children == nursery._cancel_status._tasks == set()
    assert task._cancel_status is None and named._cancel_status is None


def test_tasks_dropped_without_running_are_freed_cleanly(K: types.ModuleType) -> None:
    # A spawned task that never runs, once every reference to it is gone, is freed
    # while the compiled kernel still has it out of the GC's lists: its dealloc must
    # hand the context back without re-linking the dying task (the collections
    # below would trip over a dangling GC node).
    _, SpawnKernel = spawn_classes(K)
    contexts: list[Any] = []
    for _ in range(50):
        k = SpawnKernel()
        nursery = FakeNursery(k.log)
        task = k.spawn_child(_returns, (1,), nursery, None)
        contexts.append(task.context)
        task.coro.close()
        k.tasks.clear()
        k.runq.clear()
        nursery._children.clear()
        nursery._cancel_status._tasks.clear()
        del task  # the last reference: freed here, not by the collector
        gc.collect()
    gc.collect()
    assert all(gc.is_tracked(ctx) for ctx in contexts)


def test_spawn_child_side_effect_order(K: types.ModuleType) -> None:
    _, SpawnKernel = spawn_classes(K)
    k = SpawnKernel(traced=True)
    k._instr_scheduled = True
    nursery = FakeNursery(k.log, traced=True)
    nursery._cancel_status.effectively_cancelled = True
    k.spawn_child(_returns, (1,), nursery, None)
    assert k.log == [
        ("tasks", "add"),
        ("children", "add"),
        ("status", "add"),
        ("pending_cancel", None),
        ("instrument", "task_scheduled"),
    ]
    del k.log[:]
    nursery._cancel_status.effectively_cancelled = False
    k.run_all()
    assert k.log == [
        ("status", "discard"),
        ("tasks", "remove"),
        ("children", "remove"),
        ("check_closed", 0),
    ]


def test_spawn_child_bound_method_is_fast(K: types.ModuleType) -> None:
    _, SpawnKernel = spawn_classes(K)
    k = SpawnKernel()

    class C:
        async def meth(self, x: int) -> int:
            return x

    task = k.spawn_child(C().meth, (1,), FakeNursery(k.log), None)
    assert task != "slow" and task.coro.cr_code is C.meth.__code__
    task.coro.close()
    # A task that never ran goes back under the GC by hand (Runner.close does this
    # for a real run); otherwise its cycle with the kernel could never be collected.
    task._gc_retrack()


def test_spawn_child_closed_nursery(K: types.ModuleType) -> None:
    _, SpawnKernel = spawn_classes(K)
    for fast in (True, False):
        k = SpawnKernel()
        k._fast_paths = fast
        nursery = FakeNursery(k.log)
        nursery._closed = True
        with pytest.raises(RuntimeError, match="^Nursery is closed to new arrivals$"):
            k.spawn_child(_returns, (1,), nursery, None)
        assert k.log == [] and k.tasks == set() and next(k._task_counter) == 0


def test_spawn_child_bad_arguments(K: types.ModuleType) -> None:
    _, SpawnKernel = spawn_classes(K)
    k = SpawnKernel()
    nursery = FakeNursery(k.log)
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        k.spawn_child(_returns, (), nursery, None)
    assert k.tasks == nursery._children == set() and k.runq == []
    assert next(k._task_counter) == 0


def _not_async_def(index: int) -> Any:
    import functools

    async def agen() -> Any:
        yield

    @types.coroutine
    def gen_coro() -> Any:
        yield

    class Callable_:
        async def __call__(self) -> None:
            pass

    makers = [
        lambda: functools.partial(_returns, 1),
        lambda: lambda: _returns(1),
        lambda: agen,
        lambda: gen_coro,
        Callable_,
        lambda: print,
        lambda: _returns(1),  # a coroutine object (the slow path explains the mistake)
    ]
    return makers[index]()


@pytest.mark.parametrize("index", range(7))
def test_spawn_child_falls_back_for_anything_but_async_def(K: types.ModuleType, index: int) -> None:
    _, SpawnKernel = spawn_classes(K)
    k = SpawnKernel()
    fn = _not_async_def(index)
    nursery = FakeNursery(k.log)
    assert k.spawn_child(fn, ("a",), nursery, "nm") == "slow"
    assert k.log == [("spawn_impl", fn, ("a",), "nm")]
    assert k.tasks == set() and next(k._task_counter) == 0
    if isinstance(fn, types.CoroutineType):
        fn.close()


def test_spawn_child_falls_back_when_flagged(K: types.ModuleType) -> None:
    _, SpawnKernel = spawn_classes(K)
    for attr in ("_instr_spawned", "_fast_paths"):
        k = SpawnKernel()
        setattr(k, attr, attr == "_instr_spawned")
        assert k.spawn_child(_returns, (1,), FakeNursery(k.log), None) == "slow"
        assert k.log == [("spawn_impl", _returns, (1,), None)]


def _exit_case(K: types.ModuleType, case: str) -> tuple[Any, Any, list[Any]]:
    _, SpawnKernel = spawn_classes(K)
    k = SpawnKernel()
    nursery = FakeNursery(k.log)

    async def fails() -> None:
        raise ValueError("x")

    task = k.spawn_child(
        fails if case == "error" else _returns, () if case == "error" else (5,), nursery, None
    )
    if case == "child_nurseries":
        task._child_nurseries = ["n"]
    elif case == "breakers":
        k._lot_breakers = {task: []}
    elif case == "instr_exited":
        k._instr_exited = True
    elif case == "abandoned":
        nursery._cancel_status.abandoned_by_misnesting = True
    elif case == "no_status":
        nursery._cancel_status._tasks.discard(task)
        task._cancel_status = None
    elif case == "main":
        k.main_task = task
    elif case == "init":
        k.init_task = task
    elif case == "no_fast_paths":
        k._fast_paths = False
    k.run_all()
    return k, task, nursery


@pytest.mark.parametrize(
    "case",
    [
        "child_nurseries",
        "breakers",
        "instr_exited",
        "abandoned",
        "no_status",
        "main",
        "init",
        "no_fast_paths",
        "error",
    ],
)
def test_exit_falls_back_to_task_exited(K: types.ModuleType, case: str) -> None:
    k, task, nursery = _exit_case(K, case)
    assert len(k.log) == 1 and k.log[0][0] == "task_exited"
    result = k.log[0][1]
    if case == "error":
        assert type(result.error) is ValueError
    else:
        assert result == outcome.Value((5, "dflt", "unset"))
    # Nothing was unlinked: that is task_exited's job.
    assert task in k.tasks and task in nursery._children


def test_exit_fast_path_nursery_checks(K: types.ModuleType) -> None:
    _, SpawnKernel = spawn_classes(K)
    k = SpawnKernel()
    nursery = FakeNursery(k.log)
    for i in range(3):
        k.spawn_child(_returns, (i,), nursery, None)
    # Only the last child out may close the nursery.
    k.run_all()
    assert k.log == [("check_closed", 0)]
    # Body still running / start() pending: no check at all.
    for attr, value in (("_nested_child_running", True), ("_pending_starts", 1)):
        del k.log[:]
        nursery = FakeNursery(k.log)
        setattr(nursery, attr, value)
        k.spawn_child(_returns, (1,), nursery, None)
        k.run_all()
        assert k.log == []
    # A closed nursery is checked only if it still collects errors (not abandoned).
    for abandoned in (False, True):
        del k.log[:]
        nursery = FakeNursery(k.log)
        k.spawn_child(_returns, (1,), nursery, None)
        k.spawn_child(_returns, (2,), nursery, None)
        nursery._closed = True
        if abandoned:
            del nursery._pending_excs
        k.run_all()
        assert k.log == ([] if abandoned else [("check_closed", 1), ("check_closed", 0)])


def test_exit_fast_path_missing_task_is_a_key_error(K: types.ModuleType) -> None:
    _, SpawnKernel = spawn_classes(K)
    k = SpawnKernel()
    nursery = FakeNursery(k.log)
    task = k.spawn_child(_returns, (1,), nursery, None)
    k.tasks.discard(task)
    with pytest.raises(KeyError) as info:
        k.run_all()
    assert info.value.args == (task,)
    # The cancel status was unlinked first, as task_exited does.
    assert task._cancel_status is None and task in nursery._children


def test_spawn_and_exit_traces_match_between_twins() -> None:
    if _kernel_c is None:
        pytest.skip("compiled twin not built")
    traces = []
    for K in (_kernel_py, _kernel_c):
        _, SpawnKernel = spawn_classes(K)
        k = SpawnKernel(traced=True)
        k._instr_scheduled = k._instr_before_step = k._instr_after_step = True
        nursery = FakeNursery(k.log, traced=True)
        for i in range(3):
            k.spawn_child(_returns, (i,), nursery, None)
        k.spawn_child(print, (), nursery, "slow")
        k.run_all()
        traces.append(k.log)
    assert traces[0] == traces[1]
