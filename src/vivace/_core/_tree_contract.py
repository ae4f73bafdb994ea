"""The contract between the engine and the task tree's Python classes.

The engine (the kernel and cancel-scope twins) reads and writes a few private fields of
``Nursery``, ``CancelStatus`` and ``Task``: these Protocols name every one of them, and
nothing else of those classes is the engine's business. The reference twins type their
parameters against them; ``tests/test_tree_contract.py`` checks that the real classes
provide every member and that the engine sources touch no other private field.

Ownership: two pieces of tree logic have one owner per engine, the kernel twin
(``_kernel_py`` / ``_ext/_kernel``):

* ``activate_cancel_status(task, status)`` moves a task from its cancel status to
  *status* (or to none) and delivers a cancel the new status already carries. Spawning,
  exiting, cancel-scope entry and exit and ``Task._activate_cancel_status`` all use it.
* ``check_nursery_closed(nursery)`` closes a nursery whose last child (nested child,
  pending ``start``) is gone, and wakes the parent waiting in ``__aexit__``.
  ``Nursery._check_nursery_closed`` and the kernel's fast exit both use it.
"""

from __future__ import annotations

from typing import Any, Protocol


class CancelStatusFields(Protocol):
    """A node of the cancel-status tree (``_cancel.CancelStatus``)."""

    _scope: Any
    _parent: CancelStatusFields | None
    _children: Any  # a set of child statuses, or a falsy placeholder
    _tasks: set[Any]  # the tasks whose innermost status this is
    effectively_cancelled: bool
    abandoned_by_misnesting: bool

    def _make_cancelled(self) -> BaseException: ...


class TaskFields(Protocol):
    """What the engine uses of a task (``_task.Task``): these fields of ``TaskBase``
    (the engine's own), and the Python layer's callbacks below."""

    _cancel_status: CancelStatusFields | None
    _child_nurseries: Any  # the nurseries it has open (a list, or an empty placeholder)
    _runner: Any

    @property  # read only, by the engine: a read-only member lets Task narrow its type
    def _parent_nursery(self) -> NurseryFields | None: ...

    def _attempt_delivery_of_any_pending_cancel(self) -> None: ...

    def _attempt_delivery_of_pending_ki(self) -> None: ...

    def _deadline_expired(self) -> None: ...


class NurseryFields(Protocol):
    """A nursery (``_nursery.Nursery``). It also has ``_pending_excs`` until it has
    reported; a closed nursery without it was abandoned by a misnested exit."""

    _closed: bool
    _children: set[Any]
    _cancel_status: CancelStatusFields
    _nested_child_running: bool
    _pending_starts: int
    _parent_waiting_in_aexit: bool
    _parent_task: TaskFields

    def _check_nursery_closed(self) -> None: ...
