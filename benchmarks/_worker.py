"""Run ONE measurement in this (fresh) process and print one JSON line on stdout.

    python benchmarks/_worker.py --impl trio --workload checkpoint --n 200000
    python benchmarks/_worker.py --impl vivace --probe

Design notes: the timed section is exactly the ``run`` call (``trio.run(...)`` or
``asyncio.Runner(...).run(...)``, so event-loop set-up and teardown are inside it for
every implementation); interpreter start-up, imports, building the workload's input and
one small warm-up run are outside it. The result count is checked and the ``verify_*``
function is run only after the clock has stopped. The vivace engine switch is an
environment variable read at import time, so it is set here before anything imports
vivace. Exit codes: 0 ok, 1 measurement or verification failed, 2 implementation not
importable (the runner shows "n/a").
"""

from __future__ import annotations

import argparse
import gc
import importlib.machinery
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _common  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_UNAVAILABLE = 0, 1, 2


def emit(record: dict, code: int) -> int:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return code


def maxrss_kib() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # macOS reports bytes


def _configure_engine(impl: str) -> None:
    if impl in ("vivace", "vivace-poll"):
        os.environ.pop("VIVACE_NO_EXTENSIONS", None)
        os.environ["VIVACE_REQUIRE_EXTENSIONS"] = "1"
    backend = _common.IO_BACKEND.get(impl)
    if backend is not None:
        os.environ["VIVACE_IO_BACKEND"] = backend
    elif impl == "vivace-ref":
        os.environ.pop("VIVACE_REQUIRE_EXTENSIONS", None)
        os.environ["VIVACE_NO_EXTENSIONS"] = "1"


def _import_vivace():
    try:
        import vivace
    except ModuleNotFoundError as exc:
        # Not installed: fall back to the source tree (works once extensions are built
        # in place). Only when it is vivace itself that is missing.
        if exc.name != "vivace" or not (REPO / "src" / "vivace").is_dir():
            raise
        sys.path.insert(0, str(REPO / "src"))
        import vivace
    return vivace


def _extension_modules(prefix: str) -> list[str]:
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for name, module in list(sys.modules.items()):
        if name == prefix or name.startswith(prefix + "."):
            path = getattr(module, "__file__", None) or ""
            if path.endswith(suffixes):
                found.append(name)
    return sorted(found)


def _version(dist: str, module) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return getattr(module, "__version__", None)


async def _io_backend_in_use(mod) -> str:
    return mod.lowlevel.current_statistics().io_statistics.backend


def load_impl(impl: str):
    """Import an implementation; return (run, workloads module, info dict).

    ``run(fn, *args)`` runs a workload/verify coroutine function to completion.
    """
    _configure_engine(impl)
    info: dict = {"impl": impl}
    if impl in _common.TRIO_API_IMPLS:
        if impl == "trio":
            import trio as mod
        else:
            mod = _import_vivace()
            if getattr(mod, "__file__", None) is None or not hasattr(mod, "run"):
                raise ImportError(f"vivace at {list(mod.__path__)} has no run() yet")
            info["path"] = str(Path(mod.__file__).parent)
            exts = _extension_modules("vivace")
            info["extension_modules"] = exts
            info["engine"] = "compiled" if exts else "python"
            # Read back, not assumed: a record names the backend its run really used.
            info["io_backend"] = mod.run(_io_backend_in_use, mod)
            wanted = _common.IO_BACKEND.get(impl)
            if wanted is not None and info["io_backend"] != wanted:
                raise ImportError(f"{impl} asked for the {wanted} I/O backend but ran on "
                                  f"{info['io_backend']}")
        info["version"] = _version(impl.split("-")[0], mod)
        import workloads_trio as wl

        def run(fn, *args):
            return mod.run(fn, mod, *args)

        return run, wl, info

    import asyncio

    missing = [a for a in ("TaskGroup", "timeout", "Runner") if not hasattr(asyncio, a)]
    if missing:
        raise ImportError(f"asyncio lacks {', '.join(missing)} (needs Python >= 3.11)")
    if impl == "asyncio":
        loop_factory = None
        info["version"] = sys.version.split()[0]
    elif impl == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
        info["version"] = _version("uvloop", uvloop)
    else:
        raise ValueError(f"unknown implementation {impl!r}")
    import workloads_asyncio as wl

    def run(fn, *args):
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(fn(*args))

    return run, wl, info


def run_overhead(run, wl, repeat: int = 5) -> float:
    """Fastest of a few runs of an empty workload: the fixed cost of one run()."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(wl.empty, 1, None)
        best = min(best, time.perf_counter() - t0)
    return best


ECHO_CLIENT = HERE / "echo_client.py"
HTTP_CLIENT = HERE / "http_client.py"


def serve_for_client(run, fn, n: int, cfg: dict, client_cmd: list, gc_off: bool):
    """Run server workload *fn* in this process while *client_cmd* drives it.

    The client is started first and waits for the port on its stdin; the server's
    ``run(...)`` announces it once listening (``cfg["announce"]``) and returns when the
    client is done. Returns (the server's return value, the client's JSON result,
    extra record fields). Raises if the client failed.
    """
    _common.raise_nofile_limit(cfg["connections"] + 64)
    client = subprocess.Popen(client_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=str(HERE))

    def announce(port: int) -> None:
        client.stdin.write(f"{port}\n")
        client.stdin.close()
        client.stdin = None  # so that communicate() does not flush it

    data = dict(cfg, announce=announce)
    gc.collect()
    rss_before = maxrss_kib()
    try:
        if gc_off:
            gc.disable()
        c0 = time.process_time()
        served = run(fn, n, data)
        c1 = time.process_time()
        gc.enable()
    finally:
        if client.stdin is not None:  # the server failed before listening
            client.stdin.close()
            client.stdin = None
        try:
            out, err = client.communicate(timeout=cfg["max_seconds"] + 30)
        except subprocess.TimeoutExpired:
            client.kill()
            out, err = client.communicate()
    rss_peak = maxrss_kib()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{Path(client_cmd[1]).name} exited {client.returncode} "
                           f"without a result: {err.strip()[-300:]}")
    res = json.loads(lines[-1])
    if not res.get("ok"):
        raise RuntimeError(res.get("error") or "the client failed")
    extra = {"server_cpu_whole_run_s": c1 - c0, "rss_before_kib": rss_before,
             "peak_rss_kib": rss_peak, "rss_delta_kib": rss_peak - rss_before}
    return served, res, extra


def server_record(workload: str, requests: int, res: dict, load: dict) -> dict:
    """The fields every client-driven workload reports, from the client's window."""
    window, server_cpu = res["window_s"], res["server_cpu_s"]
    metric = _common.metric_of(workload)
    wall_ns, cpu_ns = window * 1e9 / requests, server_cpu * 1e9 / requests
    return {
        "workload": workload,
        "metric": metric,
        "requests": requests,
        "elapsed_s": window,
        "cpu_s": server_cpu,
        "ns_per_op": cpu_ns if metric == "cpu" else wall_ns,
        "wall_ns_per_op": wall_ns,
        "cpu_ns_per_op": cpu_ns,
        "req_per_s": requests / window,
        "server_cpu_us_per_req": server_cpu * 1e6 / requests,
        # user space (the event loop, the framework, Python) vs kernel (the TCP stack)
        "server_user_us_per_req": res["server_user_s"] * 1e6 / requests,
        "server_sys_us_per_req": res["server_sys_s"] * 1e6 / requests,
        "server_cpu_share": server_cpu / window,
        "client_cpu_s": res["client_cpu_s"],
        "client_cpu_share": res["client_cpu_s"] / window,
        "clk_tck": res["clk_tck"],
        "load": load,
    }


def measure_echo(run, wl, n: int, gc_off: bool = False, connections=None) -> dict:
    """``echo``: this process is the server; ``echo_client.py`` (a separate, stdlib-only
    process, the same for every implementation) drives it and times the window.

    Throughput and the server's CPU time (read by the client from /proc/<this
    pid>/stat at the window's edges) come from the client's measured window only:
    start-up, connecting and the warm-up round trips are outside it.
    """
    cfg = _common.echo_config(n, connections)
    cmd = [sys.executable, str(ECHO_CLIENT), "--server-pid", str(os.getpid()),
           "--requests", str(n), "--warmup", str(cfg["warmup"]),
           "--connections", str(cfg["connections"]), "--size", str(cfg["size"]),
           "--max-seconds", str(cfg["max_seconds"])]
    (echoed, served), res, extra = serve_for_client(run, wl.echo, n, cfg, cmd, gc_off)
    # Not timed: the server really echoed what the client counted, on every connection.
    if served != cfg["connections"] or res["connections"] != cfg["connections"]:
        raise AssertionError(f"echo: server saw {served} connections closed, expected "
                             f"{cfg['connections']}")
    if echoed != res["round_trips_total"] * cfg["size"]:
        raise AssertionError(f"echo: server echoed {echoed} bytes, client completed "
                             f"{res['round_trips_total']} x {cfg['size']} B")
    overhead = run_overhead(run, wl)
    load = {k: cfg[k] for k in ("connections", "size", "warmup")}
    load["tool"] = "echo_client.py"
    return {"n": n, **server_record("echo", n, res, load), **extra,
            "run_overhead_s": overhead, "gc": "off" if gc_off else "on", "verified": True}


def http_tool(choice: str) -> str:
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("--http-client wrk: wrk is not installed (apt-get install wrk)")
    return choice


def measure_http(run, wl, seconds: int, gc_off: bool = False, connections=None,
                 client: str = "auto") -> dict:
    """``http``: this process is an h11 HTTP/1.1 server; ``http_client.py`` (a separate
    process: wrk, or a stdlib client) checks it, loads it for *seconds* and stops it."""
    try:
        import h11
    except ImportError as exc:
        raise RuntimeError("the http workload needs h11 (pip install -e '.[bench]')") from exc
    tool = http_tool(client)
    cfg = dict(_common.http_config(seconds, connections), h11=h11)
    cmd = [sys.executable, str(HTTP_CLIENT), "--server-pid", str(os.getpid()),
           "--tool", tool, "--duration", str(seconds),
           "--connections", str(cfg["connections"])]
    (answered, accepted, errors), res, extra = serve_for_client(
        run, wl.http, seconds, cfg, cmd, gc_off)
    # Not timed: the server answered what the load generator counted, without errors.
    if errors:
        raise AssertionError(f"http: {len(errors)} protocol error(s), first: {errors[0]}")
    expected = res["requests"] + res["probe_requests"]
    if tool == "python":
        expected += res["in_flight_at_end"]
        ok = answered == expected
    else:  # wrk does not count responses in flight when its time is up
        ok = expected <= answered <= expected + cfg["connections"]
    if not ok:
        raise AssertionError(f"http: the server answered {answered} requests, the client "
                             f"completed {res['requests']} (+{res['probe_requests']} probes)")
    if accepted < cfg["connections"] + 1:
        raise AssertionError(f"http: the server accepted {accepted} connections")
    overhead = run_overhead(run, wl)
    load = {"connections": cfg["connections"], "duration_s": seconds, "tool": tool,
            "probe_requests": res["probe_requests"]}
    for key in ("latency_p50_us", "latency_p99_us", "in_flight_at_end"):
        if res.get(key) is not None:
            load[key] = res[key]
    return {"n": seconds, **server_record("http", res["requests"], res, load), **extra,
            "run_overhead_s": overhead, "gc": "off" if gc_off else "on", "verified": True}


def measure(run, wl, workload: str, n: int, warmup: int, gc_off: bool = False,
            connections=None, http_client: str = "auto") -> dict:
    if workload == "echo":
        return measure_echo(run, wl, n, gc_off, connections)
    if workload == "http":
        return measure_http(run, wl, n, gc_off, connections, http_client)
    fn = getattr(wl, workload)
    if warmup > 0:
        run(fn, warmup, _common.prepare(workload, warmup))
    data = _common.prepare(workload, n)
    gc.collect()
    rss_before = maxrss_kib()

    if gc_off:
        gc.disable()
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = run(fn, n, data)
    t1 = time.perf_counter()
    c1 = time.process_time()
    gc.enable()

    rss_peak = maxrss_kib()
    elapsed, cpu = t1 - t0, c1 - c0
    if result != n:
        raise AssertionError(f"{workload}: completed {result!r} operations, expected {n}")
    if workload == "timers" and elapsed < max(data) - 0.002:
        raise AssertionError(
            f"timers: run took {elapsed:.4f}s but the longest sleep was {max(data):.4f}s"
        )
    # Not timed: prove the operation really does what it claims.
    run(getattr(wl, "verify_" + workload))
    overhead = run_overhead(run, wl)

    metric = _common.metric_of(workload)
    wall_ns, cpu_ns = elapsed * 1e9 / n, cpu * 1e9 / n
    return {
        "workload": workload,
        "n": n,
        "metric": metric,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "ns_per_op": cpu_ns if metric == "cpu" else wall_ns,
        "wall_ns_per_op": wall_ns,
        "cpu_ns_per_op": cpu_ns,
        "rss_before_kib": rss_before,
        "peak_rss_kib": rss_peak,
        "rss_delta_kib": rss_peak - rss_before,
        "run_overhead_s": overhead,
        "gc": "off" if gc_off else "on",
        "verified": True,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", required=True, choices=_common.IMPLS)
    p.add_argument("--workload", choices=_common.WORKLOADS)
    p.add_argument("--n", type=int)
    p.add_argument("--warmup", type=int, default=None,
                   help="size of the untimed warm-up run (default min(n, 1000); 0: none)")
    p.add_argument("--no-gc", action="store_true",
                   help="disable the cyclic GC during the timed section")
    p.add_argument("--connections", type=int,
                   help="echo/http: concurrent client connections (default: _common's)")
    p.add_argument("--http-client", choices=_common.HTTP_CLIENTS, default="auto",
                   help="http: load generator (auto: wrk if installed, else python)")
    p.add_argument("--probe", action="store_true",
                   help="only import the implementation and report its version/engine")
    args = p.parse_args(argv)

    try:
        run, wl, info = load_impl(args.impl)
    except BaseException as exc:  # anything at import time means "not importable"
        return emit({"ok": False, "unavailable": True, "impl": args.impl,
                     "error": f"{type(exc).__name__}: {exc}"}, EXIT_UNAVAILABLE)
    if args.probe:
        return emit({"ok": True, **info}, EXIT_OK)
    if args.workload is None or args.n is None or args.n < 1:
        p.error("--workload and --n >= 1 are required unless --probe")

    warmup = min(args.n, 1000) if args.warmup is None else args.warmup
    try:
        record = measure(run, wl, args.workload, args.n, warmup, args.no_gc,
                         args.connections, args.http_client)
    except BaseException as exc:
        return emit({"ok": False, "impl": args.impl, "workload": args.workload,
                     "n": args.n, "error": f"{type(exc).__name__}: {exc}"[:400],
                     "traceback": traceback.format_exc(limit=20)}, EXIT_FAILED)
    return emit({"ok": True, **info, **record}, EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
