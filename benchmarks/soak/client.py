#!/usr/bin/env python3
"""The soak's client: many concurrent echo connections that each verify their own stream.

    python benchmarks/soak/client.py --port P --connections 1000 --duration 600 \
        --records PATH [--seed S]

Keeps ``--connections`` connections open for ``--duration`` seconds, replacing each one
that ends with a new one, then drains (every live connection finishes its plan at once)
and exits. Each connection has a mode (see ``_protocol.py``): NORMAL and SLOW send a
planned pseudo-random stream, half-close and must get all of it back, then EOF; SLOW
stops reading for a while on the way, so the server's ``send_all`` blocks; DROP closes
and RESET resets (SO_LINGER 0) at a planned offset; CANCEL sends until the server's
handler is cancelled, which ends it from the server side (EOF or RST).

Every byte received is compared with the oldest byte sent and not yet echoed: the echo
must be exactly a prefix of the stream, so a byte lost, duplicated, reordered or
crossed with another connection's is an error at once. So is an early EOF or reset on a
connection the server had no reason to end, a connection without progress for
``--stall-seconds`` (``--first-echo-seconds`` before its first echo, while it may still
wait in the accept queue), a CANCEL connection the server does not end within
``--cancel-grace`` of its delay, one older than ``--max-conn-seconds``, and any
unexpected exception.

Design notes: one thread, one ``selectors`` loop, non-blocking sockets, stdlib only (the
client must not share a bug with the server it checks). One seeded generator per
connection plans it and produces its bytes, so a run is reproducible from ``--seed``
up to timing. Unechoed bytes are kept per connection, bounded by a window (large only
while a slow reader deliberately lets the pipe fill). Prints one JSON summary line on
stdout and writes one record per connection to ``--records`` for the driver's
cross-check against the server's records. Exit status 0 if no error, 1 otherwise.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import random
import selectors
import socket
import struct
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _protocol as P  # noqa: E402

R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
RECV_SIZE = 262144
WINDOW = 128 * 1024  # unechoed bytes a connection may have outstanding
SLOW_WINDOW = 1024 * 1024  # ...while it lets the pipe fill on purpose
# A reader that pauses gets small socket buffers, so that the pipe fills (the server's
# send_all blocks, then the client's send) after ~200 KB instead of ~4 MB on loopback:
# back-pressure is reached well within the window and the client's memory stays bounded.
SLOW_BUFFER = 16 * 1024
MAX_CHUNK_LOG2 = 16  # chunks of 1 byte to 64 KiB, log-uniform: odd sizes and big ones
MAX_ERRORS_KEPT = 20
MODE_WEIGHTS = (40, 15, 10, 10, 25)  # NORMAL, SLOW, DROP, RESET, CANCEL
LINGER_RST = struct.pack("ii", 1, 0)

CONNECTING, OPEN, HALF_CLOSED = 0, 1, 2


class Conn:
    __slots__ = (
        "action_at", "backpressure", "cancel_after", "cancel_by", "cid", "created", "header",
        "last_progress", "mask", "mode", "out", "pause_at", "pause_seconds", "pause_until",
        "paused", "pending", "received", "rng", "sent", "sock", "state", "target", "window",
    )

    def __init__(self, cid: int, seed: int, now: float) -> None:
        self.cid = cid
        rng = self.rng = random.Random(f"{seed}:{cid}")
        self.mode = rng.choices(range(5), MODE_WEIGHTS)[0]
        self.created = self.last_progress = now
        self.sock: socket.socket | None = None
        self.state = CONNECTING
        self.mask = 0
        self.sent = self.received = 0
        self.out = memoryview(b"")  # generated stream bytes the socket has not taken yet
        self.pending = bytearray()  # sent and not yet echoed back
        self.target: int | None = 0  # None: until the server ends it
        self.window = WINDOW
        self.action_at = -1  # DROP/RESET: stream offset to act at (-2: before the header)
        self.pause_at = -1  # SLOW (and some CANCEL): stream offset to stop reading at
        self.pause_seconds = 0.0
        self.pause_until = 0.0
        self.paused = False
        self.backpressure = False  # the client's send filled up while it was not reading
        # CANCEL: the server's deadline runs from its handler's start, which the client
        # cannot see (the connection may wait in the accept queue first); the first
        # echoed byte proves the handler had started, so the check runs from then.
        self.cancel_after = 0.0
        self.cancel_by = math.inf
        kind, delay_ms = P.CANCEL_NONE, 0
        mode = self.mode
        if mode == P.NORMAL:
            self.target = 0 if rng.random() < 0.03 else int(2 ** rng.uniform(0, 20))
        elif mode == P.SLOW:
            # At least 512 KiB left to send after the pause starts: more than the
            # ~200 KB the pipe holds, so the client can fill it while not reading.
            self.target = int(2 ** rng.uniform(19.5, 22))
            self.pause_at = rng.randrange(self.target - 512 * 1024)
            self.pause_seconds = rng.uniform(0.5, 2.0)
            self.window = SLOW_WINDOW
        elif mode in (P.DROP, P.RESET):
            self.target = int(2 ** rng.uniform(10, 20))
            self.action_at = -2 if rng.random() < 0.1 else rng.randrange(self.target)
        else:  # CANCEL
            self.target = None
            kind = rng.choice((P.CANCEL_DEADLINE, P.CANCEL_EXPLICIT))
            delay_ms = int(2 ** rng.uniform(math.log2(5), math.log2(1500)))
            if rng.random() < 0.5:  # stop reading, so the cancel often hits a blocked send
                self.pause_at = rng.randrange(256 * 1024)
                self.pause_seconds = min(2.5, delay_ms / 1000 + rng.uniform(0.2, 1.0))
                self.window = SLOW_WINDOW
            self.cancel_after = delay_ms / 1000 + self.pause_seconds
        self.header = P.HEADER.pack(P.MAGIC, cid, mode, kind, delay_ms, 0)

    def describe(self) -> str:
        return (f"connection {self.cid} ({P.MODE_NAMES[self.mode]}, state {self.state}, "
                f"sent {self.sent}, echoed {self.received}, target {self.target})")


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self.paused: set[Conn] = set()
        self.next_cid = 0
        self.draining = False
        self.started = [0] * 5
        self.completed = [0] * 5
        self.bytes_sent = self.bytes_checked = 0
        self.resets = self.drops = self.pre_header_aborts = 0
        self.pauses = self.backpressured = 0
        self.server_ended = {"eof": 0, "reset": 0}
        self.first_echo: list[float] = []  # seconds from connect to the first echoed byte
        self.errors = 0
        self.error_samples: list[str] = []
        self.records: list[tuple[int, int, int, int, str]] = []

    # ---------------------------------------------------------------- bookkeeping

    def error(self, conn: Conn | None, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERRORS_KEPT:
            where = conn.describe() + ": " if conn is not None else ""
            self.error_samples.append(where + message)
        if conn is not None:
            self.end(conn, "error")

    def end(self, conn: Conn, how: str, linger_rst: bool = False) -> None:
        if conn.cid not in self.conns:
            return
        del self.conns[conn.cid]
        self.paused.discard(conn)
        sock = conn.sock
        if sock is not None:
            if conn.mask:
                self.sel.unregister(sock)
            if linger_rst:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            sock.close()
        if how != "error":
            self.completed[conn.mode] += 1
        self.records.append((conn.cid, conn.mode, conn.sent, conn.received, how))

    def watch(self, conn: Conn) -> None:
        """Ask the selector for exactly the events *conn* can act on now."""
        if conn.state == CONNECTING:
            want = W
        else:
            want = 0 if conn.paused else R
            if conn.out or (conn.state == OPEN and self.may_generate(conn)):
                want |= W
        if want != conn.mask:
            if not conn.mask:
                self.sel.register(conn.sock, want, conn)
            elif not want:
                self.sel.unregister(conn.sock)
            else:
                self.sel.modify(conn.sock, want, conn)
            conn.mask = want

    @staticmethod
    def may_generate(conn: Conn) -> bool:
        if conn.target is not None and conn.sent >= conn.target:
            return False
        if conn.action_at >= 0 and conn.sent >= conn.action_at:
            return False
        return len(conn.pending) < conn.window

    # ---------------------------------------------------------------- life cycle

    def open_one(self, now: float) -> None:
        conn = Conn(self.next_cid, self.args.seed, now)
        self.next_cid += 1
        self.started[conn.mode] += 1
        self.conns[conn.cid] = conn
        sock = conn.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if conn.pause_at >= 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SLOW_BUFFER)
        rc = sock.connect_ex(("127.0.0.1", self.args.port))
        if rc not in (0, errno.EINPROGRESS):
            self.error(conn, f"connect: {errno.errorcode.get(rc, rc)}")
            return
        if self.draining:
            self.finish_now(conn)
        self.watch(conn)

    def finish_now(self, conn: Conn) -> None:
        """Draining: each connection carries out the rest of its plan without delay."""
        planned_end = conn.sent + len(conn.out)
        if conn.mode in (P.NORMAL, P.SLOW):
            conn.target = min(conn.target or 0, planned_end)
            if conn.pause_at > planned_end:
                conn.pause_at = planned_end
        elif conn.mode in (P.DROP, P.RESET) and conn.action_at > planned_end:
            conn.action_at = planned_end
        # CANCEL: the server ends it within its delay (at most 1.5 s from the start).

    def advance(self, conn: Conn, now: float) -> None:
        """Take the planned step that the stream offset has reached, if any."""
        if conn.state == CONNECTING or conn.out:
            return
        if conn.action_at != -1 and conn.sent >= conn.action_at:
            if conn.mode == P.RESET:
                self.resets += 1
            else:
                self.drops += 1
            if conn.action_at == -2:
                self.pre_header_aborts += 1
            self.end(conn, P.MODE_NAMES[conn.mode], linger_rst=conn.mode == P.RESET)
            return
        if 0 <= conn.pause_at <= conn.sent:
            conn.pause_at = -1
            conn.paused = True
            conn.pause_until = now + conn.pause_seconds
            self.paused.add(conn)
            self.pauses += 1
        if conn.state == OPEN and conn.target is not None and conn.sent >= conn.target:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.state = HALF_CLOSED

    def on_connected(self, conn: Conn, now: float) -> None:
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.error(conn, f"connect: {errno.errorcode.get(err, err)}")
            return
        conn.state = OPEN
        conn.last_progress = now
        if conn.action_at == -2:  # DROP/RESET before the header: the server sees no header
            self.advance(conn, now)
            return
        conn.out = memoryview(conn.header)

    def on_writable(self, conn: Conn, now: float) -> None:
        if not conn.out:
            if conn.state != OPEN or not self.may_generate(conn):
                return
            size = int(2 ** conn.rng.uniform(0, MAX_CHUNK_LOG2))
            if conn.paused:  # fill the pipe within the pause, even among 1,000 others
                size = 1 << MAX_CHUNK_LOG2
            size = min(size, conn.window - len(conn.pending))
            if conn.target is not None:
                size = min(size, conn.target - conn.sent)
            if conn.action_at >= 0:
                size = min(size, conn.action_at - conn.sent)
            if conn.pause_at >= 0:
                size = min(size, max(1, conn.pause_at - conn.sent))
            conn.out = memoryview(conn.rng.randbytes(size))
        try:
            n = conn.sock.send(conn.out)
        except BlockingIOError:
            n = 0
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.server_closed(conn, "reset", exc)
            return
        if n < len(conn.out) and conn.paused:
            conn.backpressure = True
        if not n:
            return
        conn.last_progress = now
        is_header = conn.out.obj is conn.header
        if not is_header:
            conn.pending += conn.out[:n]
            conn.sent += n
            self.bytes_sent += n
        conn.out = conn.out[n:]
        if not conn.out:
            conn.out = memoryview(b"")
            self.advance(conn, now)

    def on_readable(self, conn: Conn, now: float) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except ConnectionResetError as exc:
            self.server_closed(conn, "reset", exc)
            return
        if not data:
            self.on_eof(conn)
            return
        n = len(data)
        if not conn.pending.startswith(data):
            got = data[: len(conn.pending)]
            at = next((i for i, (a, b) in enumerate(zip(got, conn.pending)) if a != b),
                      len(got))
            self.error(conn, f"echo differs from the stream at offset {conn.received + at} "
                             f"({n} bytes received, {len(conn.pending)} outstanding)")
            return
        if not conn.received:
            self.first_echo.append(now - conn.created)
            if conn.mode == P.CANCEL:
                conn.cancel_by = now + conn.cancel_after
        del conn.pending[:n]
        conn.received += n
        self.bytes_checked += n
        conn.last_progress = now

    def on_eof(self, conn: Conn) -> None:
        if conn.mode == P.CANCEL:
            self.server_closed(conn, "eof", None)
        elif conn.state == HALF_CLOSED and not conn.pending and not conn.out:
            self.end(conn, "complete")
        else:
            self.error(conn, f"EOF from the server with {len(conn.pending)} bytes not "
                             f"echoed (the server had no reason to end it)")

    def server_closed(self, conn: Conn, how: str, exc: BaseException | None) -> None:
        """The server ended the connection: by design only for CANCEL connections."""
        if conn.mode != P.CANCEL:
            self.error(conn, f"the server ended the connection ({how}: {exc!r})")
            return
        self.server_ended[how] += 1
        self.end(conn, "server-" + how)

    def end_pauses(self, now: float) -> None:
        for conn in [c for c in self.paused if c.pause_until <= now]:
            self.paused.discard(conn)
            conn.paused = False
            conn.last_progress = now
            if conn.backpressure:
                self.backpressured += 1
            if self.draining:
                self.finish_now(conn)
            self.advance(conn, now)
            if conn.cid in self.conns:
                self.watch(conn)

    def check_stalls(self, now: float) -> None:
        stall, oldest = self.args.stall_seconds, self.args.max_conn_seconds
        grace, first_echo = self.args.cancel_grace, self.args.first_echo_seconds
        for conn in list(self.conns.values()):
            if now - conn.created > oldest:
                self.error(conn, f"still open after {oldest:g} s")
            elif now > conn.cancel_by + grace:
                self.error(conn, f"the server has not cancelled it {grace:g} s after the "
                                 f"delay it asked for")
            elif not conn.paused and now - conn.last_progress > (
                    stall if conn.received else first_echo):
                self.error(conn, f"no progress for {now - conn.last_progress:.0f} s "
                                 f"({len(conn.pending)} bytes outstanding)")

    # ---------------------------------------------------------------- the loop

    def run(self) -> dict:
        args = self.args
        parent = os.getppid()
        start = time.monotonic()
        stop_opening = start + args.duration
        drain_deadline = None
        next_check = start + 1.0
        select = self.sel.select
        while True:
            now = time.monotonic()
            if not self.draining and now >= stop_opening:
                self.draining = True
                drain_deadline = now + args.drain_seconds
                for conn in list(self.conns.values()):
                    self.finish_now(conn)
                    self.advance(conn, now)
                    if conn.cid in self.conns:
                        self.watch(conn)
            if self.draining:
                if not self.conns:
                    break
                if now > drain_deadline:
                    for conn in list(self.conns.values()):
                        self.error(conn, f"did not finish within the {args.drain_seconds:g} s "
                                         f"drain")
                    break
            else:
                while len(self.conns) < args.connections:
                    self.open_one(now)
            for key, events in select(0.05):
                conn = key.data
                if conn.cid not in self.conns:
                    continue  # ended earlier in this batch
                try:
                    if conn.state == CONNECTING:
                        self.on_connected(conn, now)
                    else:
                        if events & R:
                            self.on_readable(conn, now)
                        if events & W and conn.cid in self.conns:
                            self.on_writable(conn, now)
                except Exception as exc:
                    self.error(conn, f"unexpected {type(exc).__name__}: {exc}\n"
                                     f"{traceback.format_exc(limit=6)}")
                if conn.cid in self.conns:
                    self.watch(conn)
            now = time.monotonic()
            if self.paused:
                self.end_pauses(now)
            if now >= next_check:
                next_check = now + 1.0
                self.check_stalls(now)
                if os.getppid() != parent:
                    raise RuntimeError("the driver is gone; stopping")
        elapsed = time.monotonic() - start
        return {
            "ok": self.errors == 0,
            "seconds": elapsed,
            "connections_opened": self.next_cid,
            "started": dict(zip(P.MODE_NAMES, self.started)),
            "completed": dict(zip(P.MODE_NAMES, self.completed)),
            "completed_total": sum(self.completed),
            "bytes_sent": self.bytes_sent,
            "bytes_checked": self.bytes_checked,
            "resets": self.resets,
            "drops": self.drops,
            "pre_header_aborts": self.pre_header_aborts,
            "pauses": self.pauses,
            "pauses_with_backpressure": self.backpressured,
            "server_ended": self.server_ended,
            "first_echo_s": percentiles(self.first_echo),
            "errors": self.errors,
            "error_samples": self.error_samples,
        }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    pick = lambda q: round(values[min(len(values) - 1, int(q * len(values)))], 3)  # noqa: E731
    return {"p50": pick(0.5), "p99": pick(0.99), "max": round(values[-1], 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--duration", type=float, default=600.0,
                   help="seconds during which ended connections are replaced")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--records", type=Path, required=True,
                   help="where to write one [id, mode, sent, echoed, end] per connection")
    p.add_argument("--drain-seconds", type=float, default=15.0,
                   help="bound on the drain after --duration (it takes a few seconds)")
    p.add_argument("--cancel-grace", type=float, default=15.0,
                   help="how late a server-side cancellation may come")
    p.add_argument("--stall-seconds", type=float, default=30.0,
                   help="a connection without progress this long is an error")
    p.add_argument("--first-echo-seconds", type=float, default=60.0,
                   help="...before its first echoed byte: a new connection waits in the "
                        "accept queue first, for seconds when the server is loaded (one "
                        "accept per scheduling batch, as in trio)")
    p.add_argument("--max-conn-seconds", type=float, default=180.0)
    args = p.parse_args(argv)
    try:
        limits = P.raise_nofile_to_hard_limit()
        if limits[0] < args.connections + 64:
            raise OSError(f"RLIMIT_NOFILE {limits} is too low for {args.connections} "
                          f"connections")
        client = Client(args)
        summary = client.run()
        args.records.write_text(json.dumps(client.records))
    except BaseException as exc:
        summary = {"ok": False, "errors": 1,
                   "error_samples": [f"client: {type(exc).__name__}: {exc}\n"
                                     f"{traceback.format_exc(limit=8)}"]}
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
