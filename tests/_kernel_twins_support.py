"""Shared by the ``test_kernel_twins_*`` modules: the two kernel twins to test
(``vivace._core._kernel_py`` and, when built, ``vivace._core._ext._kernel``) and a tiny kernel
built on each twin's ``TaskBase``/``KernelBase``.

The compiled twin is required when ``VIVACE_REQUIRE_EXTENSIONS=1``; otherwise, if it was not
built, only the reference is tested.
"""

from __future__ import annotations

import abc
import contextvars
import os
import sys
import types
from typing import Any

import outcome
import pytest

from vivace._core import _kernel_py

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



def _walk(tb: Any) -> Any:
    while tb is not None:
        yield tb
        tb = tb.tb_next
