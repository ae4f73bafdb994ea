"""Run a rendered program on one trio-like library and capture what it did.

The namespace a program runs in (``HELPERS``) is defined here: the recorder, the
normaliser of exceptions and statistics, the program's own exception classes and the
"blocking call" that stalls the loop. A standalone repro inlines this module's source
(see ``compare.standalone``), so nothing here may import the test package.

Deterministic scheduling: both libraries sort each batch by spawn counter and shuffle it
with their module-level ``_run._r`` when ``_run._ALLOW_DETERMINISTIC_SCHEDULING`` is set
(trio's Hypothesis plugin sets trio's; nothing sets vivace's, so ``deterministic()``
sets both). Each run reseeds the library's ``_r`` with the program's seed.
"""

from __future__ import annotations

import _thread
import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class MyError(Exception):
    pass


class OtherError(Exception):
    pass


class MyBaseError(BaseException):
    pass


_OWN = (MyError, OtherError, MyBaseError)


def norm(value: Any) -> Any:
    """A comparable, library-independent picture of an exception (or a value)."""
    if isinstance(value, BaseExceptionGroup):
        # trio does not promise the order of a group's children; the multiset is what
        # must agree.
        children = sorted((norm(e) for e in value.exceptions), key=repr)
        return (type(value).__name__, tuple(children))
    if isinstance(value, BaseException):
        if isinstance(value, _OWN):
            return (type(value).__name__, value.args)
        return (type(value).__name__,)
    return value


def stats(s: Any) -> tuple[Any, ...]:
    """A statistics object as a tuple of its public fields, sorted by name."""
    names = sorted(n for n in dir(s) if not n.startswith("_"))
    return tuple((n, getattr(s, n)) for n in names)


def sync_stats(
    lock: Any, sem: Any, e0: Any, e1: Any, cond: Any, lot: Any, lot1: Any, limiter: Any
) -> tuple[Any, ...]:
    ls = lock.statistics()
    cs = cond.statistics()
    return (
        ls.locked,
        ls.owner is not None,
        ls.tasks_waiting,
        sem.value,
        sem.statistics().tasks_waiting,
        e0.is_set(),
        e1.is_set(),
        e0.statistics().tasks_waiting,
        cs.tasks_waiting,
        cs.lock_statistics.locked,
        lot.statistics().tasks_waiting,
        len(lot),
        len(lot1),
        len(lot.broken_by),
        limiter.borrowed_tokens,
        limiter.available_tokens,
        limiter.statistics().tasks_waiting,
    )


def scope_state(R: dict[int, Any], sid: int) -> tuple[Any, ...]:
    cs = R.get(sid)
    if cs is None:
        return ("unentered",)
    return (cs.cancelled_caught, cs.cancel_called, cs.deadline)


def stall(clock: Any, seconds: float) -> None:
    """A blocking call: CPU work with no checkpoint, during which the clock moves on."""
    total = 0
    for k in range(300):
        total += k * k
    clock.jump(seconds)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def __call__(self, task: str, *event: Any) -> None:
        self.events.append((task, *(norm(v) for v in event)))


def run_stats(lib: Any) -> tuple[Any, ...]:
    # io_statistics is left out: trio's run_sync_soon task waits on a socket, vivace's
    # entry queue does not, and neither promises the other's I/O layout.
    # seconds_to_next_deadline is left out too: trio's sleep is a cancel scope whose
    # deadline stays registered after the sleep was cancelled, until the task resumes
    # and exits it; vivace's sleep drops its deadline when cancelled. Which deadline is
    # "next" in that window is an artefact of the implementation, not a promise.
    s = lib.lowlevel.current_statistics()
    return (
        s.tasks_living,
        s.tasks_runnable,
        s.run_sync_soon_queue_size,
    )


def _user_task(task: Any) -> str | None:
    label = task.name.rsplit(".", 1)[-1]
    if label == "program" or (label[:1] == "t" and label[1:].isdigit()):
        return label
    return None


def make_instrument(lib: Any, rec: Recorder) -> Any:
    """An instrument that records the scheduling hooks of the program's own tasks."""

    class Trace(lib.abc.Instrument):  # type: ignore[misc, name-defined]
        def _hook(self, hook: str, task: Any) -> None:
            label = _user_task(task)
            if label is not None:
                rec("instrument", hook, label)

        def task_spawned(self, task: Any) -> None:
            self._hook("spawned", task)

        def task_scheduled(self, task: Any) -> None:
            self._hook("scheduled", task)

        def before_task_step(self, task: Any) -> None:
            self._hook("step", task)

        def after_task_step(self, task: Any) -> None:
            self._hook("stepped", task)

        def task_exited(self, task: Any) -> None:
            self._hook("exited", task)

    return Trace()


HELPERS: dict[str, Any] = {
    "MyError": MyError,
    "OtherError": OtherError,
    "MyBaseError": MyBaseError,
    "stats": stats,
    "sync_stats": sync_stats,
    "scope_state": scope_state,
    "stall": stall,
    "run_stats": run_stats,
    "inf": math.inf,
}


def compile_program(source: str) -> Any:
    namespace = dict(HELPERS)
    exec(compile(source, "<differential program>", "exec"), namespace)
    return namespace["program"]


@dataclass
class Result:
    outcome: tuple[Any, ...]  # ("value", v) | ("error", normalised exception) | ("hang",)
    events: list[tuple[Any, ...]]

    def per_task(self) -> dict[str, list[tuple[Any, ...]]]:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for task, *event in self.events:
            out.setdefault(task, []).append(tuple(event))
        return out


class Hang(BaseException):
    pass


@contextlib.contextmanager
def hang_guard(seconds: float) -> Iterator[list[bool]]:
    """Interrupt the main thread if the body runs longer than ``seconds`` of real time:
    every program finishes in virtual time, so only a library bug can make it hang."""
    fired = [False]
    lock = threading.Lock()
    done = False

    def fire() -> None:
        with lock:
            if not done:
                fired[0] = True
                _thread.interrupt_main()

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        with lock:
            done = True
        timer.cancel()


def run_program(
    lib: Any, program_fn: Any, seed: int, instrument: bool = False, hang_seconds: float = 20.0
) -> Result:
    """Run ``program_fn`` on ``lib`` (trio or vivace) with a fresh autojump MockClock;
    with ``instrument``, the scheduling hooks of the program's tasks join the trace."""
    import importlib

    run_mod = importlib.import_module(lib.__name__ + "._core._run")
    run_mod._r.seed(seed)
    clock = lib.testing.MockClock(autojump_threshold=0)
    rec = Recorder()
    registry: dict[int, Any] = {}
    instruments = [make_instrument(lib, rec)] if instrument else []
    outcome: tuple[Any, ...]
    with hang_guard(hang_seconds) as fired:
        try:
            value = lib.run(
                program_fn, lib, rec, clock, registry, clock=clock, instruments=instruments
            )
            outcome = ("value", value)
        except KeyboardInterrupt as exc:
            outcome = ("hang",) if fired[0] else ("error", norm(exc))
        except BaseException as exc:
            outcome = ("error", norm(exc))
            del exc
    registry.clear()
    return Result(outcome, rec.events)


@contextlib.contextmanager
def deterministic(*libs: Any) -> Iterator[None]:
    """Deterministic batch order in each library for the duration."""
    import importlib

    mods = [importlib.import_module(lib.__name__ + "._core._run") for lib in libs]
    saved = [m._ALLOW_DETERMINISTIC_SCHEDULING for m in mods]
    for m in mods:
        m._ALLOW_DETERMINISTIC_SCHEDULING = True
    try:
        yield
    finally:
        for m, s in zip(mods, saved):
            m._ALLOW_DETERMINISTIC_SCHEDULING = s
