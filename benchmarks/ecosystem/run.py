#!/usr/bin/env python3
"""Ecosystem benchmarks (issue 10): httpx and hypercorn on vivace vs trio vs asyncio vs uvloop.

    python benchmarks/ecosystem/run.py                 # 5 interleaved runs per cell
    python benchmarks/ecosystem/run.py --runs 7
    python benchmarks/ecosystem/run.py --quick         # small sizes, 3 runs
    python benchmarks/ecosystem/run.py --workloads httpx --concurrency 10,100
    python benchmarks/ecosystem/run.py --smoke         # tiny, 1 run, checks only

Two workloads, each cell measured in fresh processes (``eco_worker.py``), every
implementation once per round in a freshly shuffled order:

- ``httpx``: the CLIENT is under test. n GETs through one ``httpx.AsyncClient`` with
  CONCURRENCY requests in flight over a keep-alive pool, against ``fixed_server.py``, a
  neutral uvloop ``asyncio.Protocol`` server in a separate process (the same for every
  client). Reports req/s and client CPU per request.
- ``hypercorn``: the SERVER is under test. hypercorn 0.18's trio worker (vivace,
  vivace-ref, trio) or asyncio worker (asyncio, uvloop) serving a hello-world ASGI app,
  loaded by wrk (``hypercorn_load.py`` = ``benchmarks/http_client.py``). Reports req/s
  and server CPU per request.

Writes ``ecosystem.json`` and ``ecosystem.md`` to --out (default benchmarks/results/);
--smoke writes nothing unless --out is given. Exit status: 0 when every importable
implementation passed every cell, 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eco_common  # noqa: E402

eco_common.add_paths()
import _report  # noqa: E402
import eco_report  # noqa: E402
import run as bench_run  # noqa: E402  (benchmarks/run.py: it is first on sys.path)

# benchmarks/run.py's call_worker() and probe() start the module-level WORKER with
# the runner's clean environment (no slow-mode variables, no engine switch: the worker
# sets that per implementation); pointing WORKER at our worker reuses them as they are.
bench_run.WORKER = eco_common.ECO / "eco_worker.py"


def build_plan(args) -> list[dict]:
    plan = []
    for w in args.workloads:
        if w == "httpx":
            for conc in args.concurrency:
                n = args.requests or (eco_common.HTTPX_SMOKE_REQUESTS if args.smoke else
                                      eco_common.HTTPX_QUICK_REQUESTS if args.quick else
                                      eco_common.HTTPX_REQUESTS)
                conc = eco_common.HTTPX_SMOKE_CONCURRENCY if args.smoke else conc
                plan.append({"key": f"httpx-{n}x{conc}", "workload": w, "n": n,
                             "concurrency": conc})
                if args.smoke:
                    break
        else:
            secs = args.seconds or (eco_common.HYPERCORN_QUICK_SECONDS if args.quick
                                    else eco_common.HYPERCORN_SECONDS)
            tool = eco_common.SMOKE_TOOL if args.smoke else args.tool
            if tool == "auto":
                tool = "wrk" if shutil.which("wrk") else "python"
            key = "hypercorn-probe" if tool == "probe" else f"hypercorn-{tool}-{secs}s"
            plan.append({"key": key, "workload": w, "n": secs,
                         "tool": tool, "connections": args.connections})
    return plan


def worker_args(item: dict) -> list[str]:
    out = ["--workload", item["workload"], "--n", str(item["n"])]
    if item["workload"] == "httpx":
        out += ["--concurrency", str(item["concurrency"])]
    else:
        out += ["--tool", item["tool"], "--connections", str(item["connections"])]
    return out


def summarize(item: dict, impl: str, recs: list[dict], error: dict | None) -> dict:
    cell = {"key": item["key"], "workload": item["workload"], "n": item["n"], "impl": impl}
    if error is not None:
        cell.update(status="error", error=error.get("error"),
                    traceback=error.get("traceback") or error.get("stderr"),
                    runs_ok=len(recs))
        return cell
    spread = bench_run.spread
    cell.update(
        status="ok", runs=len(recs),
        req_per_s=spread([r["req_per_s"] for r in recs]),
        client_cpu_share=statistics.median(r["client_cpu_share"] for r in recs),
        server_cpu_share=statistics.median(r["server_cpu_share"] for r in recs),
        server_cpu_us_per_req=spread([r["server_cpu_us_per_req"] for r in recs]),
        raw=[{k: r.get(k) for k in ("req_per_s", "client_cpu_us_per_req",
                                    "server_cpu_us_per_req", "elapsed_s", "requests",
                                    "client_cpu_share", "server_cpu_share")}
             for r in recs],
    )
    # What really ran (the worker checked it; kept so the smoke test can too).
    cell["ran_on"] = {k: recs[0].get(k) for k in ("trio_module", "backend", "loop_module",
                                                   "engine") if recs[0].get(k)}
    if item["workload"] == "httpx":
        cell.update(client_cpu_us_per_req=spread([r["client_cpu_us_per_req"] for r in recs]),
                    client_user_us_per_req=spread([r["client_user_us_per_req"] for r in recs]),
                    client_sys_us_per_req=spread([r["client_sys_us_per_req"] for r in recs]),
                    connections=statistics.median(r["server_connections"] for r in recs),
                    concurrency=item["concurrency"], server_loop=recs[0]["server_loop"])
    else:
        cell.update(server_user_us_per_req=spread([r["server_user_us_per_req"] for r in recs]),
                    server_sys_us_per_req=spread([r["server_sys_us_per_req"] for r in recs]),
                    requests=spread([r["requests"] for r in recs]), load=recs[0]["load"])
    return cell


def add_ratios(cells: list[dict]) -> None:
    """req/s ratio = mine ÷ baseline's; CPU ratio = baseline's ÷ mine (>1: mine better)."""
    ok = [c for c in cells if c["status"] == "ok"]
    if not ok:
        return
    key = "client_cpu_us_per_req" if ok[0]["workload"] == "httpx" else "server_cpu_us_per_req"
    rps = {c["impl"]: c["req_per_s"]["median"] for c in ok}
    cpu = {c["impl"]: c[key]["median"] for c in ok}
    for c in ok:
        me = c["impl"]
        c["req_ratios"] = {b: rps[me] / rps[b] for b in eco_common.BASELINES
                           if b in rps and b != me and rps[b] > 0}
        c["cpu_ratios"] = {b: cpu[b] / cpu[me] for b in eco_common.BASELINES
                           if b in cpu and b != me and cpu[me] > 0}


def run_cells(plan, available, runs, timeout, rng, log) -> list[dict]:
    cells = []
    for item in plan:
        records: dict[str, list] = {impl: [] for impl in available}
        errors: dict[str, dict] = {}
        for _ in range(runs):
            order = list(available)
            rng.shuffle(order)
            for impl in order:
                if impl in errors:  # a broken cell stays broken; don't pay for it again
                    continue
                rec = bench_run.call_worker(["--impl", impl, *worker_args(item)], timeout)
                if rec.get("ok"):
                    records[impl].append(rec)
                    continue
                errors[impl] = rec
                log(f"  ! {impl} {eco_report.cell_label(item)}: {rec.get('error')}")
                detail = rec.get("traceback") or rec.get("stderr")
                if detail:
                    log("    " + "\n    ".join(detail.strip().splitlines()[-6:]))
        mine = [summarize(item, impl, records[impl], errors.get(impl)) for impl in available]
        add_ratios(mine)
        cells += mine
        log(eco_report.progress_line(item, mine))
    return cells


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, help="runs per cell (default 5, --quick 3)")
    p.add_argument("--quick", action="store_true",
                   help=f"httpx {eco_common.HTTPX_QUICK_REQUESTS} requests, hypercorn "
                        f"{eco_common.HYPERCORN_QUICK_SECONDS} s, 3 runs")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes (hypercorn: the checked probe only, no wrk), 1 run; "
                        "exit 1 if any cell fails; writes nothing unless --out")
    p.add_argument("--workloads", help="comma list: " + ",".join(eco_common.WORKLOADS))
    p.add_argument("--impls", help="comma list: " + ",".join(eco_common.IMPLS))
    p.add_argument("--requests", type=int, help="httpx: measured requests per run")
    cells = ",".join(map(str, eco_common.HTTPX_CONCURRENCY_CELLS))
    p.add_argument("--concurrency", default=cells,
                   help="httpx: requests in flight (= pool size); a comma list makes one "
                        f"cell each (default {cells})")
    p.add_argument("--seconds", type=int, help="hypercorn: seconds of load per run")
    p.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto",
                   help="hypercorn load generator (auto: wrk if installed)")
    p.add_argument("--connections", type=int, default=eco_common.HYPERCORN_CONNECTIONS,
                   help="hypercorn: load connections")
    p.add_argument("--out", help="output directory (default benchmarks/results)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds before one worker is killed (default 600)")
    p.add_argument("--seed", type=int, help="seed for the per-round shuffles")
    args = p.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        p.error("--runs must be >= 1")
    try:
        args.concurrency = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        p.error("--concurrency takes a comma list of integers")
    if not args.concurrency or min(args.concurrency) < 1:
        p.error("--concurrency must be >= 1")
    args.impls = bench_run.parse_list(args.impls, eco_common.IMPLS, "implementation(s)")
    args.workloads = bench_run.parse_list(args.workloads, eco_common.WORKLOADS, "workload(s)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    runs = 1 if args.smoke else args.runs or (
        eco_common.QUICK_RUNS if args.quick else eco_common.DEFAULT_RUNS)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)

    def log(msg):
        print(msg, flush=True)

    started = time.time()
    load_before = _report.loadavg()
    probes = bench_run.probe(args.impls, min(args.timeout, 120.0))
    available = [i for i in args.impls if probes[i]["available"]]
    for impl in args.impls:
        if impl not in available:
            log(f"n/a: {impl}: {probes[impl].get('error')}")
    if "vivace" in available and probes["vivace"].get("engine") != "compiled":
        log("warning: vivace (VIVACE_REQUIRE_EXTENSIONS=1) loaded no extension module")
    plan = build_plan(args)
    kind = "smoke" if args.smoke else "ecosystem"
    log(f"{kind}: {len(plan)} cell(s) x {len(available)} impl(s) x {runs} run(s); "
        f"python {sys.executable}")
    cells = run_cells(plan, available, runs, args.timeout, rng, log)
    cells += [{"key": p["key"], "workload": p["workload"], "n": p["n"], "impl": impl,
               "status": "n/a"} for p in plan for impl in args.impls if impl not in available]
    order = {impl: i for i, impl in enumerate(eco_common.IMPLS)}
    keys = [p["key"] for p in plan]
    cells.sort(key=lambda c: (keys.index(c["key"]), order[c["impl"]]))

    machine = _report.machine_info(probes, load_before, _report.loadavg())
    first = next((p for p in probes.values() if p.get("packages")), {})
    machine["ecosystem_packages"] = first.get("packages", {})
    doc = {
        "schema": 1, "kind": kind,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "machine": machine,
        "config": {"argv": sys.argv[1:] if argv is None else list(argv), "runs": runs,
                   "quick": args.quick, "scale": 1, "seed": seed, "impls": args.impls,
                   "workloads": args.workloads, "plan": plan},
        "impls": probes,
        "cells": cells,
    }
    failed = [c for c in cells if c["status"] == "error"]
    if args.smoke and not args.out:
        log(eco_report.smoke_summary(cells))
    else:
        out = Path(args.out) if args.out else eco_common.BENCH / "results"
        out.mkdir(parents=True, exist_ok=True)
        stem = "ecosystem-smoke" if args.smoke else "ecosystem"
        md = eco_report.markdown(doc)
        (out / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n")
        (out / f"{stem}.md").write_text(md)
        log("\n" + md)
        log(f"wrote {out / (stem + '.json')}, {out / (stem + '.md')}")
    log(f"done in {time.time() - started:.0f}s")
    if failed:
        log(f"FAILED: {len(failed)} cell(s): " + ", ".join(
            f"{c['impl']}/{c['key']}" for c in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
