"""The run loop's pluggable interfaces: ``Clock`` (pass one as ``run(clock=...)``) and
``Instrument`` (``run(instruments=...)``, ``lowlevel.add_instrument``).

They live in the core because the run loop calls them; ``vivace.abc`` publishes them
through ``vivace._core``'s surface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._task import Task


class Clock(ABC):
    """The interface for custom run-loop clocks (pass one as ``run(clock=...)``)."""

    __slots__ = ()

    @abstractmethod
    def start_clock(self) -> None:
        """Called once, at the start of the run."""

    @abstractmethod
    def current_time(self) -> float:
        """Return the current time, in seconds since an arbitrary epoch."""

    @abstractmethod
    def deadline_to_sleep_time(self, deadline: float) -> float:
        """Return how many real seconds to sleep to reach *deadline* (may be <= 0)."""


class Instrument(ABC):  # noqa: B024 -- every hook is optional
    """The interface for run-loop instrumentation; override the hooks you need and pass
    instances to ``run(instruments=...)`` or ``lowlevel.add_instrument``."""

    __slots__ = ()

    def before_run(self) -> None:
        """Called at the start of ``run``."""

    def after_run(self) -> None:
        """Called just before ``run`` returns."""

    def task_spawned(self, task: Task) -> None:
        """Called when *task* is created."""

    def task_scheduled(self, task: Task) -> None:
        """Called when *task* becomes runnable."""

    def before_task_step(self, task: Task) -> None:
        """Called just before *task* runs a step."""

    def after_task_step(self, task: Task) -> None:
        """Called just after *task* ran a step."""

    def task_exited(self, task: Task) -> None:
        """Called when *task* finishes."""

    def before_io_wait(self, timeout: float) -> None:
        """Called before the run loop waits for I/O for up to *timeout* seconds."""

    def after_io_wait(self, timeout: float) -> None:
        """Called after the run loop's I/O wait."""
