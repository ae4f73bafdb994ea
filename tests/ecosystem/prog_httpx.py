# ruff: noqa: E402  (install() must run before anything imports trio)
"""httpx 0.28's AsyncClient on trio, run on vivace through install().

    prog_httpx.py SCENARIO RUNNER

The server (h11_server, trio + h11) runs in the same run as the client, so both ends are
on vivace. RUNNER is ``trio`` (``trio.run``) or ``anyio`` (``anyio.run(backend="trio")``).
httpx reaches trio through httpcore's trio backend; the ``get`` scenario also goes through
httpcore's anyio backend (anyio's trio streams) and httpx's ASGI transport.
"""

import vivace

vivace.install()

import hashlib
import os
import socket
import sys
from collections.abc import Awaitable, Callable

import anyio
import ecocheck
import h11_server
import httpcore
import httpx
import trio

# Hang guards, not timing assertions (httpx's own default is 5 s, tight on a loaded machine).
GENEROUS = httpx.Timeout(30.0)

Scenario = Callable[[str, h11_server.Stats], Awaitable[None]]


async def get(base: str, stats: h11_server.Stats) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=GENEROUS) as client:
        for i in range(5):
            response = await client.get("/hello", params={"i": i})
            assert response.status_code == 200, response
            assert response.content == f"hello i={i}".encode(), response.content
            assert response.http_version == "HTTP/1.1"
        missing = await client.get("/nowhere")
        assert missing.status_code == 404 and missing.text == "no such route"
    assert stats.connections == 1 and stats.requests == 6, stats  # one kept-alive connection

    # The same server through httpcore's anyio backend (anyio's trio streams underneath).
    async with httpcore.AsyncConnectionPool(network_backend=httpcore.AnyIOBackend()) as pool:
        response = await pool.request("GET", base + "/hello?via=anyio")
        assert response.status == 200 and response.content == b"hello via=anyio"

    # httpx's ASGI transport picks trio's primitives when sniffio says trio.
    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["path"].encode() + b"|" + body})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://asgi") as client:
        response = await client.post("/in-process", content=b"payload")
        assert response.status_code == 201 and response.content == b"/in-process|payload"


async def post(base: str, stats: h11_server.Stats) -> None:
    bodies = [b"", b"x", os.urandom(1 << 20), bytes(range(256)) * 300]
    async with httpx.AsyncClient(base_url=base, timeout=GENEROUS) as client:
        for body in bodies:
            response = await client.post("/echo", content=body)
            assert response.status_code == 200
            assert response.headers["x-body-length"] == str(len(body))
            assert hashlib.sha256(response.content).digest() == hashlib.sha256(body).digest()

        # A streamed request body (chunked) and a streamed response, read in pieces.
        async def chunks() -> object:
            for i in range(20):
                await trio.sleep(0)
                yield bytes([i]) * 1000

        expected = b"".join(bytes([i]) * 1000 for i in range(20))
        async with client.stream("POST", "/echo", content=chunks()) as response:
            received = b"".join([piece async for piece in response.aiter_bytes(4096)])
        assert received == expected

        form = await client.post("/echo", data={"a": "1", "b": "two"})
        assert form.content == b"a=1&b=two"


async def timeout(base: str, stats: h11_server.Stats) -> None:
    # The server never answers /stall, so the read timeout fires however slow the machine
    # is; connecting and writing keep a generous limit so only the read can time out, and
    # the other requests keep the client's generous default.
    async with httpx.AsyncClient(base_url=base, timeout=GENEROUS) as client:
        try:
            await client.get("/stall", timeout=httpx.Timeout(30.0, read=0.2))
        except httpx.ReadTimeout as exc:
            assert exc.request.url.path == "/stall"
        else:
            raise AssertionError("no ReadTimeout from a server that never answers")
        # The client is still usable afterwards (on a new connection).
        response = await client.get("/hello?after=timeout")
        assert response.content == b"hello after=timeout"
    assert stats.connections == 2, stats

    # A trio cancel scope around the request cancels it the same way.
    async with httpx.AsyncClient(base_url=base, timeout=GENEROUS) as client:
        with trio.move_on_after(0.2) as scope:
            await client.get("/stall")
        assert scope.cancelled_caught


async def refused(base: str, stats: h11_server.Stats) -> None:
    # A bound socket that does not listen refuses connections, and its port cannot be taken
    # by anyone else while it is held.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        async with httpx.AsyncClient(timeout=GENEROUS) as client:
            for _ in range(3):
                try:
                    await client.get(f"http://127.0.0.1:{port}/hello")
                except httpx.ConnectError:
                    pass
                else:
                    raise AssertionError("connected to a port with no listener")
            # The pool is not poisoned: the live server still answers through it.
            response = await client.get(base + "/hello?after=refused")
            assert response.content == b"hello after=refused"


async def concurrent(base: str, stats: h11_server.Stats) -> None:
    n = 50
    results: dict[int, bytes] = {}
    # Every /gather request is held until all 50 are in flight at once.
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=GENEROUS) as client:

        async def fetch(i: int) -> None:
            response = await client.get(f"/gather/{i}", params={"n": n})
            assert response.status_code == 200
            results[i] = response.content

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(fetch, i)
    assert results == {i: f"item {i}".encode() for i in range(n)}, results
    assert stats.connections == n and stats.requests == n, stats


SCENARIOS: dict[str, Scenario] = {
    f.__name__: f for f in (get, post, timeout, refused, concurrent)
}


async def program(scenario: Scenario) -> None:
    stats = h11_server.Stats()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(h11_server.serve, stats)
        await scenario(f"http://127.0.0.1:{port}", stats)
        nursery.cancel_scope.cancel()
    ecocheck.ran_on_vivace()


def main(scenario: str, runner: str) -> None:
    if runner == "trio":
        trio.run(program, SCENARIOS[scenario])
    elif runner == "anyio":
        anyio.run(program, SCENARIOS[scenario], backend="trio")
    else:
        raise SystemExit(f"unknown runner {runner!r}")
    print("ok", scenario, runner)


if __name__ == "__main__":
    main(*sys.argv[1:])
