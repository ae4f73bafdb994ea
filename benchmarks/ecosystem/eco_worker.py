#!/usr/bin/env python3
"""Run ONE ecosystem measurement in this (fresh) process; print one JSON line on stdout.

    python benchmarks/ecosystem/eco_worker.py --impl vivace --workload httpx --n 2000
    python benchmarks/ecosystem/eco_worker.py --impl trio --workload hypercorn --n 5 --tool wrk
    python benchmarks/ecosystem/eco_worker.py --impl vivace --probe
    python benchmarks/ecosystem/eco_worker.py ... --profile out.prof   # cProfile the window

``--n`` is the number of measured requests for ``httpx`` and the seconds of load for
``hypercorn``. vivace and vivace-ref run third-party code unchanged through
``vivace.install()`` (called here before anything imports trio, anyio, httpx or
hypercorn); the engine is chosen by environment as in ``benchmarks/_worker.py``.

Design notes: the same split as ``benchmarks/_worker.py``, whose helpers this reuses:
the process under test is this one (the httpx client, or the hypercorn server), the
other side of the connection is a separate process that is identical for every
implementation (``fixed_server.py``; wrk via ``hypercorn_load.py``). Every run is
checked after its window: the response counts on both sides agree, the server saw
no malformed request, the client kept its connections alive, and the trio API that
ran was the implementation claimed (vivace's own run loop once installed, the real
trio otherwise). Exit codes as in ``_worker.py``: 0 ok, 1 failed, 2 not importable.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import subprocess
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eco_common  # noqa: E402

eco_common.add_paths()
import _common  # noqa: E402
import _worker  # noqa: E402
from _worker import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, emit  # noqa: E402
from echo_client import server_cpu_times  # noqa: E402

FIXED_SERVER = eco_common.ECO / "fixed_server.py"
HYPERCORN_LOAD = eco_common.ECO / "hypercorn_load.py"


def _dist_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def load_impl(impl: str) -> dict:
    """Make the implementation importable as it will be used; return its description.

    Must run before anything imports trio, anyio, httpx or hypercorn.
    """
    _worker._configure_engine(impl)
    info: dict = {"impl": impl}
    if impl in eco_common.VIVACE_IMPLS:
        vivace = _worker._import_vivace()
        install = getattr(vivace, "install", None)
        if install is None:
            raise ImportError("vivace.install() is not available in this vivace")
        install()
        import trio

        if trio.run is not vivace.run:
            raise ImportError(f"after vivace.install(), import trio gave {trio!r}")
        exts = _worker._extension_modules("vivace")
        info.update(path=str(Path(vivace.__file__).parent), extension_modules=exts,
                    engine="compiled" if exts else "python",
                    version=_worker._version("vivace", vivace),
                    trio_metadata_version=_dist_version("trio"))
    elif impl == "trio":
        import trio

        if "vivace" in (trio.__file__ or ""):
            raise ImportError(f"import trio gave vivace ({trio.__file__})")
        info.update(version=trio.__version__, path=str(Path(trio.__file__).parent))
    elif impl == "uvloop":
        import uvloop

        info["version"] = uvloop.__version__
    elif impl == "asyncio":
        info["version"] = sys.version.split()[0]
    else:
        raise ValueError(f"unknown implementation {impl!r}")
    info["packages"] = {d: _dist_version(d) for d in
                        ("anyio", "httpx", "httpcore", "h11", "hypercorn", "sniffio")}
    return info


def running_trio_module() -> str:
    """Which trio API is in charge of the current run (checked after the window)."""
    trio = sys.modules["trio"]
    return f"{trio.__name__} from {Path(trio.__file__).parent}"


# ------------------------------------------------------------------------ httpx


def start_fixed_server() -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen([sys.executable, str(FIXED_SERVER)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if not line.strip():
        server.kill()
        _, err = server.communicate()
        raise RuntimeError(f"fixed_server.py did not start: {err.strip()[-300:]}")
    return server, int(line)


def stop_fixed_server(server: subprocess.Popen) -> dict:
    import json

    try:
        out, err = server.communicate(input="", timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        out, err = server.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"fixed_server.py exited {server.returncode} without a result: "
                           f"{err.strip()[-300:]}")
    return json.loads(lines[-1])


def measure_httpx(impl: str, n: int, concurrency: int, profiler) -> dict:
    import anyio
    import httpx_load

    server, port = start_fixed_server()
    warmup = eco_common.httpx_warmup(n, concurrency)
    cfg = {"url": f"http://127.0.0.1:{port}/", "body": eco_common.BODY,
           "concurrency": concurrency, "requests": n, "warmup": warmup,
           "request_timeout": eco_common.HTTPX_REQUEST_TIMEOUT, "profiler": profiler,
           "max_seconds": eco_common.HTTPX_MAX_SECONDS,
           "server_cpu": lambda: server_cpu_times(server.pid)}
    if impl in eco_common.TRIO_FAMILY:
        backend, options = "trio", {}
    else:
        backend, options = "asyncio", {"use_uvloop": impl == "uvloop"}
    try:
        res = anyio.run(httpx_load.client_run, cfg, backend=backend,
                        backend_options=options)
    finally:
        served = stop_fixed_server(server)
    # Not timed: both sides agree, nothing malformed, the pool was kept alive.
    if res["requests_ok"] != n or res["warmup_ok"] != warmup:
        raise AssertionError(f"httpx: {res['requests_ok']} + {res['warmup_ok']} responses "
                             f"ok, expected {n} + {warmup}")
    if served["errors"]:
        raise AssertionError(f"httpx: the server saw malformed requests: {served['errors']}")
    if served["requests"] != n + warmup:
        raise AssertionError(f"httpx: the server answered {served['requests']} requests, "
                             f"the client made {n + warmup}")
    # httpcore's pool may close an idle connection to open another (so a few more than
    # the pool size can appear), but a client that reconnected per request would not
    # reach two requests per connection.
    if not 1 <= 2 * served["connections"] <= n + warmup:
        raise AssertionError(f"httpx: {served['connections']} connections for "
                             f"{n + warmup} requests: keep-alive was not used")
    expected_lib = "trio" if impl in eco_common.TRIO_FAMILY else "asyncio"
    if res["sniffio"] != expected_lib:
        raise AssertionError(f"httpx: sniffio said {res['sniffio']!r} inside the run, "
                             f"expected {expected_lib!r}")
    window, client_cpu = res["window_s"], res["client_cpu_s"]
    server_cpu = res["server_user_s"] + res["server_sys_s"]
    return {
        "workload": "httpx", "n": n, "requests": n, "concurrency": concurrency,
        "warmup": warmup, "elapsed_s": window, "cpu_s": client_cpu,
        "req_per_s": n / window,
        "wall_us_per_req": window * 1e6 / n,
        "client_cpu_us_per_req": client_cpu * 1e6 / n,
        "client_user_us_per_req": res["client_user_s"] * 1e6 / n,
        "client_sys_us_per_req": res["client_sys_s"] * 1e6 / n,
        "client_cpu_share": client_cpu / window,
        "server_cpu_us_per_req": server_cpu * 1e6 / n,
        "server_cpu_share": server_cpu / window,
        "server_connections": served["connections"], "server_loop": served["loop"],
        "backend": backend if not options.get("use_uvloop") else "asyncio+uvloop",
        "trio_module": running_trio_module() if backend == "trio" else None,
        "peak_rss_kib": _worker.maxrss_kib(), "verified": True,
    }


# ------------------------------------------------------------------------ hypercorn


def measure_hypercorn(impl: str, seconds: int, tool: str, connections: int,
                      profiler) -> dict:
    import hypercorn_app

    if tool != "probe":
        tool = _worker.http_tool(tool)
    if impl in eco_common.TRIO_FAMILY:
        import trio

        def run(fn, *args):
            return trio.run(fn, *args)

        fn = hypercorn_app.serve_trio
    else:
        import asyncio

        factory = None
        if impl == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop

        def run(fn, *args):
            with asyncio.Runner(loop_factory=factory) as runner:
                return runner.run(fn(*args))

        fn = hypercorn_app.serve_asyncio
    if profiler is not None:
        inner = run

        def run(fn, *args):  # noqa: F811  (the profiled variant)
            profiler.enable()
            try:
                return inner(fn, *args)
            finally:
                profiler.disable()

    grace = _common.HTTP_EXTRA_SECONDS + _common.HTTP_GRACE_SECONDS
    cfg = {"connections": connections, "backlog": _common.LISTEN_BACKLOG,
           "max_seconds": seconds + grace}
    cmd = [sys.executable, str(HYPERCORN_LOAD), "--server-pid", str(os.getpid()),
           "--tool", tool, "--duration", str(seconds), "--connections", str(connections)]
    (state, loop_module), res, extra = _worker.serve_for_client(
        run, fn, seconds, cfg, cmd, False)
    # Not timed: the server answered what the load generator counted, without errors.
    if state.timed_out or state.shutdowns != 1:
        raise AssertionError(f"hypercorn: shutdown request seen {state.shutdowns} time(s), "
                             f"safety deadline hit: {state.timed_out}")
    if state.unexpected:
        raise AssertionError(f"hypercorn: unexpected requests {state.unexpected[:5]}")
    answered = state.requests
    expected = res["requests"] + res["probe_requests"]
    if tool == "wrk":  # wrk does not count responses in flight when its time is up
        ok = expected <= answered <= expected + connections
    else:
        expected += res.get("in_flight_at_end") or 0
        ok = answered == expected
    # Client addresses, not accepts: the load's connections are open at the same time,
    # so distinct; the probe's and the shutdown's may reuse a closed one's port.
    least_clients = 1 if tool == "probe" else connections
    if not ok:
        raise AssertionError(f"hypercorn: the app answered {answered} requests, the load "
                             f"generator completed {res['requests']} "
                             f"(+{res['probe_requests']} probes)")
    if len(state.clients) < least_clients or None in state.clients:
        raise AssertionError(f"hypercorn: the app saw {len(state.clients)} client "
                             f"address(es), expected at least {least_clients}")
    counted = res["requests"] or res["probe_window_requests"]
    load = {"tool": tool, "connections": connections if tool != "probe" else 1,
            "duration_s": seconds if tool != "probe" else None,
            "probe_requests": res["probe_requests"]}
    for key in ("latency_p50_us", "latency_p99_us", "in_flight_at_end"):
        if res.get(key) is not None:
            load[key] = res[key]
    record = _worker.server_record("http", counted, dict(res), load)
    record.update(extra, workload="hypercorn", n=seconds, answered=answered,
                  connections_seen=len(state.clients), loop_module=loop_module,
                  trio_module=running_trio_module() if impl in eco_common.TRIO_FAMILY
                  else None, verified=True)
    return record


# ------------------------------------------------------------------------ main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", required=True, choices=eco_common.IMPLS)
    p.add_argument("--workload", choices=eco_common.WORKLOADS)
    p.add_argument("--n", type=int, help="httpx: measured requests; hypercorn: seconds")
    p.add_argument("--concurrency", type=int, default=eco_common.HTTPX_CONCURRENCY,
                   help="httpx: tasks with one request in flight each (= pool size)")
    p.add_argument("--tool", choices=eco_common.HYPERCORN_TOOLS, default="auto",
                   help="hypercorn: load generator (auto: wrk if installed)")
    p.add_argument("--connections", type=int, default=eco_common.HYPERCORN_CONNECTIONS,
                   help="hypercorn: load connections")
    p.add_argument("--profile", metavar="FILE",
                   help="cProfile the measured window (httpx) / the server run "
                        "(hypercorn) and dump the stats to FILE")
    p.add_argument("--probe", action="store_true",
                   help="only import the implementation and report what it is")
    args = p.parse_args(argv)
    try:
        info = load_impl(args.impl)
    except BaseException as exc:  # anything at import time means "not importable"
        return emit({"ok": False, "unavailable": True, "impl": args.impl,
                     "error": f"{type(exc).__name__}: {exc}"}, EXIT_UNAVAILABLE)
    if args.probe:
        return emit({"ok": True, **info}, EXIT_OK)
    if args.workload is None or args.n is None or args.n < 1:
        p.error("--workload and --n >= 1 are required unless --probe")
    profiler = cProfile.Profile() if args.profile else None
    try:
        if args.workload == "httpx":
            record = measure_httpx(args.impl, args.n, args.concurrency, profiler)
        else:
            record = measure_hypercorn(args.impl, args.n, args.tool, args.connections,
                                       profiler)
    except BaseException as exc:
        return emit({"ok": False, "impl": args.impl, "workload": args.workload,
                     "n": args.n, "error": f"{type(exc).__name__}: {exc}"[:400],
                     "traceback": traceback.format_exc(limit=20)}, EXIT_FAILED)
    if profiler is not None:
        profiler.dump_stats(args.profile)
        record["profile"] = args.profile
    return emit({"ok": True, **info, **record}, EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
