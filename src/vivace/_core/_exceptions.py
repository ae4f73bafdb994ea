"""The exceptions of the core, with trio's names, bases and messages."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Literal

from ._util import NoPublicConstructor, final

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Self

CancelReasonLiteral = Literal[
    "KeyboardInterrupt", "deadline", "explicit", "nursery", "shutdown", "unknown"
]


class TrioInternalError(Exception):
    """A bug in vivace itself (or misuse of its low-level internals) was detected.

    The run is in an undefined state afterwards: tasks may have been lost.
    """


class RunFinishedError(RuntimeError):
    """The run that an operation needed has already finished (or never started)."""


class WouldBlock(Exception):
    """An ``*_nowait`` operation could not complete without blocking."""


@final
class Cancelled(BaseException, metaclass=NoPublicConstructor):
    """The surrounding cancel scope was cancelled; let it propagate.

    Raised at a checkpoint inside a cancelled scope and caught by that scope's ``with``
    block. It derives from BaseException so ``except Exception`` does not swallow it. It
    cannot be raised by user code: cancel a CancelScope instead.

    ``source`` says what cancelled the scope ("deadline", "explicit", "nursery",
    "shutdown", "KeyboardInterrupt" or "unknown"), ``source_task`` is the repr of the
    task that did it (if known), and ``reason`` is the text passed to ``cancel()``.
    """

    source: CancelReasonLiteral
    source_task: str | None
    reason: str | None

    def __init__(
        self,
        *,
        source: CancelReasonLiteral = "unknown",
        source_task: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        # A repr, never the Task: holding the task would keep frames alive via tracebacks.
        self.source_task = source_task
        self.reason = reason

    def __str__(self) -> str:
        text = f"cancelled due to {self.source}"
        if self.reason is not None:
            text += f" with reason {self.reason!r}"
        if self.source_task is not None:
            text += f" from task {self.source_task}"
        return text

    def __repr__(self) -> str:
        return (
            f"Cancelled(source={self.source!r}, source_task={self.source_task!r}, "
            f"reason={self.reason!r})"
        )

    def __reduce__(self) -> tuple[Callable[..., Cancelled], tuple[()], None, None, None]:
        # Pickle through _create: the public constructor refuses to run.
        rebuild = partial(
            Cancelled._create, source=self.source, source_task=self.source_task, reason=self.reason
        )
        return (rebuild, (), None, None, None)

    if TYPE_CHECKING:

        @classmethod
        def _create(
            cls,
            *,
            source: CancelReasonLiteral = ...,
            source_task: str | None = ...,
            reason: str | None = ...,
        ) -> Self: ...


class BusyResourceError(Exception):
    """Another task is already using this resource in a way that does not allow sharing
    (for example two tasks receiving on one socket at once)."""


class ClosedResourceError(Exception):
    """The resource was closed by your own code (possibly while this operation was
    waiting on it)."""


class BrokenResourceError(Exception):
    """The resource failed for an external reason (the peer went away, the pipe broke);
    the underlying error, if any, is in ``__cause__``."""


class EndOfChannel(Exception):
    """The sending side of the channel was closed and every item has been received."""
