"""serve_listeners: accept connections on listeners forever, one handler task each.

Design notes:
- Running out of fds/buffers (EMFILE, ENFILE, ENOMEM, ENOBUFS) is a load problem, not a
  bug: log it, sleep briefly so existing connections can finish and free resources,
  then accept again. Any other accept error ends the server.
- Each handler owns its stream: it is closed (forcefully) when the handler returns.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._core import TASK_STATUS_IGNORED, open_nursery
from ._highlevel_generic import aclose_forcefully
from ._timeouts import sleep

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._abc import AsyncResource, Listener
    from ._core import Nursery, TaskStatus

__all__ = ["serve_listeners"]

StreamT = TypeVar("StreamT", bound="AsyncResource")
ListenerT = TypeVar("ListenerT", bound="Listener[Any]")

ACCEPT_CAPACITY_ERRNOS = {
    getattr(errno, name)
    for name in ("EMFILE", "ENFILE", "ENOMEM", "ENOBUFS")
    if hasattr(errno, name)
}

# Long enough for some connections to close, short enough not to be noticed.
SLEEP_TIME = 0.100

LOGGER = logging.getLogger("vivace.serve_listeners")


async def _run_handler(stream: Any, handler: Callable[[Any], Awaitable[object]]) -> None:
    try:
        await handler(stream)
    finally:
        await aclose_forcefully(stream)


async def _serve_one_listener(
    listener: Listener[Any],
    handler_nursery: Nursery,
    handler: Callable[[Any], Awaitable[object]],
) -> NoReturn:
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno is None or exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                LOGGER.error(
                    "accept returned %s (%s); retrying in %s seconds",
                    errno.errorcode[exc.errno],
                    os.strerror(exc.errno),
                    SLEEP_TIME,
                    exc_info=True,
                )
                await sleep(SLEEP_TIME)
            else:
                handler_nursery.start_soon(_run_handler, stream, handler)


async def serve_listeners(
    handler: Callable[[StreamT], Awaitable[object]],
    listeners: list[ListenerT],
    *,
    handler_nursery: Nursery | None = None,
    task_status: TaskStatus[list[ListenerT]] = TASK_STATUS_IGNORED,
) -> NoReturn:
    """Accept connections on all *listeners* forever, running ``handler(stream)`` in a
    new task for each (in *handler_nursery* if given, else in an internal nursery).

    The stream is closed when the handler returns. Use with ``nursery.start``: the
    started value is *listeners*. Listeners are closed when this returns (it only ends
    by cancellation or an error).
    """
    async with open_nursery() as nursery:
        if handler_nursery is None:
            handler_nursery = nursery
        for listener in listeners:
            nursery.start_soon(_serve_one_listener, listener, handler_nursery, handler)
        task_status.started(listeners)
    raise AssertionError("serve_listeners' accept loops never finish normally")
