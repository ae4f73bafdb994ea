# ruff: noqa: E402  (install() must run before anything imports trio)
"""hypercorn 0.18's trio worker on vivace through install(), serving a tiny ASGI app.

    prog_hypercorn.py

Binds 127.0.0.1 on a free port, prints ``port=<n>`` once it accepts connections, and
serves until its standard input reaches end-of-file (the shutdown trigger: the parent
closes the pipe). Then it shuts down gracefully and prints what it served:
``served requests=<n> lifespan=<events>``.

The app answers every request with one line that lets the client check the whole
exchange: ``<method> <path> <body length> <sha256 of the body> <sniffio's library>``, and
an ``x-client-port`` header with the peer's port, so the client can tell that all of its
requests came over one kept-alive connection.
"""

import vivace

vivace.install()

import hashlib
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import ecocheck
import sniffio
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

served = 0
lifespan_events: list[str] = []


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    global served
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                lifespan_events.append("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                lifespan_events.append("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http", scope["type"]
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await trio.sleep(0)  # a checkpoint inside the app, as a real one would have
    line = " ".join([scope["method"], scope["path"], str(len(body)),
                     hashlib.sha256(body).hexdigest(), sniffio.current_async_library()])
    payload = line.encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-client-port", str(scope["client"][1]).encode())],
    })
    await send({"type": "http.response.body", "body": payload})
    served += 1


async def stdin_closed() -> None:
    """The shutdown trigger: returns when the parent closes our standard input."""
    async with trio.lowlevel.FdStream(os.dup(0)) as stdin:
        while await stdin.receive_some(4096):
            pass


async def main() -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    # Hang guards only: a loaded machine must not see its idle connections dropped.
    config.keep_alive_timeout = 60
    config.graceful_timeout = 30
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stdin_closed))
        [bind] = binds
        assert bind.startswith("http://127.0.0.1:"), bind
        print(f"port={bind.rsplit(':', 1)[1]}", flush=True)
    print(f"served requests={served} lifespan={','.join(lifespan_events)}", flush=True)
    ecocheck.ran_on_vivace()


if __name__ == "__main__":
    trio.run(main)
