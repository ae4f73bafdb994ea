#!/usr/bin/env python3
"""The ``hypercorn`` workload's load process: ``benchmarks/http_client.py``, plus a probe-only mode.

    python benchmarks/ecosystem/hypercorn_load.py --server-pid PID --tool wrk --duration 5 < port
    python benchmarks/ecosystem/hypercorn_load.py --server-pid PID --tool probe < port

``--tool wrk`` and ``--tool python`` are exactly ``benchmarks/http_client.py`` (checked
keep-alive probe, then wrk or the stdlib client for ``--duration`` seconds, then
``GET /shutdown``), so the hypercorn servers are loaded the way the ``http`` workload's
h11 servers are. ``--tool probe`` (the smoke test's mode) runs only the checked probe:
``--probes`` keep-alive requests on one connection, each response checked field by
field, then the shutdown request; its figures are the probe's, not a throughput.

Prints one JSON line on stdout. Exit status 0 ok, 1 failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eco_common  # noqa: E402

eco_common.add_paths()
import _common  # noqa: E402
import http_client  # noqa: E402
from echo_client import _CLK_TCK, server_cpu_fields, server_cpu_times  # noqa: E402


def probe_only(args) -> int:
    port = None
    try:
        port = _common.server_port(args.port)
        cpu0 = server_cpu_times(args.server_pid)
        c0, t0 = time.process_time(), time.perf_counter()
        count = http_client.probe(port, args.probes, eco_common.BODY)
        t1, c1 = time.perf_counter(), time.process_time()
        cpu1 = server_cpu_times(args.server_pid)
        record = {"ok": True, "tool": "probe", "connections": 1, "duration_s": None,
                  "probe_requests": count, "requests": 0, "window_s": t1 - t0,
                  "probe_window_requests": count, **server_cpu_fields(cpu0, cpu1),
                  "client_cpu_s": c1 - c0, "clk_tck": _CLK_TCK, "in_flight_at_end": 0}
        code = 0
    except BaseException as exc:
        record = {"ok": False, "error": f"probe: {type(exc).__name__}: {exc}"[:400],
                  "traceback": traceback.format_exc(limit=10)}
        code = 1
    if port is not None:
        try:
            http_client.shutdown(port, _common.HTTP_SHUTDOWN_TARGET)
        except Exception as exc:
            if code == 0:
                record = {"ok": False, "error": f"probe: shutdown request failed: "
                          f"{type(exc).__name__}: {exc}"[:400]}
                code = 1
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return code


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--tool", choices=("wrk", "python", "probe"), required=True)
    p.add_argument("--duration", type=int, default=1)
    p.add_argument("--connections", type=int, default=eco_common.HYPERCORN_CONNECTIONS)
    p.add_argument("--probes", type=int, default=_common.HTTP_PROBE_REQUESTS)
    p.add_argument("--port", type=int)
    args = p.parse_args(argv)
    if args.tool == "probe":
        return probe_only(args)
    forward = ["--server-pid", str(args.server_pid), "--tool", args.tool,
               "--duration", str(args.duration), "--connections", str(args.connections)]
    if args.port is not None:
        forward += ["--port", str(args.port)]
    return http_client.main(forward)


if __name__ == "__main__":
    sys.exit(main())
