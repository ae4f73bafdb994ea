#!/usr/bin/env python3
"""The neutral TCP echo client for the ``echo`` workload (stdlib only, no async framework).

    python benchmarks/echo_client.py --server-pid PID --requests N [--warmup W] < port

Started by ``_worker.py`` (the server process) before the server listens; it reads the
server's port as one line on stdin, then opens ``--connections`` plain blocking TCP
sockets to 127.0.0.1:port and drives them with one ``selectors`` loop. Each connection
has exactly one request in flight: it sends ``--size`` bytes (``sendall``), reads back
exactly ``--size`` bytes, checks they are the bytes it sent (every connection sends its
own pattern, so cross-talk is caught), and sends the next request.

The first ``--warmup`` completed round trips (over all connections) are not measured;
the window then runs until exactly ``--requests`` more have completed. Around the window
it reads the server's CPU time (utime + stime of ``/proc/<server-pid>/stat``, all of its
threads) and its own ``process_time``. No request is issued after the last one counted,
so at the end nothing is in flight; then every socket is closed (the server sees EOF).

Design notes: the sockets stay blocking because with one 1 KiB request in flight per
connection neither call can block once the selector said so: ``sendall`` of 1 KiB
always fits an idle loopback send buffer, and ``recv`` is only called on a readable
socket. The same client, the same interpreter and the same arguments are used for every
server, and it imports nothing but the standard library (and the harness's stdlib-only
``_common``), so it cannot favour any of them. It gives up after ``--max-seconds``
(result ``ok: false``). With many connections it raises its RLIMIT_NOFILE soft limit
to the hard limit if needed.

Prints one JSON line on stdout. Exit status 0 ok, 1 failed.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (the harness's stdlib-only settings)

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def server_cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of process *pid* in seconds (Linux /proc; clock-tick resolution)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK  # fields 14 and 15


def server_cpu_fields(before: tuple[float, float], after: tuple[float, float]) -> dict:
    """The server's CPU time over a window: total, user space, kernel."""
    user, system = after[0] - before[0], after[1] - before[1]
    return {"server_cpu_s": user + system, "server_user_s": user, "server_sys_s": system}


def payload(index: int, size: int) -> bytes:
    start = (index * 37) % 256
    pattern = bytes((start + k) % 256 for k in range(256))
    return (pattern * (size // 256 + 1))[:size]


def run(args, port: int) -> dict:
    conns, size, pid = args.connections, args.size, args.server_pid
    _common.raise_nofile_limit(conns + 64)  # 1,000 connections need it
    deadline = time.monotonic() + args.max_seconds
    socks, payloads = [], []
    for i in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.settimeout(None)  # blocking
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
        payloads.append(payload(i, size))
    sel = selectors.DefaultSelector()
    bufs = [b""] * conns
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)

    warmup, target = args.warmup, args.warmup + args.requests
    issued = completed = 0
    t0 = t1 = cpu0 = cpu1 = ccpu0 = ccpu1 = None

    def start_window():
        nonlocal t0, cpu0, ccpu0
        cpu0 = server_cpu_times(pid)
        ccpu0 = time.process_time()
        t0 = time.perf_counter()

    if warmup == 0:
        start_window()
    for i, s in enumerate(socks):
        if issued < target:
            s.sendall(payloads[i])
            issued += 1

    select = sel.select
    while completed < issued:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"gave up after {args.max_seconds:g}s: {completed} of "
                               f"{target} round trips completed")
        for key, _ in select(deadline - now):
            i = key.data
            s = key.fileobj
            have = bufs[i]
            chunk = s.recv(size - len(have))
            if not chunk:
                raise ConnectionError(f"connection {i}: server closed it mid-request")
            if have:
                chunk = have + chunk
            if len(chunk) < size:
                bufs[i] = chunk
                continue
            bufs[i] = b""
            if chunk != payloads[i]:
                raise AssertionError(f"connection {i}: echoed bytes differ from the "
                                     f"request")
            completed += 1
            if completed == warmup and t0 is None:
                start_window()
            elif completed == target:
                t1 = time.perf_counter()
                ccpu1 = time.process_time()
                cpu1 = server_cpu_times(pid)
            if issued < target:
                s.sendall(payloads[i])
                issued += 1
    sel.close()
    for s in socks:
        s.close()
    window = t1 - t0
    return {
        "ok": True,
        "connections": conns,
        "size": size,
        "warmup": warmup,
        "requests": args.requests,
        "round_trips_total": completed,
        "window_s": window,
        "req_per_s": args.requests / window,
        **server_cpu_fields(cpu0, cpu1),
        "client_cpu_s": ccpu1 - ccpu0,
        "clk_tck": _CLK_TCK,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--requests", type=int, required=True,
                   help="round trips in the measured window (all connections together)")
    p.add_argument("--warmup", type=int, default=0, help="unmeasured round trips first")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--size", type=int, default=1024, help="bytes per request/response")
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--port", type=int, help="server port (default: read from stdin)")
    args = p.parse_args(argv)
    if args.requests < 1 or args.warmup < 0 or args.connections < 1 or args.size < 1:
        p.error("--requests, --connections, --size must be >= 1, --warmup >= 0")
    try:
        port = _common.server_port(args.port)
        record = run(args, port)
        code = 0
    except BaseException as exc:
        record = {"ok": False, "error": f"client: {type(exc).__name__}: {exc}"[:400],
                  "traceback": traceback.format_exc(limit=10)}
        code = 1
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
