#!/usr/bin/env python3
"""The neutral HTTP/1.1 server of the ``httpx`` workload (a separate process).

    python benchmarks/ecosystem/fixed_server.py [--loop uvloop|asyncio]

Prints its port as the first line on stdout, then serves 127.0.0.1:port until its
stdin reaches EOF; then prints one JSON line (requests answered, connections accepted,
protocol errors, the loop it ran on) and exits.

Design notes: the client under test (httpx on vivace, trio, asyncio or uvloop) must be
what limits the throughput, so this server is the cheapest correct thing: a bare
``asyncio.Protocol`` on uvloop (plain asyncio when uvloop is missing; the loop used is
reported) that answers every complete request head with the same pre-built 200
response, written in one call. It is the same process, with the same arguments, for
every client. Requests are GETs without a body, so a request ends at its blank line;
each must start with ``GET /`` (anything else is counted as an error and answered 400,
which the client's check then catches). It also counts connections, so the worker can
check that the client really kept its pool alive instead of reconnecting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eco_common  # noqa: E402

BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"


class Stats:
    requests = 0
    connections = 0
    errors: list[str] = []


class FixedResponder(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending = b""

    def connection_made(self, transport) -> None:
        Stats.connections += 1
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.pending + data if self.pending else data
        end = buf.rfind(b"\r\n\r\n")
        if end < 0:
            self.pending = buf
            return
        heads = buf[:end].split(b"\r\n\r\n")
        self.pending = buf[end + 4:]
        out = []
        for head in heads:
            if head.startswith(b"GET /"):
                out.append(eco_common.FIXED_RESPONSE)
                Stats.requests += 1
            else:
                if len(Stats.errors) < 10:
                    Stats.errors.append(repr(head[:80]))
                out.append(BAD_REQUEST)
        self.transport.write(b"".join(out))


async def serve() -> None:
    loop = asyncio.get_running_loop()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    server = await loop.create_server(FixedResponder, sock=lsock, backlog=1024)
    sys.stdout.write(f"{lsock.getsockname()[1]}\n")
    sys.stdout.flush()
    # Stop at stdin EOF: the worker closes our stdin when its client is done.
    eof = loop.create_future()

    class StdinWatcher(asyncio.Protocol):
        def connection_lost(self, exc) -> None:
            if not eof.done():
                eof.set_result(None)

    await loop.connect_read_pipe(StdinWatcher, sys.stdin)
    await eof
    server.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = p.parse_args(argv)
    loop_name = args.loop
    factory = None
    if loop_name == "uvloop":
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            loop_name = "asyncio"
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve())
    sys.stdout.write(json.dumps({"requests": Stats.requests, "connections": Stats.connections,
                                 "errors": Stats.errors, "loop": loop_name}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
