# ruff: noqa: E402  (install() must run before anything imports trio)
"""trio-websocket 0.12 on vivace through install(): a ``serve_websocket`` server and
``open_websocket_url`` clients in one run.

    prog_websocket.py SCENARIO

``echo``: three concurrent clients each send text and bytes messages (empty, unicode, 200
kB) and get each back unchanged and of the same type; each closes cleanly (1000), which
the server's handler sees. ``server_close``: ping/pong, a close initiated by the server
with its own code and reason, and a rejected handshake. (trio-websocket leaves the client's
socket of those last two for the garbage collector, on the real trio as well: the
ResourceWarnings they print are its own.)
"""

import vivace

vivace.install()

import os
import sys

import ecocheck
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketRequest,
    open_websocket_url,
    serve_websocket,
)

MESSAGES: list[str | bytes] = [
    "hello",
    b"\x00\x01\x02 bytes",
    "",
    b"",
    "unicode: \u00e9\u4e2d\U0001f600",
    os.urandom(200_000),
    "x" * 70_000,
]


async def echo() -> None:
    server_closes: list[int] = []
    all_closed = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        assert request.path == "/echo", request.path
        assert request.proposed_subprotocols == ("chat", "echo")
        ws = await request.accept(subprotocol="echo")
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed as closed:
            assert closed.reason is not None
            server_closes.append(closed.reason.code)
            if len(server_closes) == 3:
                all_closed.set()

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        url = f"ws://127.0.0.1:{server.port}/echo"

        async def client(n: int) -> None:
            async with open_websocket_url(url, subprotocols=["chat", "echo"]) as ws:
                assert ws.subprotocol == "echo" and ws.is_client
                for message in MESSAGES:
                    await ws.send_message(message)
                    reply = await ws.get_message()
                    assert type(reply) is type(message) and reply == message, (n, message[:20])
                # Several in flight before reading any reply: order is kept.
                for i in range(20):
                    await ws.send_message(f"{n}:{i}")
                replies = [await ws.get_message() for _ in range(20)]
                assert replies == [f"{n}:{i}" for i in range(20)], replies
            assert ws.closed is not None and ws.closed.code == 1000, ws.closed
            try:
                await ws.get_message()
            except ConnectionClosed:
                pass
            else:
                raise AssertionError("a message after a clean close")

        async with trio.open_nursery() as clients:
            for n in range(3):
                clients.start_soon(client, n)
        # Every handler sees its client's close (a hang guard, not a timing assertion).
        with trio.fail_after(30):
            await all_closed.wait()
        assert server_closes == [1000, 1000, 1000], server_closes
        nursery.cancel_scope.cancel()


async def server_close() -> None:
    async def handler(request: WebSocketRequest) -> None:
        if request.path == "/reject":
            await request.reject(403, extra_headers=[(b"x-why", b"test")], body=b"go away")
            return
        ws = await request.accept()
        assert await ws.get_message() == "close me"
        await ws.send_message(b"last words")
        await ws.aclose(code=4001, reason="server says bye")

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        base = f"ws://127.0.0.1:{server.port}"

        async with open_websocket_url(base + "/talk") as ws:
            await ws.ping(b"are you there")  # returns once the matching pong arrives
            await ws.send_message("close me")
            assert await ws.get_message() == b"last words"
            try:
                await ws.get_message()
            except ConnectionClosed as closed:
                assert closed.reason is not None
                assert (closed.reason.code, closed.reason.reason) == (4001, "server says bye")
            else:
                raise AssertionError("no ConnectionClosed after the server closed")

        try:
            async with open_websocket_url(base + "/reject"):
                raise AssertionError("a rejected handshake opened a connection")
        except ConnectionRejected as rejected:
            assert rejected.status_code == 403 and rejected.body == b"go away"
            assert (b"x-why", b"test") in rejected.headers
        nursery.cancel_scope.cancel()


SCENARIOS = {f.__name__: f for f in (echo, server_close)}


async def program(scenario: str) -> None:
    await SCENARIOS[scenario]()
    ecocheck.ran_on_vivace()


if __name__ == "__main__":
    trio.run(program, sys.argv[1])
    print("ok", sys.argv[1])
