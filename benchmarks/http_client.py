#!/usr/bin/env python3
"""The load driver for the ``http`` workload: wrk, or a stdlib-only client where wrk is missing.

    python benchmarks/http_client.py --server-pid PID --tool wrk --duration 10 < port

Started by ``_worker.py`` (the server process) before the server listens; it reads the
server's port as one line on stdin. Then, against http://127.0.0.1:port/:

1. **Probe** (not measured): ``HTTP_PROBE_REQUESTS`` keep-alive GETs over one
   ``http.client`` connection, each response checked field by field (HTTP/1.1, 200,
   content-type, content-length, body, connection kept open).
2. **Load** for ``--duration`` whole seconds over ``--connections`` keep-alive
   connections, one request in flight on each, with the server's CPU time (utime +
   stime of ``/proc/<pid>/stat``, all threads) read around it:
   - ``--tool wrk``: ``wrk -t 1 -c C -d Ds`` with ``wrk_report.lua``, which prints wrk's
     totals as JSON at the end. Any wrk error (connect, read, write, timeout, or a
     status >= 400) fails the run.
   - ``--tool python``: plain blocking sockets and one ``selectors`` loop (as in
     ``echo_client.py``); every response's status line and headers are parsed and its
     body compared with the expected one. Responses completed within the duration are
     counted; those still in flight then are drained, checked and reported separately.
3. **Shutdown**: ``GET /shutdown`` with ``Connection: close``, always (also after a
   failure), so that the server returns at once instead of at its safety deadline.

Design notes: wrk is a separate C program, so the load generator costs the server
nothing and is never the bottleneck on its own core; the stdlib client is the
fallback that needs nothing installed (the smoke test relies on it), and like
``echo_client.py`` it is the same process with the same arguments for every server. A
response header block that was validated once is then compared as bytes (every
response of this server has the same head), which keeps the fallback client cheap.

Prints one JSON line on stdout. Exit status 0 ok, 1 failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (stdlib-only shared settings)
from echo_client import _CLK_TCK, server_cpu_fields, server_cpu_times  # noqa: E402

WRK_SCRIPT = HERE / "wrk_report.lua"


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------------ probe, shutdown


def probe(port: int, count: int, body: bytes) -> int:
    """``count`` keep-alive requests on one connection, every response checked."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        sock = None
        for k in range(count):
            conn.request("GET", "/")
            resp = conn.getresponse()
            data = resp.read()
            where = f"probe request {k}"
            if resp.version != 11 or resp.status != 200:
                raise AssertionError(f"{where}: HTTP/{resp.version / 10:g} {resp.status}")
            if resp.getheader("content-type") != "text/plain":
                raise AssertionError(f"{where}: content-type {resp.getheader('content-type')!r}")
            if resp.getheader("content-length") != str(len(body)) or data != body:
                raise AssertionError(f"{where}: body {data!r}, expected {body!r}")
            if resp.will_close:
                raise AssertionError(f"{where}: the server did not keep the connection alive")
            if sock is None:
                sock = conn.sock
            elif conn.sock is not sock:
                raise AssertionError(f"{where}: the connection was not reused")
        return count
    finally:
        conn.close()


def shutdown(port: int, target: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target.decode(), headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise AssertionError(f"shutdown request answered {resp.status}")
    finally:
        conn.close()


# ------------------------------------------------------------------ wrk


def wrk_load(args, port: int) -> dict:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk), use --tool python")
    cmd = [wrk, "-t", "1", "-c", str(args.connections), "-d", f"{args.duration}s",
           "--timeout", "10s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}/"]
    child0 = children_cpu_s()
    cpu0 = server_cpu_times(args.server_pid)
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=args.duration + _common.HTTP_EXTRA_SECONDS)
    cpu1 = server_cpu_times(args.server_pid)
    child1 = children_cpu_s()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip()[-300:]
        raise RuntimeError(f"wrk exited {proc.returncode}: {tail}")
    res = json.loads(lines[-1])
    errors = {k: v for k, v in res["errors"].items() if v}
    if errors:
        raise AssertionError(f"wrk reported errors (status = responses >= 400): {errors}")
    if res["requests"] < 1:
        raise AssertionError("wrk completed no request")
    window = res["duration_us"] / 1e6
    return {"requests": res["requests"], "window_s": window, **server_cpu_fields(cpu0, cpu1),
            "client_cpu_s": child1 - child0, "in_flight_at_end": None,
            "latency_p50_us": res["latency_p50_us"], "latency_p99_us": res["latency_p99_us"],
            "wrk_output": proc.stdout.strip().splitlines()[:12]}


# ------------------------------------------------------------------ stdlib client


def parse_head(head: bytes) -> int:
    """Validate a response's status line and headers; return its content-length."""
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200 "):
        raise AssertionError(f"unexpected status line {lines[0]!r}")
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise AssertionError(f"malformed header line {line!r}")
        fields[name.strip().lower()] = value.strip()
    if fields.get(b"content-type") != b"text/plain":
        raise AssertionError(f"content-type {fields.get(b'content-type')!r}")
    if b"transfer-encoding" in fields or fields.get(b"connection", b"").lower() == b"close":
        raise AssertionError(f"not a keep-alive, content-length response: {head!r}")
    return int(fields[b"content-length"])


def python_load(args, port: int, body: bytes) -> dict:
    conns, pid = args.connections, args.server_pid
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.settimeout(None)  # blocking: a request always fits an idle send buffer
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    bufs = [b""] * conns
    good_head, good_length = None, -1
    counted = drained = 0
    perf = time.perf_counter

    cpu0 = server_cpu_times(pid)
    ccpu0 = time.process_time()
    t0 = perf()
    end = t0 + args.duration
    give_up = end + _common.HTTP_EXTRA_SECONDS
    t1 = cpu1 = ccpu1 = None
    for s in socks:
        s.sendall(request)
    in_flight = conns
    select = sel.select
    while in_flight:
        now = perf()
        if now > give_up:
            raise TimeoutError(f"{in_flight} responses still missing "
                               f"{_common.HTTP_EXTRA_SECONDS:g}s after the end")
        for key, _ in select(give_up - now):
            i = key.data
            chunk = key.fileobj.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection {i}: the server closed it mid-request")
            buf = bufs[i] + chunk if bufs[i] else chunk
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                bufs[i] = buf
                continue
            head = buf[:head_end]
            if head != good_head:
                good_length = parse_head(head)
                good_head = head
            total = head_end + 4 + good_length
            if len(buf) < total:
                bufs[i] = buf
                continue
            if len(buf) > total:
                raise AssertionError(f"connection {i}: bytes after the response")
            if buf[head_end + 4:] != body:
                raise AssertionError(f"connection {i}: body {buf[head_end + 4:]!r}")
            bufs[i] = b""
            if t1 is None:
                now = perf()
                if now < end:
                    counted += 1
                    key.fileobj.sendall(request)
                    continue
                t1, ccpu1, cpu1 = now, time.process_time(), server_cpu_times(pid)
            drained += 1
            in_flight -= 1
    sel.close()
    for s in socks:
        s.close()
    if counted < 1:
        raise AssertionError("no request completed within the duration")
    return {"requests": counted, "window_s": t1 - t0, **server_cpu_fields(cpu0, cpu1),
            "client_cpu_s": ccpu1 - ccpu0, "in_flight_at_end": drained}


# ------------------------------------------------------------------ main


def run(args, port: int) -> dict:
    body = _common.HTTP_BODY
    probes = probe(port, _common.HTTP_PROBE_REQUESTS, body)
    load = wrk_load(args, port) if args.tool == "wrk" else python_load(args, port, body)
    return {"ok": True, "tool": args.tool, "connections": args.connections,
            "duration_s": args.duration, "probe_requests": probes,
            "req_per_s": load["requests"] / load["window_s"], "clk_tck": _CLK_TCK, **load}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--tool", choices=("wrk", "python"), required=True)
    p.add_argument("--duration", type=int, required=True, help="seconds of load")
    p.add_argument("--connections", type=int, default=_common.HTTP_CONNECTIONS)
    p.add_argument("--port", type=int, help="server port (default: read from stdin)")
    args = p.parse_args(argv)
    if args.duration < 1 or args.connections < 1:
        p.error("--duration and --connections must be >= 1")
    port = None
    try:
        _common.raise_nofile_limit(args.connections + 64)
        port = _common.server_port(args.port)
        record = run(args, port)
        code = 0
    except BaseException as exc:
        record = {"ok": False, "error": f"http client: {type(exc).__name__}: {exc}"[:400],
                  "traceback": traceback.format_exc(limit=10)}
        code = 1
    if port is not None:
        try:
            shutdown(port, _common.HTTP_SHUTDOWN_TARGET)
        except Exception as exc:
            if code == 0:
                record = {"ok": False, "error": f"http client: shutdown request failed: "
                          f"{type(exc).__name__}: {exc}"[:400]}
                code = 1
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
