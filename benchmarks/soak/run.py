#!/usr/bin/env python3
"""Soak test: a vivace TCP echo server under 1,000 abusive, self-verifying connections.

    python benchmarks/soak/run.py                        # 10 minutes, 1,000 connections, compiled
    python benchmarks/soak/run.py --duration 60          # the CI run (~70 s in all)
    python benchmarks/soak/run.py --engine reference     # VIVACE_NO_EXTENSIONS=1

Starts ``server.py`` (vivace, 127.0.0.1 only) and then ``client.py`` (stdlib only) as
separate processes, samples the server's RSS and open fds every ``--sample-seconds``
while the client runs, then checks that the server's fd count returns to the baseline
it had before the first connection, stops the server (SIGTERM) and cross-checks the
server's per-connection records against the client's. Prints a summary (and writes it
as JSON with ``--json``); exit status 0 only if there were no errors: none in the
client's stream checks, none in the server's handlers, none in the cross-check, no fd
left open, no RSS growth beyond ``--rss-growth-mb`` after the warm-up, and both
processes ended by themselves in time. Any failure or timeout kills both children.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _protocol as P  # noqa: E402
from _checks import cross_check, fd_targets, heap_report, rss_report  # noqa: E402

ENGINE_ENV = {"compiled": "VIVACE_REQUIRE_EXTENSIONS", "reference": "VIVACE_NO_EXTENSIONS",
              "trio": "SOAK_SERVER"}  # trio: the same server on the real trio, to compare
STARTUP_SECONDS = 60.0  # a loaded machine may take a while to import and listen
STOP_SECONDS = 30.0


def server_env(engine: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ENGINE_ENV.values():
        env.pop(var, None)
    env[ENGINE_ENV[engine]] = "trio" if engine == "trio" else "1"
    return env


def read_line(proc: subprocess.Popen, seconds: float) -> str:
    """The child's first stdout line, or TimeoutError (never blocks longer)."""
    deadline = time.monotonic() + seconds
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line from the server within {seconds:g} s")
            if sel.select(left):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"server exited before listening (rc {proc.wait()})")
                buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def read_server_records(path: Path) -> tuple[dict[str, list], list[str]]:
    """The server's per-connection lines as {id: [mode, echoed, outcome, in_send]}."""
    records: dict[str, list] = {}
    duplicates = []
    with open(path) as f:
        for line in f:
            cid, mode, echoed, outcome, in_send = line.split()
            if cid in records:
                duplicates.append(cid)
            records[cid] = [int(mode), int(echoed), outcome, int(in_send)]
    return records, duplicates


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def soak(args: argparse.Namespace, tmp: Path, children: list[subprocess.Popen]) -> dict:
    errors: list[str] = []
    with open(tmp / "server.stderr", "wb") as server_err:  # the child keeps its own copy
        server = subprocess.Popen(
            [sys.executable, str(HERE / "server.py"), "--stats", str(tmp / "server.json"),
             "--max-seconds", str(args.duration + args.drain_seconds + 240)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=server_err,
            env=server_env(args.engine))
    children.append(server)
    announce = json.loads(read_line(server, STARTUP_SECONDS))
    port, pid = announce["port"], server.pid
    baseline = fd_count(pid)
    baseline_targets = fd_targets(pid)
    samples: list[tuple[float, int, int]] = []  # (seconds, RSS KiB, fds)
    t0 = time.monotonic()
    samples.append((0.0, rss_kib(pid), baseline))

    with open(tmp / "client.stdout", "wb") as out, open(tmp / "client.stderr", "wb") as err:
        client = subprocess.Popen(
            [sys.executable, str(HERE / "client.py"), "--port", str(port),
             "--connections", str(args.connections), "--duration", str(args.duration),
             "--seed", str(args.seed), "--records", str(tmp / "client.json"),
             "--drain-seconds", str(args.drain_seconds)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    children.append(client)
    # The client bounds itself (duration + drain); this only catches a client that hangs.
    deadline = t0 + args.duration + args.drain_seconds + 30
    next_sample = t0 + args.sample_seconds
    while client.poll() is None:
        now = time.monotonic()
        if server.poll() is not None:
            raise RuntimeError(f"the server exited during the run (rc {server.returncode}): "
                               f"{(tmp / 'server.stderr').read_text()[-2000:]}")
        if now > deadline:
            raise TimeoutError(f"the client was still running after {now - t0:.0f} s")
        if now >= next_sample:
            samples.append((now - t0, rss_kib(pid), fd_count(pid)))
            next_sample += args.sample_seconds
        time.sleep(min(0.2, max(0.0, next_sample - time.monotonic())))
    client_seconds = time.monotonic() - t0
    samples.append((client_seconds, rss_kib(pid), fd_count(pid)))
    try:
        client_summary = json.loads((tmp / "client.stdout").read_text().splitlines()[-1])
    except (IndexError, ValueError):
        client_summary = {"errors": 1, "error_samples": [
            f"client printed no summary (rc {client.returncode}): "
            f"{(tmp / 'client.stderr').read_text()[-2000:]}"]}

    # Every connection is closed on the client side now; the server's handlers finish
    # and serve_listeners closes their streams shortly after.
    settle_deadline = time.monotonic() + args.fd_settle_seconds
    fds_after = fd_count(pid)
    while fds_after != baseline and time.monotonic() < settle_deadline:
        time.sleep(0.05)
        fds_after = fd_count(pid)
    settle_seconds = args.fd_settle_seconds - max(0.0, settle_deadline - time.monotonic())
    leaked: list[str] = []
    if fds_after != baseline:
        leaked = sorted(set(fd_targets(pid).items()) - set(baseline_targets.items()))
        errors.append(f"server fds did not return to the baseline within "
                      f"{args.fd_settle_seconds:g} s: {baseline} -> {fds_after}; new: "
                      f"{leaked[:20]}")

    server.send_signal(signal.SIGTERM)
    try:
        server.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        errors.append(f"the server did not stop within {STOP_SECONDS:g} s of SIGTERM")
        server.kill()
        server.wait()
    server_stats: dict[str, Any] = {}
    if server.returncode != 0:
        errors.append(f"server exit status {server.returncode}: "
                      f"{(tmp / 'server.stderr').read_text()[-2000:]}")
    else:
        server_stats = json.loads((tmp / "server.json").read_text())
        server_stats["records"], duplicates = read_server_records(tmp / "server.json.records")
        if duplicates:
            errors.append(f"the server handled connection ids more than once: "
                          f"{duplicates[:10]}")
    stderr_text = (tmp / "server.stderr").read_text().strip()
    if stderr_text:  # vivace logs handler crashes and internal errors there
        errors.append(f"server stderr: {stderr_text[-2000:]}")

    client_records = []
    if (tmp / "client.json").exists():
        client_records = json.loads((tmp / "client.json").read_text())
    check = cross_check(client_summary, client_records, server_stats) if server_stats else {}
    errors.extend(check.get("errors", []))
    rss = rss_report(samples, args.warmup_seconds, args.rss_growth_mb)
    if rss["flag"]:
        errors.append(rss["flag"])
    server_stats.pop("records", None)  # too big for the summary
    heap = heap_report(server_stats.get("python_heap", {}), args.heap_growth_blocks)
    if heap["flag"]:
        errors.append(heap["flag"])
    total_errors = (int(client_summary.get("errors", 0)) + int(server_stats.get("errors", 0))
                    + len(errors))
    return {
        "ok": total_errors == 0,
        "engine": args.engine,
        "connections": args.connections,
        "duration_s": args.duration,
        "seed": args.seed,
        "client_seconds": round(client_seconds, 1),
        "errors": total_errors,
        "bytes_checked": client_summary.get("bytes_checked", 0),
        "bytes_sent": client_summary.get("bytes_sent", 0),
        "connections_opened": client_summary.get("connections_opened", 0),
        "connections_completed": client_summary.get("completed_total", 0),
        "fds_baseline": baseline,
        "fds_peak": max(s[2] for s in samples),
        "fds_after": fds_after,
        "fd_settle_s": round(settle_seconds, 2),
        "fds_leaked": leaked,
        "rss": rss,
        "python_heap": heap,
        "samples": samples,
        "client": client_summary,
        "server": server_stats,
        "cross_check": {k: v for k, v in check.items() if k != "errors"},
        "driver_errors": errors,
    }


def render(s: dict) -> str:
    c, sv, rss, heap = s["client"], s["server"], s["rss"], s["python_heap"]
    mib = 1024 * 1024
    lines = [
        f"soak: {s['engine']} engine, {s['connections']} connections, {s['duration_s']:g} s "
        f"(client ran {s['client_seconds']:g} s), seed {s['seed']}",
        f"  result: {'OK' if s['ok'] else 'FAILED'}, errors: {s['errors']}; server: "
        f"{sv.get('engine')}",
        f"  bytes checked: {s['bytes_checked']:,} ({s['bytes_checked'] / mib:,.0f} MiB); "
        f"sent {s['bytes_sent']:,}",
        f"  connections: {s['connections_opened']:,} opened, {s['connections_completed']:,} "
        f"ended by design; by mode started {c.get('started')} completed {c.get('completed')}",
        f"  client side: {c.get('resets', 0)} resets (RST), {c.get('drops', 0)} drops "
        f"({c.get('pre_header_aborts', 0)} before the header), {c.get('pauses', 0)} slow-reader "
        f"pauses ({c.get('pauses_with_backpressure', 0)} filled the pipe); connect to first "
        f"echo (s): {c.get('first_echo_s')}",
        f"  server side: {sv.get('accepted', 0):,} accepted, outcomes {sv.get('outcomes')}, "
        f"cancellations caught (kind/phase) {sv.get('cancels')}, {sv.get('headerless', 0)} "
        f"headerless; send_all blocked > 0.25 s (by mode): {sv.get('blocked_sends')}",
        f"  server fds: baseline {s['fds_baseline']}, peak {s['fds_peak']}, after "
        f"{s['fds_after']} (settled in {s['fd_settle_s']:g} s)",
        f"  server RSS (MiB): start {rss['start_mib']}, after warm-up {rss['warm_mib']}, "
        f"max after warm-up {rss['max_after_warm_mib']}, end {rss['end_mib']}, "
        f"slope after warm-up {rss['slope_mib_per_min']} MiB/min, "
        f"bound +{rss['bound_mib']:g} MiB: {'FLAGGED' if rss['flag'] else 'ok'}",
        f"  server Python heap (blocks / objects, gc'd, with no connection open): before "
        f"{heap.get('blocks_before')} / {heap.get('objects_before')}, after "
        f"{heap.get('blocks_after')} / {heap.get('objects_after')}: "
        f"{'FLAGGED' if heap.get('flag') else 'ok'} (bound +{heap.get('bound_blocks')} blocks)",
        "  RSS over time (s: MiB): " + ", ".join(
            f"{t:.0f}: {kib / 1024:.1f}" for t, kib in rss["series"]),
    ]
    for source, samples in (("client", c.get("error_samples", [])),
                            ("server", sv.get("error_samples", [])),
                            ("driver", s.get("driver_errors", []))):
        for e in samples[:10]:
            lines.append(f"  ERROR ({source}): {e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds of load (600)")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--engine", choices=sorted(ENGINE_ENV), default="compiled")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sample-seconds", type=float, default=5.0, help="RSS/fd sampling period")
    p.add_argument("--warmup-seconds", type=float, default=None,
                   help="RSS growth is judged after this (default: a quarter of the "
                        "duration, at most 60 s)")
    p.add_argument("--rss-growth-mb", type=float, default=64.0,
                   help="flag (fail) RSS growth beyond this after the warm-up")
    p.add_argument("--heap-growth-blocks", type=int, default=5000,
                   help="flag (fail) more Python heap blocks alive in the server after the "
                        "run than before it (a leak per connection shows as thousands)")
    p.add_argument("--drain-seconds", type=float, default=15.0,
                   help="bound on the client's drain after --duration")
    p.add_argument("--fd-settle-seconds", type=float, default=20.0,
                   help="how long the server's fds may take to return to the baseline")
    p.add_argument("--json", type=Path, help="also write the summary here")
    args = p.parse_args(argv)
    if args.warmup_seconds is None:
        args.warmup_seconds = min(60.0, args.duration / 4)
    P.raise_nofile_to_hard_limit()  # inherited by both children as their starting point
    children: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="vivace-soak-") as tmp:
        try:
            summary = soak(args, Path(tmp), children)
        except Exception as exc:
            summary = {"ok": False, "errors": 1, "fatal": f"{type(exc).__name__}: {exc}"}
        finally:
            for child in children:  # only ours, by their Popen handles
                if child.poll() is None:
                    child.kill()
                child.wait()
                if child.stdout is not None:
                    child.stdout.close()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    if "fatal" in summary:
        print(f"soak: FAILED: {summary['fatal']}")
    else:
        print(render(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
