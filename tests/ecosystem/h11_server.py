"""A small HTTP/1.1 server on trio + h11, for the httpx program to talk to in the same run.

Imported by programs after ``vivace.install()``, so its ``import trio`` is vivace. Routes:

* ``GET /hello?...``: ``hello <query>``;
* ``POST /echo``: the request body, unchanged (``x-body-length`` says how long it was);
* ``GET /stall``: never answers (the handler sleeps until the server is cancelled);
* ``GET /gather/<i>?n=<n>``: answers ``item <i>`` only once ``n`` gather requests are in
  flight at the same time, so a client that does not really send them concurrently hangs
  (and its hang guard fails the test) instead of passing.

Connections are kept alive between requests; ``stats`` counts connections and requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h11
import trio


@dataclass
class Stats:
    connections: int = 0
    requests: int = 0
    gathering: int = 0
    gathered: trio.Event = field(default_factory=trio.Event)


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(65536))


async def _route(stats: Stats, method: str, target: str, body: bytes) -> tuple[int, bytes]:
    url = urlsplit(target)
    if method == "GET" and url.path == "/hello":
        return 200, b"hello " + url.query.encode()
    if method == "POST" and url.path == "/echo":
        return 200, body
    if method == "GET" and url.path == "/stall":
        await trio.sleep_forever()
    if method == "GET" and url.path.startswith("/gather/"):
        want = int(parse_qs(url.query)["n"][0])
        stats.gathering += 1
        if stats.gathering == want:
            stats.gathered.set()
        await stats.gathered.wait()
        return 200, b"item " + url.path.rsplit("/", 1)[1].encode()
    return 404, b"no such route"


async def _handle(stats: Stats, stream: trio.SocketStream) -> None:
    stats.connections += 1
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            request = await _next_event(conn, stream)
            if isinstance(request, h11.ConnectionClosed):
                return
            assert isinstance(request, h11.Request), request
            body = bytearray()
            while not isinstance(event := await _next_event(conn, stream), h11.EndOfMessage):
                assert isinstance(event, h11.Data), event
                body += event.data
            stats.requests += 1
            status, payload = await _route(
                stats, request.method.decode(), request.target.decode(), bytes(body)
            )
            headers = [
                ("content-type", "application/octet-stream"),
                ("content-length", str(len(payload))),
                ("x-body-length", str(len(body))),
            ]
            for event in (h11.Response(status_code=status, headers=headers),
                          h11.Data(data=payload), h11.EndOfMessage()):
                await stream.send_all(conn.send(event))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()


async def serve(stats: Stats, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
                ) -> None:
    """Serve on 127.0.0.1 at a free port until cancelled; ``started`` gives the port."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, lambda s: _handle(stats, s), listeners)
        task_status.started(port)
