"""The ``hypercorn`` workload's server side: a hello-world ASGI app under hypercorn.

Design notes: the app and the hypercorn configuration are the same for every
implementation; only the worker differs (``hypercorn.trio.serve`` on vivace, vivace-ref
and trio; ``hypercorn.asyncio.serve`` on asyncio and uvloop), which is the point of the
comparison. The listening socket is bound here (127.0.0.1, an ephemeral port) and
handed to hypercorn as ``fd://N``, hypercorn's public way to serve an inherited socket,
so the port is known before the server starts and can be announced to the load process
(connections made before hypercorn accepts wait in the backlog). ``GET /shutdown`` is
answered and then triggers hypercorn's graceful shutdown; a safety deadline stops the
server if it never comes. The app counts the requests it answers and the client
addresses it saw (one per connection), so the worker can check them against the load
generator's counts.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import eco_common

HEADERS = [(b"content-type", eco_common.CONTENT_TYPE),
           (b"content-length", str(len(eco_common.BODY)).encode())]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
BODY = {"type": "http.response.body", "body": eco_common.BODY}


@dataclass
class AppState:
    requests: int = 0
    shutdowns: int = 0
    clients: set = field(default_factory=set)
    unexpected: list = field(default_factory=list)
    timed_out: bool = False


def make_app(state: AppState, request_shutdown: Callable[[], None]):
    async def app(scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            state.clients.add(scope.get("client"))
            if scope["path"] == "/shutdown":
                state.shutdowns += 1
                await send(START)
                await send(BODY)
                request_shutdown()
                return
            if scope["method"] != "GET" or scope["path"] != "/":
                state.unexpected.append(f"{scope['method']} {scope['path']}")
            state.requests += 1
            await send(START)
            await send(BODY)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    return app


def listening_socket(backlog: int) -> tuple[int, int]:
    """Bind and listen on 127.0.0.1:0; return (fd, port). hypercorn owns the fd after."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    port = sock.getsockname()[1]
    return sock.detach(), port


def make_config(fd: int, backlog: int):
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{fd}"]
    config.backlog = backlog
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 2.0
    return config


async def serve_trio(n: int, data: dict) -> tuple[AppState, str]:
    """Under ``trio.run`` (real trio, or vivace once installed as trio)."""
    import trio
    from hypercorn.trio import serve

    state = AppState()
    stop = trio.Event()
    fd, port = listening_socket(data["backlog"])

    async def shutdown_trigger() -> None:
        with trio.move_on_after(data["max_seconds"]) as scope:
            await stop.wait()
        state.timed_out = scope.cancelled_caught

    data["announce"](port)
    await serve(make_app(state, stop.set), make_config(fd, data["backlog"]),
                shutdown_trigger=shutdown_trigger)
    return state, type(trio.lowlevel.current_task()).__module__


async def serve_asyncio(n: int, data: dict) -> tuple[AppState, str]:
    """Under an asyncio Runner (asyncio's own loop or uvloop's)."""
    import asyncio

    from hypercorn.asyncio import serve

    state = AppState()
    stop = asyncio.Event()
    fd, port = listening_socket(data["backlog"])

    async def shutdown_trigger() -> None:
        try:
            await asyncio.wait_for(stop.wait(), data["max_seconds"])
        except TimeoutError:
            state.timed_out = True

    data["announce"](port)
    await serve(make_app(state, stop.set), make_config(fd, data["backlog"]),
                shutdown_trigger=shutdown_trigger)
    return state, type(asyncio.get_running_loop()).__module__
