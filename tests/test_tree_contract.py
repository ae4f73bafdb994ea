"""The engine's contract with the task tree (``vivace._core._tree_contract``).

* The real ``Nursery``, ``CancelStatus`` and ``Task`` provide every member the contract
  names (checked on live objects of a run, on the engine that is loaded).
* The engine sources -- both twins of the kernel, the cancel scopes, the sync and the
  socket operations -- touch no private member of a nursery, a status or a task that
  the contract (or the engine's own base class) does not name.
* The two pieces of tree logic it gives one owner are what the Python layer uses.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import vivace
from vivace._core import _impl, _kernel_py, _scope_py, _tree_contract
from vivace._core._nursery import Nursery
from vivace._core._task import Task

# The source tree beside the tests: an installed wheel carries no Cython sources.
CORE = Path(__file__).resolve().parent.parent / "src" / "vivace" / "_core"
ENGINE_SOURCES = sorted(
    [
        *(
            CORE / name
            for name in (
                "_kernel_py.py",
                "_scope_py.py",
                "_sync_py.py",
                "_sync_channel_py.py",
                "_sockio_py.py",
            )
        ),
        *(CORE / "_ext").glob("_kernel*.p*"),
        *(CORE / "_ext").glob("_scope*.pyx"),
        *(CORE / "_ext").glob("_sync*.p*"),
        *(CORE / "_ext").glob("_sockio*.p*"),
    ]
)


def _members(protocol: type) -> set[str]:
    names = set(typing.get_type_hints(protocol, localns=vars(_tree_contract)))
    names |= {
        name
        for name, value in vars(protocol).items()
        if callable(value) or isinstance(value, property)
    }
    return {name for name in names if not name.startswith("__")}


NURSERY = _members(_tree_contract.NurseryFields)
STATUS = _members(_tree_contract.CancelStatusFields)
TASK = _members(_tree_contract.TaskFields)
# The engine's own classes' fields and methods are its business.
TASKBASE_OWN = set(_kernel_py.TaskBase.__slots__) | {
    "_schedule_points",
    "_cancel_points",
    "_coro",
    "_context",  # properties of the twins
    "_sp_n",
    "_sp_box",
    "_cp_n",
    "_cp_box",
    "_gc_untracked",  # the compiled twin's C fields
}
STATUSBASE_OWN = set(_scope_py.CancelStatusBase.__slots__) | {"_init"}


def test_the_contract_names_what_the_engine_relies_on() -> None:
    assert {"_closed", "_children", "_cancel_status", "_check_nursery_closed"} <= NURSERY
    assert {"_tasks", "_parent", "effectively_cancelled", "_make_cancelled"} <= STATUS
    assert {"_cancel_status", "_parent_nursery", "_attempt_delivery_of_any_pending_cancel"} <= TASK


def test_real_classes_provide_every_member_of_the_contract() -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with vivace.open_nursery() as nursery:
            seen["nursery"] = nursery
            seen["task"] = vivace.lowlevel.current_task()
            seen["status"] = seen["task"]._cancel_status

    vivace.run(main)
    for role, members in (("nursery", NURSERY), ("status", STATUS), ("task", TASK)):
        obj = seen[role]
        missing = sorted(name for name in members if not hasattr(obj, name))
        assert not missing, f"{type(obj).__name__} lacks {missing}"
    assert type(seen["nursery"]) is Nursery and type(seen["task"]) is Task
    # The nursery is done: no _pending_excs left, closed, nobody waiting.
    assert seen["nursery"]._closed and not seen["nursery"]._parent_waiting_in_aexit


_ROLES = {
    "nursery": NURSERY,
    "status": STATUS | STATUSBASE_OWN,
    "old": STATUS | STATUSBASE_OWN,
    "outer": STATUS | STATUSBASE_OWN,
    "task": TASK | TASKBASE_OWN,
    # `parent` names a parent status in the scopes and the parent task in the nursery
    # check.
    "parent": STATUS | STATUSBASE_OWN | TASK | TASKBASE_OWN,
}
# (A name ending in "_" is prose, e.g. "task._attempt_delivery_*" in a docstring.)
_ACCESS = re.compile(r"\b(" + "|".join(_ROLES) + r")\.(_[A-Za-z_]*[A-Za-z])\b")


def test_engine_touches_only_what_the_contract_names() -> None:
    assert len(ENGINE_SOURCES) >= 12, ENGINE_SOURCES
    stray = []
    for path in ENGINE_SOURCES:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for role, name in _ACCESS.findall(code):
                if name.startswith("__") or name in _ROLES[role]:
                    continue
                stray.append(f"{path.name}:{lineno}: {role}.{name}")
    assert not stray, "private fields outside the contract:\n" + "\n".join(stray)


def test_tree_logic_has_one_owner_per_engine() -> None:
    # The Python layer reaches the engine's functions, never a copy of its own.
    from vivace._core import _cancel, _nursery, _runner, _task

    assert _impl.activate_cancel_status.__name__ == "activate_cancel_status"
    assert _impl.check_nursery_closed.__name__ == "check_nursery_closed"
    for module in (_cancel, _runner, _task):
        assert module.activate_cancel_status is _impl.activate_cancel_status
    assert _nursery.check_nursery_closed is _impl.check_nursery_closed
    for module in (_cancel, _nursery, _runner, _task):
        source = Path(module.__file__).read_text()
        assert not re.search(r"\._tasks\.(add|discard)\(", source), module
    assert "_runner.reschedule(self._parent_task)" not in Path(_nursery.__file__).read_text()


def test_moving_a_task_between_statuses_delivers_a_pending_cancel() -> None:
    # Through the public surface: a task entering an already-cancelled scope is
    # cancelled at its next checkpoint; leaving it restores the outer status.
    order: list[str] = []

    async def main() -> None:
        task = vivace.lowlevel.current_task()
        outer = task._cancel_status
        with vivace.CancelScope() as scope:
            scope.cancel()
            assert task._cancel_status is not outer
            assert task in task._cancel_status._tasks and task not in outer._tasks
            try:
                await vivace.lowlevel.checkpoint()
            except vivace.Cancelled:
                order.append("cancelled")
                raise
        assert task._cancel_status is outer and task in outer._tasks
        order.append("back")

    vivace.run(main)
    assert order == ["cancelled", "back"]
