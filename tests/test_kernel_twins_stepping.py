"""The kernel twins must behave identically (task stepping, traps and counters). Every test runs
against each twin directly (not through the engine switch) with the same literal expectations.
"""

from __future__ import annotations

import contextvars
import sys
import types
import weakref
from typing import Any

import outcome
import pytest

from _kernel_twins_support import (
    TWINS,
    _walk,
    classes,
    kernel,
)


@pytest.fixture(params=TWINS)
def K(request: pytest.FixtureRequest) -> types.ModuleType:
    return request.param  # type: ignore[no-any-return]


FOREIGN_MSG = (
    "vivace received unrecognized yield message 'foreign'. Are you trying to use a "
    "library written for some other framework like asyncio? That won't work without "
    "some kind of compatibility shim."
)


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
