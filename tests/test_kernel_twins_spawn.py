"""The kernel twins must behave identically (the spawn and nursery-exit fast paths). Every test
runs against each twin directly (not through the engine switch) with the same literal
expectations; the last test also compares the twins' traces with each other.
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
    Meta,
    Status,
    _kernel_c,
    classes,
)
from vivace._core import _kernel_py


@pytest.fixture(params=TWINS)
def K(request: pytest.FixtureRequest) -> types.ModuleType:
    return request.param  # type: ignore[no-any-return]


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


class _FakeParent:
    """The task waiting in the nursery's __aexit__: waking it is logged."""

    def __init__(self, log: list[Any]) -> None:
        self._runner = self
        self.log = log

    def reschedule(self, task: Any) -> None:
        assert task is self
        self.log.append(("parent_woken",))


class FakeNursery:
    """What the kernel may touch of a nursery (``_tree_contract.NurseryFields``); closing
    it is logged with the number of children left."""

    def __init__(self, log: list[Any], traced: bool = False) -> None:
        self.log = log
        self._closed_flag = False
        self._children: Any = TracedSet(log, "children") if traced else set()
        self._cancel_status = TreeStatus(TracedSet(log, "status") if traced else None)
        self._nested_child_running = False
        self._pending_starts = 0
        self._pending_excs: list[Any] = []
        self._parent_waiting_in_aexit = True
        self._parent_task = _FakeParent(log)

    @property
    def _closed(self) -> bool:
        return self._closed_flag

    @_closed.setter
    def _closed(self, value: bool) -> None:
        self.log.append(("closed", len(self._children)))
        self._closed_flag = value

    def _check_nursery_closed(self) -> None:  # pragma: no cover - the kernel has its own
        raise AssertionError("the kernel closes nurseries with check_nursery_closed")


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
    # Normal exits took the fast path: no task_exited, everything unlinked, the
    # nursery closed once its last child was gone, its parent woken.
    assert k.log == [("closed", 0), ("parent_woken",)]
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
        ("closed", 0),
        ("parent_woken",),
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
        del k.log[:]
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
    # Only the last child out closes the nursery.
    k.run_all()
    assert k.log == [("closed", 0), ("parent_woken",)]
    # Body still running / start() pending: it stays open.
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
        del k.log[:]
        k.run_all()
        assert k.log == ([] if abandoned else [("closed", 0), ("parent_woken",)])


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
