#!/usr/bin/env python3
"""The soak's TCP echo server, on vivace (``serve_tcp`` on 127.0.0.1, one task per connection).

    python benchmarks/soak/server.py --stats PATH [--max-seconds S]

Prints one JSON line ``{"port": P, "pid": PID}`` once it listens, serves until SIGTERM
or SIGINT (or ``--max-seconds``, a safety bound; or until its parent is gone), then
writes its statistics to ``--stats`` and exits 0; one line per connection goes to
``STATS.records`` as each handler ends. The engine is the one vivace picks
from the environment (``VIVACE_NO_EXTENSIONS=1`` for the reference engine); with
``SOAK_SERVER=trio`` the same server runs on the real trio instead, for comparison.

Each handler reads the 16-byte header (see ``_protocol.py``), then echoes with
``receive_some`` / ``send_all`` inside a cancel scope that, for CANCEL connections, gets
a deadline or is cancelled by a sibling task after the delay the header asks for. It
records how it ended (EOF, cancelled, broken by the client) and how many bytes it
echoed, so the driver can cross-check the client's view. Anything else that escapes a
handler is recorded as an error instead of taking the server down, so one run reports
every failure.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _protocol as P  # noqa: E402

if os.environ.get("SOAK_SERVER") == "trio":  # real trio, the test-only oracle, to compare
    import trio

    ENGINE = f"trio {trio.__version__}"
else:
    import vivace as trio
    from vivace._core import _impl

    ENGINE = _impl.ENGINE

HEADER_SECONDS = 30.0  # a client that connects never waits this long to send its header
# No handler legitimately lives this long (the client ends every connection within its
# own --max-conn-seconds); reaching it means a hang, reported as an error.
HANDLER_SAFETY_SECONDS = 240.0
BLOCKED_SEND_SECONDS = 0.25  # a send_all this slow waited for a slow reader
RECEIVE_SIZE = 65536
MAX_ERRORS_KEPT = 20


class Stats:
    def __init__(self, records: TextIO) -> None:
        self.accepted = 0
        self.headerless = 0  # the client dropped or reset before its header arrived
        self.outcomes: dict[str, int] = {}
        self.cancels: dict[str, int] = {}  # "<kind>/<phase>" of caught cancellations
        self.blocked_sends: dict[str, int] = {}  # by connection mode
        self.bytes_echoed = 0
        self.errors = 0
        self.error_samples: list[str] = []
        # One line per connection: id, mode, bytes echoed, outcome, bytes of the send that
        # was interrupted. Written out, not kept, so that the Python heap stays flat and
        # its size after the run says whether connections leak objects.
        self.records = records
        self.heap: dict[str, int] = {}

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERRORS_KEPT:
            self.error_samples.append(message)


class Conn:
    """One handler's progress, read by the handler itself when it ends."""

    __slots__ = ("blocked_sends", "echoed", "in_send")

    def __init__(self) -> None:
        self.echoed = 0
        self.in_send = 0  # size of the send_all in progress (0 while receiving)
        self.blocked_sends = 0


async def read_header(stream: Any) -> bytes | None:
    """The header plus whatever stream bytes came with it; None if the client went away
    first (EOF or reset), which DROP and RESET connections may do by design."""
    buf = bytearray()
    with trio.move_on_after(HEADER_SECONDS):
        while len(buf) < P.HEADER.size:
            try:
                data = await stream.receive_some(RECEIVE_SIZE)
            except trio.BrokenResourceError:
                return None
            if not data:
                return None
            buf += data
        return bytes(buf)
    raise TimeoutError(f"no header after {HEADER_SECONDS:g} s ({len(buf)} bytes)")


async def echo(stream: Any, first: bytes, conn: Conn) -> None:
    receive_some, send_all, now = stream.receive_some, stream.send_all, trio.current_time
    data = first
    while True:
        if data:
            conn.in_send = len(data)
            started = now()
            await send_all(data)
            if now() - started > BLOCKED_SEND_SECONDS:
                conn.blocked_sends += 1
            conn.in_send = 0
            conn.echoed += len(data)
        data = await receive_some(RECEIVE_SIZE)
        if not data:
            return


async def cancel_later(scope: trio.CancelScope, seconds: float) -> None:
    await trio.sleep(seconds)
    scope.cancel()


async def handle(stats: Stats, stream: Any) -> None:
    stats.accepted += 1
    try:
        head = await read_header(stream)
    except Exception as exc:
        stats.error(f"header: {type(exc).__name__}: {exc}")
        return
    if head is None:
        stats.headerless += 1
        return
    magic, cid, mode, kind, delay_ms, _ = P.HEADER.unpack_from(head)
    if magic != P.MAGIC or mode >= len(P.MODE_NAMES) or kind >= len(P.CANCEL_KIND_NAMES):
        stats.error(f"bad header {head[:P.HEADER.size]!r}")
        return
    conn = Conn()
    outcome = "running"
    try:
        # The nursery only holds the cancel_later sibling; everything the echo raises is
        # handled inside its body, so nothing arrives wrapped in an ExceptionGroup.
        async with trio.open_nursery() as nursery:
            try:
                with trio.CancelScope() as scope:
                    if kind == P.CANCEL_DEADLINE:
                        scope.deadline = trio.current_time() + delay_ms / 1000
                    elif kind == P.CANCEL_EXPLICIT:
                        nursery.start_soon(cancel_later, scope, delay_ms / 1000)
                    with trio.move_on_after(HANDLER_SAFETY_SECONDS) as safety:
                        await echo(stream, head[P.HEADER.size:], conn)
                        outcome = P.OUT_EOF
                if safety.cancelled_caught:
                    outcome = "safety-timeout"
                    stats.error(f"connection {cid} ({P.MODE_NAMES[mode]}): handler still "
                                f"running after {HANDLER_SAFETY_SECONDS:g} s")
                elif scope.cancelled_caught:
                    outcome = P.OUT_CANCELLED
                    phase = "send" if conn.in_send else "receive"
                    key = f"{P.CANCEL_KIND_NAMES[kind]}/{phase}"
                    stats.cancels[key] = stats.cancels.get(key, 0) + 1
            except trio.BrokenResourceError:
                outcome = P.OUT_BROKEN
            except Exception as exc:
                outcome = "error"
                stats.error(f"connection {cid} ({P.MODE_NAMES[mode]}): "
                            f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}")
            nursery.cancel_scope.cancel()  # the cancel_later sibling, if still asleep
    finally:
        stats.records.write(f"{cid} {mode} {conn.echoed} {outcome} {conn.in_send}\n")
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        if conn.blocked_sends:
            name = P.MODE_NAMES[mode]
            stats.blocked_sends[name] = stats.blocked_sends.get(name, 0) + conn.blocked_sends
        stats.bytes_echoed += conn.echoed


async def watch_parent(parent: int, scope: trio.CancelScope, why: list[str]) -> None:
    # If the driver dies (killed, or its test timed out), stop instead of serving on.
    while os.getppid() == parent:
        await trio.sleep(1)
    why[0] = "orphaned"
    scope.cancel()


async def serve(stats: Stats, max_seconds: float, parent: int) -> str:
    why = ["max-seconds"]
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, functools.partial(handle, stats), 0,
                                  host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            stats.heap.update(heap_size("before"))
            with trio.move_on_after(max_seconds) as waiting:
                nursery.start_soon(watch_parent, parent, waiting, why)
                sys.stdout.write(json.dumps({"port": port, "pid": os.getpid()}) + "\n")
                sys.stdout.flush()
                async for signum in signals:
                    why[0] = signal.Signals(signum).name
                    break
            # The driver signals once every connection is closed: the heap should be back
            # where it was before the first one, give or take caches.
            stats.heap.update(heap_size("after"))
        nursery.cancel_scope.cancel()
    return why[0]


def heap_size(when: str) -> dict[str, int]:
    gc.collect()
    return {f"blocks_{when}": sys.getallocatedblocks(),
            f"objects_{when}": len(gc.get_objects())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stats", required=True, type=Path,
                   help="where to write the JSON stats (and, to STATS.records, one line "
                        "per connection)")
    p.add_argument("--max-seconds", type=float, default=900.0,
                   help="stop by itself after this long (a safety bound)")
    args = p.parse_args(argv)
    limits = P.raise_nofile_to_hard_limit()
    started = time.monotonic()
    with open(f"{args.stats}.records", "w") as records:
        stats = Stats(records)
        reason = trio.run(serve, stats, args.max_seconds, os.getppid())
    result = {
        "engine": ENGINE,
        "stopped_by": reason,
        "seconds": time.monotonic() - started,
        "nofile": limits,
        "accepted": stats.accepted,
        "headerless": stats.headerless,
        "outcomes": stats.outcomes,
        "cancels": stats.cancels,
        "blocked_sends": stats.blocked_sends,
        "bytes_echoed": stats.bytes_echoed,
        "errors": stats.errors,
        "error_samples": stats.error_samples,
        "python_heap": stats.heap,
    }
    args.stats.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
