#!/usr/bin/env python3
"""vivace benchmark runner: workloads x {vivace, vivace-ref, trio, asyncio, uvloop}
(and vivace-poll, the compiled engine on the poll(2) backend, when asked for).

    python benchmarks/run.py                       # full suite, 7 interleaved runs
    python benchmarks/run.py --quick               # ~1/10 sizes, 3 runs (< 2 min)
    python benchmarks/run.py --impls trio,asyncio,uvloop --workloads checkpoint,spawn
    python benchmarks/run.py --scaling             # ns/op at 1x/10x/100x(/1000x) sizes,
                                                   # echo at 10/100/1,000 connections
    python benchmarks/run.py --smoke               # tiny n, 1 run, exit 1 on any failure
    python benchmarks/run.py --workloads http --http-client python   # no wrk needed

Every measurement runs in a fresh ``sys.executable benchmarks/_worker.py`` process.
Round by round, every implementation runs each cell once, in a freshly shuffled order,
so that drift in machine load hits all implementations alike. Reports medians with
min-max, speedup ratios against trio / asyncio / uvloop computed from the same run's
medians, and peak RSS; for the server workloads (echo, http) also req/s and server CPU
per request, measured by a separate load-generating process. An implementation that
cannot be imported is shown as "n/a"; a cell that fails is shown as "error" and the run
goes on.

Prints a line per worker run with the elapsed time and an estimate of what is left (a
redrawn status line on a terminal) and ends with a compact summary, one row per
workload. Outputs (in --out, default benchmarks/results/): latest.json, latest.md, latest.png, or
scaling.json, scaling.md, scaling.png with --scaling. --smoke writes nothing unless --out
is given. Exit status: 0 when every importable implementation passed every cell, 1
otherwise (results are written either way), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _chart  # noqa: E402
import _common  # noqa: E402
import _progress  # noqa: E402
import _report  # noqa: E402

WORKER = HERE / "_worker.py"


# ------------------------------------------------------------------------ workers


def worker_env() -> dict:
    env = dict(os.environ)
    for name in _common.SLOW_MODE_ENV:
        env.pop(name, None)
    # The worker sets the vivace engine switches itself, per implementation.
    env.pop("VIVACE_NO_EXTENSIONS", None)
    env.pop("VIVACE_REQUIRE_EXTENSIONS", None)
    return env


def call_worker(args: list[str], timeout: float) -> dict:
    """Run the worker once; always return a record with "ok" (never raises)."""
    cmd = [sys.executable, str(WORKER), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=worker_env(), cwd=str(HERE.parent))
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:g}s"}
    except OSError as exc:
        return {"ok": False, "error": f"could not start worker: {exc}"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    try:
        record = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
        return {"ok": False, "error": f"worker exited {proc.returncode} without a result",
                "stderr": "\n".join(tail)}
    if proc.returncode != 0 and record.get("ok"):
        record = {"ok": False, "error": f"worker exited {proc.returncode}"}
    if proc.stderr.strip() and not record.get("ok"):
        record.setdefault("stderr", "\n".join(proc.stderr.strip().splitlines()[-5:]))
    return record


def probe(impls, timeout: float) -> dict:
    info = {}
    for impl in impls:
        rec = call_worker(["--impl", impl, "--probe"], timeout)
        info[impl] = {"available": bool(rec.get("ok")), **rec}
        info[impl].pop("ok", None)
    return info


# ------------------------------------------------------------------------ planning


def die(msg: str):
    print(f"run.py: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def parse_list(text: str | None, allowed, what: str, default=None) -> list[str]:
    if not text:
        return list(allowed if default is None else default)
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad:
        die(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return [x for x in allowed if x in items]  # canonical order, no duplicates


def build_plan(args, workloads) -> list[tuple[str, int]]:
    """(workload, size) cells. The size is n, except: http's is seconds of load, and in
    --scaling echo's is the number of connections (_common.SCALING_AXIS)."""
    if args.smoke:
        return [(w, _common.SMOKE_SIZES.get(w, args.smoke_n)) for w in workloads]
    if args.scaling:
        plan = []
        for w in workloads:
            sizes = _common.SCALING_SIZES.get(w)
            if sizes is None:
                continue
            if w in _common.SCALING_AXIS:  # connection counts are not --scale'd
                plan += [(w, s) for s in sizes]
                continue
            if args.quick:
                sizes = [s for s in sizes if s <= _common.QUICK_SCALING_MAX]
            plan += [(w, _common.scaled(s, args.scale)) for s in sizes]
        return plan
    if args.quick:
        return [(w, _common.scaled(_common.QUICK_SIZES.get(
            w, _common.DEFAULT_SIZES[w] // _common.QUICK_DIVISOR), args.scale))
            for w in workloads]
    return [(w, _common.scaled(_common.DEFAULT_SIZES[w], args.scale)) for w in workloads]


def cell_args(workload: str, size: int, args) -> list[str]:
    """The worker's arguments for one cell of the plan."""
    if args.scaling and _common.SCALING_AXIS.get(workload) == "connections":
        requests = (_common.QUICK_ECHO_SCALING_REQUESTS if args.quick
                    else _common.ECHO_SCALING_REQUESTS)
        out = ["--workload", workload, "--connections", str(size),
               "--n", str(_common.scaled(requests, args.scale))]
    else:
        out = ["--workload", workload, "--n", str(size)]
    if workload == "http":
        out += ["--http-client", args.http_client]
    if args.no_gc:
        out.append("--no-gc")
    return out


# ------------------------------------------------------------------------ measuring


def spread(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_cells(plan, available, runs, timeout, rng, progress, args) -> list[dict]:
    cpu_time = args.cpu_time
    axis = _common.SCALING_AXIS if args.scaling else {}
    log = progress.log
    cells = []
    for workload, n in plan:
        records = {impl: [] for impl in available}
        errors = {}
        label = _common.size_label(workload, n, axis.get(workload))
        for r in range(runs):
            order = list(available)
            rng.shuffle(order)
            for impl in order:
                if impl in errors:  # a broken cell stays broken; don't pay for it again
                    continue
                progress.step(f"{workload} {label} × {impl}: run {r + 1}/{runs}")
                rec = call_worker(["--impl", impl, *cell_args(workload, n, args)], timeout)
                if rec.get("ok"):
                    records[impl].append(rec)
                else:
                    errors[impl] = rec
                    progress.skip(runs - r - 1)
                    log(f"  ! {impl} {workload} {label}: {rec.get('error')}")
                    detail = rec.get("traceback") or rec.get("stderr")
                    if detail:
                        tail = detail.strip().splitlines()[-6:]
                        log("    " + "\n    ".join(tail))
        # --scaling echo: the per-request cost that should stay flat is server CPU.
        metric = "cpu" if workload in axis else metric_for(workload, cpu_time)
        for impl in available:
            cell = summarize(workload, n, impl, records[impl], errors.get(impl), metric)
            if workload in axis:
                cell["axis"] = axis[workload]
            cells.append(cell)
        add_ratios([c for c in cells if c["workload"] == workload and c["n"] == n])
        log(f"  = {_report.progress_line(workload, n, cells)} "
            f"[{_progress.fmt_duration(progress.elapsed())}]")
    progress.close()
    return cells


def metric_for(workload: str, cpu_time: bool) -> str:
    return "cpu" if cpu_time else _common.metric_of(workload)


def summarize(workload, n, impl, recs, error, metric) -> dict:
    cell = {"workload": workload, "n": n, "impl": impl, "metric": metric}
    if error is not None:
        cell.update(status="error", error=error.get("error"),
                    traceback=error.get("traceback"), runs_ok=len(recs))
        return cell
    cell.update(
        status="ok",
        runs=len(recs),
        ns_per_op=spread([r[f"{metric}_ns_per_op"] for r in recs]),
        # In round order, one per round (a failing cell is not "ok"), so that the chart
        # can pair each run with the baseline's run of the same round.
        ns_per_op_runs=[r[f"{metric}_ns_per_op"] for r in recs],
        wall_ns_per_op=spread([r["wall_ns_per_op"] for r in recs]),
        cpu_ns_per_op=spread([r["cpu_ns_per_op"] for r in recs]),
        elapsed_s=spread([r["elapsed_s"] for r in recs]),
        peak_rss_kib=statistics.median(r["peak_rss_kib"] for r in recs),
        rss_delta_kib=statistics.median(r["rss_delta_kib"] for r in recs),
        run_overhead_s=statistics.median(r["run_overhead_s"] for r in recs),
        raw=[{k: r[k] for k in ("elapsed_s", "cpu_s", "peak_rss_kib", "rss_delta_kib")}
             for r in recs],
    )
    if workload in _common.SERVER_WORKLOADS:
        cell.update(
            req_per_s=spread([r["req_per_s"] for r in recs]),
            server_cpu_us_per_req=spread([r["server_cpu_us_per_req"] for r in recs]),
            server_user_us_per_req=spread([r["server_user_us_per_req"] for r in recs]),
            server_sys_us_per_req=spread([r["server_sys_us_per_req"] for r in recs]),
            server_cpu_share=statistics.median(r["server_cpu_share"] for r in recs),
            client_cpu_share=statistics.median(r["client_cpu_share"] for r in recs),
            requests=spread([r["requests"] for r in recs]),
            load=recs[0]["load"],
        )
        for raw, r in zip(cell["raw"], recs):
            raw.update(req_per_s=r["req_per_s"], requests=r["requests"],
                       server_cpu_us_per_req=r["server_cpu_us_per_req"])
    return cell


def add_ratios(cells) -> None:
    """ratio vs B = B's median ns/op / this cell's median ns/op (>1: this is faster)."""
    med = {c["impl"]: c["ns_per_op"]["median"] for c in cells if c["status"] == "ok"}
    for c in cells:
        if c["status"] != "ok":
            continue
        c["ratios"] = {b: med[b] / med[c["impl"]] for b in _common.BASELINES
                       if b in med and b != c["impl"] and med[c["impl"]] > 0}
    # echo/http: throughput ratio (this req/s ÷ baseline req/s) and server-CPU ratio
    # (baseline CPU per request ÷ this one); above 1× this row is better either way.
    rps = {c["impl"]: c["req_per_s"]["median"] for c in cells
           if c["status"] == "ok" and "req_per_s" in c}
    cpu = {c["impl"]: c["server_cpu_us_per_req"]["median"] for c in cells
           if c["status"] == "ok" and "server_cpu_us_per_req" in c}
    for c in cells:
        if c["status"] != "ok" or c["impl"] not in rps:
            continue
        me = c["impl"]
        c["req_ratios"] = {b: rps[me] / rps[b] for b in _common.BASELINES
                           if b in rps and b != me and rps[b] > 0}
        c["cpu_ratios"] = {b: cpu[b] / cpu[me] for b in _common.BASELINES
                           if b in cpu and b != me and cpu[me] > 0}


def na_cells(plan, unavailable, args) -> list[dict]:
    axis = _common.SCALING_AXIS if args.scaling else {}
    cells = [{"workload": w, "n": n, "impl": impl,
              "metric": "cpu" if w in axis else metric_for(w, args.cpu_time),
              "status": "n/a"} for w, n in plan for impl in unavailable]
    for c in cells:
        if c["workload"] in axis:
            c["axis"] = axis[c["workload"]]
    return cells


# ------------------------------------------------------------------------ main


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="vivace benchmark suite (each measurement in a fresh subprocess)")
    p.add_argument("--quick", action="store_true",
                   help="sizes / 10 and 3 runs (scaling: drop the 1,000,000 points)")
    p.add_argument("--runs", type=int, help="runs per cell (default 7, --quick 3)")
    p.add_argument("--workloads", help="comma list: " + ",".join(_common.WORKLOADS))
    p.add_argument("--impls", help="comma list: " + ",".join(_common.IMPLS))
    p.add_argument("--scale", type=float, default=1.0, help="multiply every size by K")
    p.add_argument("--scaling", action="store_true",
                   help="checkpoint/spawn/timers at 1x/10x/100x(/1000x) of 1,000, echo "
                        "at 10/100/1,000 connections; writes scaling.{json,md,png}")
    p.add_argument("--smoke", action="store_true",
                   help="every workload on every importable impl at tiny n, 1 run; "
                        "exit 1 if any fails; writes nothing unless --out")
    p.add_argument("--smoke-n", type=int, default=_common.SMOKE_N, help=argparse.SUPPRESS)
    p.add_argument("--out", help="output directory (default benchmarks/results)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds before one worker is killed (default 600)")
    p.add_argument("--cpu-time", action="store_true",
                   help="report CPU time (process_time) for every workload instead of "
                        "wall time; steadier on a busy machine")
    p.add_argument("--no-gc", action="store_true",
                   help="disable Python's cyclic GC during each timed section (to tell "
                        "engine scaling from GC cost; not the default)")
    p.add_argument("--http-client", choices=_common.HTTP_CLIENTS, default="auto",
                   help="load generator for the http workload: wrk, the stdlib "
                        "http_client.py (python), or auto = wrk if installed (default)")
    p.add_argument("--seed", type=int, help="seed for the per-round shuffles")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    args = p.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        p.error("--runs must be >= 1")
    if args.scale <= 0:
        p.error("--scale must be > 0")
    if args.smoke and args.scaling:
        p.error("--smoke and --scaling are exclusive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    impls = parse_list(args.impls, _common.IMPLS, "implementation(s)",
                       default=_common.DEFAULT_IMPLS)
    workloads = parse_list(args.workloads, _common.WORKLOADS, "workload(s)")
    if args.scaling:
        workloads = [w for w in workloads if w in _common.SCALING_SIZES]
        if not workloads:
            die("--scaling covers only " + ", ".join(_common.SCALING_SIZES))
    runs = 1 if args.smoke else args.runs or (
        _common.QUICK_RUNS if args.quick else _common.DEFAULT_RUNS)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)

    def log(msg):
        print(msg, flush=True)

    started = time.time()
    load_before = _report.loadavg()
    log(f"checking {len(impls)} implementation(s) ({', '.join(impls)}), each imported "
        "in a fresh process …")
    probes = probe(impls, min(args.timeout, 120.0))
    available = [i for i in impls if probes[i]["available"]]
    unavailable = [i for i in impls if not probes[i]["available"]]
    for impl in unavailable:
        log(f"n/a: {impl}: {probes[impl].get('error')}")
    for impl in available:
        if impl == "vivace" and probes[impl].get("engine") == "python":
            log("warning: vivace (VIVACE_REQUIRE_EXTENSIONS=1) loaded no extension module")

    plan = build_plan(args, workloads)
    kind = "smoke" if args.smoke else "scaling" if args.scaling else "suite"
    steps = len(plan) * len(available) * runs
    log(f"{kind}: {len(plan)} cell(s) x {len(available)} impl(s) x {runs} run(s) = "
        f"{steps} worker runs, each a fresh process; python {sys.executable} "
        f"[{_progress.fmt_duration(time.time() - started)}]")
    if "http" in workloads and not args.scaling:
        tool = "wrk" if args.http_client == "auto" and shutil.which("wrk") else (
            "python" if args.http_client == "auto" else args.http_client)
        log(f"http load generator: {tool}"
            + (" (wrk is not installed: apt-get install wrk)" if tool == "python" else ""))
    # The progress clock starts with the probes, so "elapsed" is the whole run's.
    progress = _progress.Progress(steps, clock=lambda: time.time() - started)
    cells = run_cells(plan, available, runs, args.timeout, rng, progress, args) + \
        na_cells(plan, unavailable, args)
    order = {impl: i for i, impl in enumerate(_common.IMPLS)}
    cells.sort(key=lambda c: (_common.WORKLOADS.index(c["workload"]), c["n"],
                              order[c["impl"]]))

    doc = {
        "schema": 1,
        "kind": kind,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "machine": _report.machine_info(probes, load_before, _report.loadavg()),
        "config": {"argv": sys.argv[1:] if argv is None else list(argv), "runs": runs,
                   "quick": args.quick, "scale": args.scale, "seed": seed,
                   "cpu_time": args.cpu_time, "gc": "off" if args.no_gc else "on",
                   "http_client": args.http_client,
                   "impls": impls, "workloads": workloads, "plan": plan,
                   "timer_delay_s": [_common.TIMER_MIN_DELAY, _common.TIMER_MAX_DELAY]},
        "impls": probes,
        "cells": cells,
    }
    failed = [c for c in cells if c["status"] == "error"]

    if args.smoke and not args.out:
        log(_report.smoke_summary(cells))
    else:
        out = Path(args.out) if args.out else HERE / "results"
        out.mkdir(parents=True, exist_ok=True)
        stem = "scaling" if args.scaling else "smoke" if args.smoke else "latest"
        (out / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n")
        md = _report.scaling_markdown(doc) if args.scaling else _report.markdown(doc)
        (out / f"{stem}.md").write_text(md)
        written = [out / f"{stem}.json", out / f"{stem}.md"]
        if not args.no_chart and not args.smoke:
            png = out / f"{stem}.png"
            draw = _chart.scaling_chart if args.scaling else _chart.chart
            note = draw(doc, png)
            if note:
                log(note)
            else:
                written.append(png)
        log("")
        # The terminal gets the compact table; the full detail is in the files.
        log(_report.smoke_summary(cells) if args.smoke else _report.summary_table(doc))
        log("full results: " + ", ".join(str(p) for p in written))

    log(f"done in {time.time() - started:.0f}s")
    if failed:
        log(f"FAILED: {len(failed)} cell(s): " + ", ".join(
            f"{c['impl']}/{c['workload']}({_common.size_label(c['workload'], c['n'], c.get('axis'))})"
            for c in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
