"""The kernel twins must behave identically (cancellation, rescheduling, instruments and
KeyboardInterrupt). Every test runs against each twin directly (not through the engine switch)
with the same literal expectations.
"""

from __future__ import annotations

import contextvars
import gc
import types
from typing import Any

import outcome
import pytest

from _kernel_twins_support import (
    TWINS,
    FakeCancelled,
    kernel,
)
from vivace._core._exceptions import TrioInternalError


@pytest.fixture(params=TWINS)
def K(request: pytest.FixtureRequest) -> types.ModuleType:
    return request.param  # type: ignore[no-any-return]


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
