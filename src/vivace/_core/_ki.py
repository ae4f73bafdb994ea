"""KeyboardInterrupt protection.

Design notes
------------
The compiled engine steps tasks from C, so there is no Python frame of the run loop to
mark as protected; protection is therefore a property of *code objects*, decided by
walking the interrupted frame's ``f_back`` chain:

* a frame whose code was marked by ``enable_ki_protection`` / ``disable_ki_protection``
  decides (innermost mark wins);
* reaching the current task's root coroutine frame decides by the task's own flag
  (system tasks are protected, user tasks are not);
* running off the bottom of the stack means we were interrupted outside any task -- in
  the run loop or one of its callbacks -- which is protected.

A SIGINT that lands in protected code is turned into a request (``deliver_cb``) that the
runner turns into a KeyboardInterrupt in the main task at its next checkpoint. A SIGINT
that lands in unprotected user code raises at once, as plain Python would.

Marks live in an identity-keyed weak map so code objects (and the closures sharing them)
are not kept alive by being marked.
"""

from __future__ import annotations

import signal
import sys
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from ._run_context import GLOBAL_RUN_CONTEXT

if TYPE_CHECKING:
    import types
    from collections.abc import Callable

F = TypeVar("F")


class _CodeMarks:
    """code object -> bool, compared by identity, not keeping the code alive."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[int, tuple[weakref.ref[Any], bool]] = {}

    def set(self, code: types.CodeType, value: bool) -> None:
        key = id(code)
        data = self._data

        def forget(_ref: weakref.ref[Any], key: int = key) -> None:
            entry = data.get(key)
            if entry is not None and entry[0] is _ref:
                del data[key]

        data[key] = (weakref.ref(code, forget), value)

    def get(self, code: types.CodeType) -> bool | None:
        entry = self._data.get(id(code))
        if entry is None or entry[0]() is not code:
            return None
        return entry[1]


_MARKS = _CodeMarks()


def _code_of(fn: Any) -> types.CodeType:
    # async_generator's legacy @async_generator functions wrap the real one.
    if getattr(fn, "_async_gen_function", None) == id(fn):
        fn = fn.__wrapped__
    try:
        return fn.__code__
    except AttributeError:
        raise TypeError(
            f"{fn!r} has no __code__; KI protection can only be set on plain Python "
            "functions, generators, coroutines and async generators"
        ) from None


def enable_ki_protection(fn: F, /) -> F:
    """Decorator: KeyboardInterrupt is deferred while *fn*'s frames run."""
    _MARKS.set(_code_of(fn), True)
    return fn


def disable_ki_protection(fn: F, /) -> F:
    """Decorator: KeyboardInterrupt may be raised directly inside *fn*'s frames."""
    _MARKS.set(_code_of(fn), False)
    return fn


def ki_protection_enabled(frame: types.FrameType | None) -> bool:
    task = None
    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    if runner is not None:
        task = runner.current_task
    task_frame = task.coro.cr_frame if task is not None else None
    while frame is not None:
        mark = _MARKS.get(frame.f_code)
        if mark is not None:
            return mark
        if frame.f_code.co_name == "__del__":
            # Finalizers run at arbitrary points; interrupting them leaks resources.
            return True
        if frame is task_frame:
            return bool(task._ki_protected)  # type: ignore[union-attr]
        frame = frame.f_back
    return True


def currently_ki_protected() -> bool:
    """Return whether KeyboardInterrupt is currently deferred for the calling code."""
    return ki_protection_enabled(sys._getframe(1))


def _is_main_thread() -> bool:
    # Asking threading is unreliable (its registry can be tampered with); only the main
    # thread may install signal handlers, so ask the signal module instead.
    try:
        signal.signal(signal.SIGINT, signal.getsignal(signal.SIGINT))
    except ValueError:
        return False
    return True


class KIManager:
    """Installs the SIGINT handler for one run (main thread, default handler only)."""

    __slots__ = ("handler",)

    def __init__(self) -> None:
        self.handler: Callable[[int, types.FrameType | None], None] | None = None

    def install(
        self, deliver_cb: Callable[[], object], restrict_to_checkpoints: bool
    ) -> None:
        if not _is_main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            # The user installed their own handler; leave it alone.
            return

        def on_sigint(signum: int, frame: types.FrameType | None) -> None:
            if not restrict_to_checkpoints and not ki_protection_enabled(frame):
                raise KeyboardInterrupt
            deliver_cb()

        signal.signal(signal.SIGINT, on_sigint)
        self.handler = on_sigint

    def close(self) -> None:
        installed, self.handler = self.handler, None
        # Restore the default only if nobody replaced our handler meanwhile.
        if installed is not None and signal.getsignal(signal.SIGINT) is installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
