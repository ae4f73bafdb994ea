"""``OneAtATime``: detect (not prevent) concurrent use of a resource."""

from __future__ import annotations

from ._core import BusyResourceError


class OneAtATime:
    """A non-blocking "one user at a time" marker for streams and sockets.

    ``with guard:`` raises BusyResourceError(*message*) if another task is already
    inside. Unlike a Lock it never queues the caller: two tasks sending on one stream at
    once is a bug in the caller, and waiting would hide it.
    """

    __slots__ = ("_busy", "_message")

    def __init__(self, message: str) -> None:
        self._message = message
        self._busy = False

    def __enter__(self) -> None:
        if self._busy:
            raise BusyResourceError(self._message)
        self._busy = True

    def __exit__(self, *exc_info: object) -> None:
        self._busy = False
