#!/usr/bin/env python3
"""Where the time goes in one ecosystem run: share per layer, top vivace functions.

    python benchmarks/ecosystem/eco_profile.py --impl vivace --workload httpx --n 3000 --concurrency 10
    python benchmarks/ecosystem/eco_profile.py --impl trio --workload hypercorn --n 5
    python benchmarks/ecosystem/eco_profile.py --from-raw samples.txt   # re-read py-spy output

Runs ``eco_worker.py`` once under py-spy (``record --native``, raw output; ``--py-spy
PATH`` or ``py-spy`` on PATH) and sorts the samples taken inside the event loop into
layers: h11, httpcore, httpx, anyio, hypercorn, the trio API (vivace's pure-Python API
layer, vivace's compiled engine, or the real trio), asyncio / uvloop, the rest of the
standard library, system calls, and the cyclic GC. Without py-spy it falls back to
cProfile (``--profile``), which sees Python functions only: vivace's compiled engine then
hides inside its callers' times, and the per-call cost distorts small functions.

Design notes: a sample is charged to the innermost frame that has source code in a
known place (a ``.py`` file, or a Cython ``.pyx``/``.pxi`` file), skipping the
interpreter's and libc's own frames, so a dict look-up inside h11 counts as h11 and a
``PyIter_Send`` inside vivace's run loop counts as vivace's engine. Two exceptions
come first: a sample whose innermost frame is a system call (send, recv, epoll_wait,
...) is the kernel's work and is charged to "syscall", whoever made it; one inside
the cyclic GC is charged to "cyclic GC". py-spy samples wall time of a running thread,
so on a busy machine a process preempted inside a system call inflates "syscall";
compare with the user / kernel CPU split the benchmark itself reports. Samples outside
the event loop (start-up, imports) and imports done inside it are left out.
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eco_common  # noqa: E402

WORKER = eco_common.ECO / "eco_worker.py"
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
SYSCALLS = frozenset({
    "send", "recv", "sendto", "recvfrom", "sendmsg", "recvmsg", "__send", "__recv",
    "__libc_send", "__libc_recv", "epoll_wait", "epoll_ctl", "poll", "__poll", "ppoll",
    "write", "read", "__write", "__read", "__libc_write", "__libc_read", "accept4",
    "accept", "connect", "close", "__close", "shutdown", "getsockopt", "setsockopt",
    "writev", "readv", "select",
})
LOOP_MARKERS = ("run (vivace/_core/_run.py", "run (trio/_core/_run.py",
                "Runner.run (asyncio/runners.py")
PACKAGES = ("h11", "httpcore", "httpx", "anyio", "hypercorn", "sniffio", "h2", "hpack",
            "wsproto", "priority", "idna", "certifi", "uvloop", "trio")
BENCH_FILES = ("httpx_load.py", "hypercorn_app.py", "eco_worker.py", "_worker.py")


def layer_of_file(path: str) -> str | None:
    """The layer a source file belongs to, or None for frames to look through."""
    if path.endswith((".pyx", ".pxi", ".pxd")):
        if "vivace" in path:
            return "vivace engine (compiled)"
        return "uvloop (compiled)" if "uvloop" in path else "other compiled"
    if not path.endswith(".py"):
        return None  # interpreter, libc, C sources: charge the caller
    parts = Path(path).parts
    if "vivace" in parts:
        return "vivace API layer (Python)"
    if parts[-1] in BENCH_FILES:
        return "benchmark code"
    for name in PACKAGES:
        if name in parts:
            return "trio (real)" if name == "trio" else name
    if "asyncio" in parts:
        return "asyncio (stdlib)"
    return "stdlib: other"


def parse_raw(path: Path):
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack:
                yield stack.split(";"), int(count)


def split_frame(frame: str) -> tuple[str, str]:
    m = FRAME.match(frame)
    return (m["func"], m["file"]) if m else (frame, "")


def classify(frames: list[str]) -> tuple[str, str | None, str | None]:
    """(layer, vivace function or None, the nearest non-vivace caller's layer)."""
    func, _ = split_frame(frames[-1])
    if func in SYSCALLS:
        return f"syscall ({func})", None, None
    if any(f.startswith("gc_collect_main") for f in frames):
        return "cyclic GC", None, None
    for i in range(len(frames) - 1, -1, -1):
        func, path = split_frame(frames[i])
        layer = layer_of_file(path)
        if layer is None:
            continue
        if not layer.startswith("vivace"):
            return layer, None, None
        caller = None
        for j in range(i - 1, -1, -1):
            if frames[j].startswith(LOOP_MARKERS):
                caller = "(the run loop itself)"  # no task frame: the engine's own work
                break
            up = layer_of_file(split_frame(frames[j])[1])
            if up is not None and not up.startswith("vivace"):
                caller = up
                break
        short = path.split("vivace/", 1)[-1]
        return layer, f"{func} ({short})", caller
    return "interpreter (no Python frame)", None, None


def innermost_known(frames: list[str]) -> str:
    for i in range(len(frames) - 1, -1, -1):
        func, path = split_frame(frames[i])
        if layer_of_file(path) is not None:
            return f"{func} ({path})"
    return frames[-1]


def summarize_samples(raw: Path, top: int, detail: tuple[str, ...] = ()) -> str:
    per_layer: dict[str, collections.Counter] = {d: collections.Counter() for d in detail}
    layers: collections.Counter = collections.Counter()
    vivace_funcs: collections.Counter = collections.Counter()
    callers: collections.Counter = collections.Counter()
    total = skipped = 0
    for frames, count in parse_raw(raw):
        if not any(f.startswith(LOOP_MARKERS) for f in frames) or any(
                "_find_and_load" in f for f in frames):
            skipped += count
            continue
        total += count
        layer, vfunc, caller = classify(frames)
        layers[layer] += count
        if layer in per_layer:
            per_layer[layer][innermost_known(frames)] += count
        if vfunc:
            vivace_funcs[vfunc] += count
            callers[caller or "(the run loop itself)"] += count
    if not total:
        return "no samples inside the event loop"
    out = [f"{total} samples inside the event loop ({skipped} outside it or in imports "
           "left out)", "", "| layer | share |", "|---|---:|"]
    out += [f"| {k} | {v / total * 100:.1f} % |" for k, v in layers.most_common()]
    vivace_total = sum(vivace_funcs.values())
    if vivace_total:
        out += ["", f"vivace: {vivace_total / total * 100:.1f} % of the loop's samples; "
                "top functions (self samples, % of all samples):", "",
                "| vivace function | share |", "|---|---:|"]
        out += [f"| {k} | {v / total * 100:.1f} % |" for k, v in vivace_funcs.most_common(top)]
        out += ["", "vivace samples by the layer that called into vivace:", "",
                "| caller | share |", "|---|---:|"]
        out += [f"| {k} | {v / total * 100:.1f} % |" for k, v in callers.most_common()]
    for layer, funcs in per_layer.items():
        out += ["", f"top functions of layer {layer!r}:", "", "| function | share |",
                "|---|---:|"]
        out += [f"| {k} | {v / total * 100:.1f} % |" for k, v in funcs.most_common(top)]
    return "\n".join(out)


def summarize_cprofile(path: Path, top: int) -> str:
    stats = pstats.Stats(str(path)).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    layers: collections.Counter = collections.Counter()
    vivace_funcs: collections.Counter = collections.Counter()
    for (file, _line, func), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        layer = layer_of_file(file) or ("builtins (C functions)" if file == "~" else
                                        "other")
        layers[layer] += tottime
        if layer.startswith("vivace"):
            vivace_funcs[f"{func} ({file.split('vivace/', 1)[-1]})"] += tottime
    total = sum(layers.values()) or 1.0
    out = ["cProfile (tottime; vivace's compiled engine is charged to its Python callers, "
           "C functions called from Python are 'builtins')", "", "| layer | share |",
           "|---|---:|"]
    out += [f"| {k} | {v / total * 100:.1f} % |" for k, v in layers.most_common()]
    out += ["", "| vivace function | share |", "|---|---:|"]
    out += [f"| {k} | {v / total * 100:.1f} % |" for k, v in vivace_funcs.most_common(top)]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", choices=eco_common.IMPLS, default="vivace")
    p.add_argument("--workload", choices=eco_common.WORKLOADS, default="httpx")
    p.add_argument("--n", type=int, help="httpx: requests (default 3000); hypercorn: "
                   "seconds (default 5)")
    p.add_argument("--concurrency", type=int, default=eco_common.HTTPX_CONCURRENCY)
    p.add_argument("--tool", default="auto", help="hypercorn load generator")
    p.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    p.add_argument("--py-spy", dest="py_spy", help="path of the py-spy binary")
    p.add_argument("--cprofile", action="store_true", help="use cProfile even if py-spy "
                   "is available")
    p.add_argument("--keep", help="keep the raw samples / stats in this file")
    p.add_argument("--from-raw", help="summarize an existing py-spy raw file and exit")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--layer", action="append", default=[],
                   help="also list the top functions of this layer (repeatable)")
    args = p.parse_args(argv)
    if args.from_raw:
        print(summarize_samples(Path(args.from_raw), args.top, tuple(args.layer)))
        return 0
    n = args.n or (3000 if args.workload == "httpx" else 5)
    worker = [sys.executable, str(WORKER), "--impl", args.impl, "--workload", args.workload,
              "--n", str(n), "--concurrency", str(args.concurrency), "--tool", args.tool]
    py_spy = None if args.cprofile else (args.py_spy or shutil.which("py-spy"))
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp()) / "profile.out"
    env = dict(os.environ)
    if py_spy:
        cmd = [py_spy, "record", "--native", "-r", str(args.rate), "-f", "raw", "-o",
               str(out), "--", *worker]
    else:
        cmd = [*worker, "--profile", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    result = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not result or '"ok": true' not in result[-1]:
        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
        return 1
    import json

    rec = json.loads(result[-1])
    cpu_key = "client" if args.workload == "httpx" else "server"
    print(f"{args.impl} {args.workload} n={n}: {rec['req_per_s']:,.0f} req/s, "
          f"{rec[cpu_key + '_cpu_us_per_req']:,.0f} µs {cpu_key} CPU per request "
          f"(under the profiler)\n")
    print(summarize_samples(out, args.top, tuple(args.layer)) if py_spy
          else summarize_cprofile(out, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
