"""Machine info, the Markdown results and the terminal summary for ``run.py``.

Design notes: pure functions of the result document that ``run.py`` also writes as
JSON, so a table can be regenerated from a saved latest.json
(``_report.markdown(json.load(f))``). The charts are in ``_chart.py``.
"""

from __future__ import annotations

import os
import platform
import sys

import _common

# ------------------------------------------------------------------------ machine


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _dist_version(name: str):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def machine_info(probes: dict, load_before, load_after) -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    packages = {}
    for dist, impl in (("trio", "trio"), ("uvloop", "uvloop"), ("vivace", "vivace"),
                       ("matplotlib", None)):
        probed = probes.get(impl or "", {})
        if not probed.get("available") and impl == "vivace":
            probed = probes.get("vivace-ref", {})
        packages[dist] = probed.get("version") or _dist_version(dist)
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "kernel": f"{platform.system()} {platform.release()}",
        "packages": packages,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }


def machine_line(doc: dict) -> str:
    m = doc["machine"]
    pk = m["packages"]
    parts = [m["cpu_model"], f"{m['logical_cpus']} cores", m["python"], m["platform"]]
    for dist in ("trio", "uvloop", "vivace"):
        text = f"{dist} {pk.get(dist) or 'not installed'}"
        probed = [p for i, p in doc["impls"].items() if i.split("-")[0] == dist]
        if probed and not any(p.get("available") for p in probed):
            text += " (not importable)"
        parts.append(text)
    return "Machine: " + " · ".join(parts)


def machine_short(doc: dict) -> str:
    """CPU, cores, Python and kernel in one short phrase (chart caption, summary)."""
    m = doc["machine"]
    # Results saved before "kernel" was recorded only have platform.platform().
    kernel = m.get("kernel") or m.get("platform", "")
    cores = m.get("usable_cpus") or m.get("logical_cpus")
    return f"{m['cpu_model']}, {cores} cores, {m['python']}, {kernel}"


def run_line(doc: dict) -> str:
    c = doc["config"]
    m = doc["machine"]
    bits = [doc["created"], f"{c['runs']} run(s) per cell, implementations interleaved "
            f"round by round in shuffled order (seed {c['seed']})"]
    if c["quick"]:
        bits.append("--quick sizes")
    if c["scale"] != 1:
        bits.append(f"--scale {c['scale']:g}")
    if m.get("loadavg_before") and m.get("loadavg_after"):
        bits.append(f"load avg {m['loadavg_before'][0]} → {m['loadavg_after'][0]}")
    bits.append(f"{doc['duration_s']:.0f} s")
    return "Run: " + " · ".join(bits)


# ------------------------------------------------------------------------ formatting


def fmt_ns(x) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def fmt_spread(s) -> str:
    return f"{fmt_ns(s['median'])} [{fmt_ns(s['min'])}–{fmt_ns(s['max'])}]"


def fmt_ratio(r) -> str:
    if r is None:
        return "—"
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def fmt_mib(kib) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f}"


def cell_text(cell: dict) -> str:
    if cell["status"] == "ok":
        return fmt_spread(cell["ns_per_op"])
    return cell["status"]  # "n/a" or "error"


def size_text(cell_or_workload, n=None, axis=None) -> str:
    """A cell's size as the tables show it ("200,000", "10 s", "1,000 conns")."""
    if isinstance(cell_or_workload, dict):
        c = cell_or_workload
        return _common.size_label(c["workload"], c["n"], c.get("axis"))
    return _common.size_label(cell_or_workload, n, axis)


def progress_line(workload, n, cells) -> str:
    here = [c for c in cells if c["workload"] == workload and c["n"] == n]
    parts = [f"{c['impl']} " + (fmt_ns(c["ns_per_op"]["median"]) if c["status"] == "ok"
                                 else c["status"]) for c in here]
    label = size_text(here[0]) if here else size_text(workload, n)
    extra = ""
    if workload in _common.SERVER_WORKLOADS:
        rates = [f"{c['impl']} {fmt_rate(c['req_per_s']['median'])}" for c in here
                 if c["status"] == "ok" and "req_per_s" in c]
        extra = " | req/s: " + ", ".join(rates)
    unit = "CPU ns/op" if here and here[0].get("metric") == "cpu" else "ns/op"
    return f"{workload} {label}: " + ", ".join(parts) + f" {unit}" + extra


def overhead_line(doc: dict) -> str | None:
    per = {}
    for c in doc["cells"]:
        if c["status"] == "ok" and c.get("run_overhead_s") is not None:
            per.setdefault(c["impl"], []).append(c["run_overhead_s"])
    if not per:
        return None
    parts = [f"{i} {sorted(v)[len(v) // 2] * 1e6:,.0f} µs" for i, v in per.items()]
    return ("- Fixed cost of one empty `run(...)` (inside every timed section; matters "
            "only at small n): " + ", ".join(parts) + ".")


def _clk_tck() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 100


def _notes(doc: dict, scaling: bool = False) -> list[str]:
    workloads = doc["config"]["workloads"]
    lines = [
        "Notes:",
        "- Each number is the median over runs of (timed section ÷ n); [min–max] over the "
        "same runs. Every run is a fresh process; the timed section is the `run(...)` "
        "call only (loop set-up and teardown included; interpreter start-up, imports, "
        "input building and one small warm-up run excluded). Results are checked and "
        "each operation's semantics verified after the clock stops.",
        "- `vivace` = compiled engine (VIVACE_REQUIRE_EXTENSIONS=1), `vivace-ref` = "
        "pure-Python reference engine (VIVACE_NO_EXTENSIONS=1), `vivace-poll` (when "
        "asked for) = compiled engine on the poll(2) I/O backend (VIVACE_IO_BACKEND=poll) "
        "instead of epoll; all run the trio-API workloads unchanged (`import vivace as "
        "trio`).",
        "- Peak RSS is the worker's ru_maxrss after the run; Δ RSS is its growth during "
        "the timed run (no tracemalloc).",
    ]
    if not scaling:
        lines.insert(2, "- \"vs X\" = X's median ÷ this row's median from the same run: "
                     "above 1× this row is faster than X, below 1× slower.")
    if doc["config"].get("gc") == "off":
        lines.append("- --no-gc: the cyclic GC was disabled during each timed section.")
    over = overhead_line(doc)
    if over:
        lines.append(over)
    for w in workloads:
        lines.append(f"- `{w}`: {_common.DESCRIPTIONS[w]}.")
    if doc["config"].get("cpu_time"):
        lines.append("- --cpu-time: every ns/op here is CPU time (process_time) per op, "
                     "not wall time; wall-clock figures are in the JSON.")
    elif "timers" in workloads:
        lines.append("- `timers` ns/op is CPU time (process_time), because its wall time "
                     f"includes up to {_common.TIMER_MAX_DELAY * 1000:g} ms spent idle "
                     "waiting for the deadlines; wall-clock figures are in the JSON.")
    served = [w for w in _common.SERVER_WORKLOADS if w in workloads]
    if served and scaling:
        lines.append(f"- `echo` in --scaling: each point is "
                     f"{_common.ECHO_SCALING_REQUESTS:,} measured round trips "
                     f"({_common.QUICK_ECHO_SCALING_REQUESTS:,} with --quick) of "
                     f"{_common.ECHO_SIZE:,} B over 10, 100 or 1,000 concurrent "
                     "connections; the cost is the server's CPU time (utime + stime) per "
                     "round trip, in ns, with clock-tick resolution "
                     f"(1/{_clk_tck()} s). Client and server raise their RLIMIT_NOFILE "
                     "soft limit to the hard limit when needed.")
    elif served:
        names = " and ".join(f"`{w}`" for w in served)
        what = ("server CPU time per request" if doc["config"].get("cpu_time") else
                "wall time per request in the load generator's measured window "
                "(1e9 ÷ req/s), so its \"vs\" ratios are req/s ratios")
        lines.append(f"- {names} ns/op is {what}; req/s and server CPU per request are "
                     "in their own sections below the tables (CPU time has clock-tick "
                     f"resolution, 1/{_clk_tck()} s).")
    if "http" in workloads and not scaling:
        lines.append("- `http` size is seconds of load, not a count; the number of "
                     "requests is whatever the server managed in that time (in the JSON "
                     "as `requests`).")
    bad = [(i, p.get("error")) for i, p in doc["impls"].items() if not p.get("available")]
    for impl, err in bad:
        lines.append(f"- n/a `{impl}`: {err}")
    for c in doc["cells"]:
        if c["status"] == "error":
            lines.append(f"- error `{c['impl']}` / `{c['workload']}` (n={c['n']:,}): "
                         f"{c.get('error')}")
    return lines


# ------------------------------------------------------------------------ tables


def markdown(doc: dict) -> str:
    cells = doc["cells"]
    impls = doc["config"]["impls"]
    plan = [tuple(x) for x in doc["config"]["plan"]]
    by = {(c["workload"], c["n"], c["impl"]): c for c in cells}
    title = "vivace smoke run" if doc["kind"] == "smoke" else "vivace benchmarks"
    out = [f"# {title}", "", machine_line(doc), "", run_line(doc), ""]

    out += ["## Summary: ns/op (median)", "",
            "| workload | n | " + " | ".join(impls) + " |",
            "|---|---:|" + "---:|" * len(impls)]
    for w, n in plan:
        row = []
        for impl in impls:
            c = by.get((w, n, impl))
            row.append(fmt_ns(c["ns_per_op"]["median"]) if c and c["status"] == "ok"
                       else (c["status"] if c else "—"))
        out.append(f"| {w} | {size_text(w, n)} | " + " | ".join(row) + " |")

    out += ["", "## Detail", "",
            "| workload | n | impl | ns/op median [min–max] | vs trio | vs asyncio "
            "| vs uvloop | peak RSS MiB | Δ RSS MiB |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for w, n in plan:
        for impl in impls:
            c = by.get((w, n, impl))
            if c is None:
                continue
            ratios = c.get("ratios", {})
            out.append("| " + " | ".join([
                w, size_text(w, n), f"**{impl}**" if impl in _common.SUBJECTS else impl,
                cell_text(c),
                *(fmt_ratio(ratios.get(b)) if c["status"] == "ok" else "—"
                  for b in _common.BASELINES),
                fmt_mib(c.get("peak_rss_kib")), fmt_mib(c.get("rss_delta_kib")),
            ]) + " |")
    for w in _common.SERVER_WORKLOADS:
        out += server_markdown(doc, w)
    out += [""] + _notes(doc) + [""]
    return "\n".join(out)


def fmt_rate(x) -> str:
    return "—" if x is None else f"{x:,.0f}"


def fmt_us(x) -> str:
    return "—" if x is None else (f"{x:.1f}" if x < 100 else f"{x:,.0f}")


def _server_heading(workload: str, cells: list) -> tuple[str, str]:
    """(section title, how-it-was-measured paragraph) for echo / http."""
    load = next((c["load"] for c in cells if c.get("load")), {})
    if workload == "echo":
        conns = load.get("connections", _common.ECHO_CONNECTIONS)
        size = load.get("size", _common.ECHO_SIZE)
        return (f"TCP echo: {conns} connections × {size:,} B over loopback, neutral "
                "stdlib client",
                "Throughput is measured by the client (the same stdlib `selectors` + "
                "blocking sockets process for every server); ")
    tools = sorted({c["load"]["tool"] for c in cells if c.get("load")})
    tool = " / ".join(tools) or "—"
    conns = load.get("connections", _common.HTTP_CONNECTIONS)
    what = ("`wrk -t 1` (C, one thread; its own totals)" if tools == ["wrk"] else
            "`http_client.py` (the stdlib fallback client: wrk was not installed)"
            if tools == ["python"] else f"load generators {tool}")
    return (f"HTTP/1.1 hello world (h11): {conns} keep-alive connections over loopback, "
            f"load from {tool}",
            f"Throughput is measured by {what}; every server first answered "
            f"{load.get('probe_requests', _common.HTTP_PROBE_REQUESTS)} keep-alive probe "
            "requests checked field by field, and any load-generator error (socket "
            "errors, non-2xx responses) or count mismatch fails the run; ")


def server_markdown(doc: dict, workload: str) -> list[str]:
    """The echo / http section: req/s and server CPU per request, with both ratios."""
    cells = [c for c in doc["cells"] if c["workload"] == workload]
    if not cells:
        return []
    impls = doc["config"]["impls"]
    title, how = _server_heading(workload, [c for c in cells if c["status"] == "ok"])
    out = ["", f"## {title}", "",
           how + "server CPU is the server process's utime + stime "
           "(`/proc/<pid>/stat`) over the same window, ÷ requests; \"of which user / "
           "kernel\" splits it into utime (event loop, framework, interpreter, h11) and "
           "stime (the TCP stack). "
           "req/s ratio = this row ÷ baseline; CPU ratio = baseline ÷ this row; above 1× "
           "this row is better. \"server CPU\" / \"client CPU\" = share of one core "
           "busy during the window (a client near 100 % means the client, not the "
           "server, limited req/s).", ""]
    for n in sorted({c["n"] for c in cells}):
        by = {c["impl"]: c for c in cells if c["n"] == n}
        if workload == "echo":
            load = next((c["load"] for c in by.values() if c.get("load")), {})
            warm = load.get("warmup", _common.echo_warmup(n))
            out += [f"n = {n:,} round trips per run (plus {warm:,} unmeasured warm-up)", ""]
        else:
            out += [f"{n:g} s of load per run", ""]
        out += ["| impl | req/s median [min–max] | req/s vs trio | vs asyncio "
                "| vs uvloop | server CPU µs/req median [min–max] | of which user / "
                "kernel | CPU vs trio | vs asyncio | vs uvloop | server CPU | client CPU |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for impl in impls:
            c = by.get(impl)
            if c is None:
                continue
            out.append(server_row(c))
        out.append("")
    return out


def _split_text(c: dict) -> str:
    user, system = c.get("server_user_us_per_req"), c.get("server_sys_us_per_req")
    if not user or not system:
        return "—"
    return f"{fmt_us(user['median'])} / {fmt_us(system['median'])}"


def server_row(c: dict) -> str:
    name = f"**{c['impl']}**" if c["impl"] in _common.SUBJECTS else c["impl"]
    if c["status"] != "ok" or "req_per_s" not in c:
        return f"| {name} | {c['status']} |" + " — |" * 10
    r, u = c["req_per_s"], c["server_cpu_us_per_req"]
    rr, cr = c.get("req_ratios", {}), c.get("cpu_ratios", {})
    return "| " + " | ".join([
        name,
        f"{fmt_rate(r['median'])} [{fmt_rate(r['min'])}–{fmt_rate(r['max'])}]",
        *(fmt_ratio(rr.get(b)) for b in _common.BASELINES),
        f"{fmt_us(u['median'])} [{fmt_us(u['min'])}–{fmt_us(u['max'])}]",
        _split_text(c),
        *(fmt_ratio(cr.get(b)) for b in _common.BASELINES),
        f"{c['server_cpu_share'] * 100:.0f} %",
        f"{c['client_cpu_share'] * 100:.0f} %",
    ]) + " |"


def scaling_markdown(doc: dict) -> str:
    cells = doc["cells"]
    impls = doc["config"]["impls"]
    out = ["# vivace scaling", "", machine_line(doc), "", run_line(doc), "",
           "Per-operation cost should not grow with n: the run queue is O(1) per step "
           "and the deadline heap O(log n) per timer; an echo request should cost the "
           "server the same whether 10 or 1,000 connections are open. \"largest ÷ "
           "smallest\" is the cost at the largest size over the cost at the smallest "
           "(1.00× = flat). Δ RSS/op is the worker's RSS growth during the largest run, "
           "per op (per connection for echo).", ""]
    for w in doc["config"]["workloads"]:
        mine = [c for c in cells if c["workload"] == w]
        sizes = sorted({c["n"] for c in mine})
        if not sizes:
            continue
        axis = next((c.get("axis") for c in mine if c.get("axis")), None)
        metric = next((c["metric"] for c in mine if c.get("metric")), "wall")
        if axis == "connections":
            requests = next((c["requests"]["median"] for c in mine if c.get("requests")),
                            None)
            per_run = f"{requests:,.0f} round trips per run" if requests else ""
            title = (f"## {w}: server CPU ns per request vs open connections (median "
                     f"[min–max]; {per_run})")
            head = [f"{s:,} conns" for s in sizes]
        else:
            unit = "CPU ns/op" if metric == "cpu" else "ns/op"
            title = f"## {w} ({unit}, median [min–max])"
            head = [f"n={s:,}" for s in sizes]
        rss_head = "Δ RSS/conn (bytes)" if axis == "connections" else "Δ RSS/op (bytes)"
        out += [title, "", "| impl | " + " | ".join(head)
                + f" | largest ÷ smallest | {rss_head} |",
                "|---|" + "---:|" * (len(sizes) + 2)]
        for impl in impls:
            by_n = {c["n"]: c for c in mine if c["impl"] == impl}
            out.append(_scaling_row(impl, sizes, by_n, lambda c: c["ns_per_op"],
                                    fmt_spread, per=("n" if axis is None else "conns")))
        out.append("")
        if axis == "connections":
            out += _connection_tables(w, mine, sizes, head, impls)
    out += _notes(doc, scaling=True) + [""]
    return "\n".join(out)


def _connection_tables(w, mine, sizes, head, impls) -> list[str]:
    """echo --scaling: the server CPU split into user space and kernel, and req/s."""
    out = []
    tables = [
        (f"{w}: of which user-space CPU µs per request (event loop, framework, "
         "interpreter; utime)", "server_user_us_per_req", fmt_us),
        (f"{w}: of which kernel CPU µs per request (TCP stack, epoll; stime)",
         "server_sys_us_per_req", fmt_us),
        (f"{w}: requests per second as measured by the client", "req_per_s", fmt_rate),
    ]
    for title, key, fmt in tables:
        out += [title + " (median [min–max])", "", "| impl | " + " | ".join(head)
                + " | largest ÷ smallest |", "|---|" + "---:|" * (len(sizes) + 1)]
        for impl in impls:
            by_n = {c["n"]: c for c in mine if c["impl"] == impl}
            out.append(_scaling_row(
                impl, sizes, by_n, lambda c, key=key: c.get(key),
                lambda r, fmt=fmt: f"{fmt(r['median'])} [{fmt(r['min'])}–{fmt(r['max'])}]",
                per=None))
        out.append("")
    return out


def _scaling_row(impl, sizes, by_n, pick, fmt, per) -> str:
    """One implementation's row: value per size, largest ÷ smallest, and (per="n" or
    "conns") the RSS growth of the largest run per op or per connection."""
    row, meds = [], []
    for size in sizes:
        c = by_n.get(size)
        value = pick(c) if c and c["status"] == "ok" else None
        row.append(fmt(value) if value else
                   (c["status"] if c and c["status"] != "ok" else "—"))
        meds.append(value["median"] if value else None)
    flat = fmt_ratio(meds[-1] / meds[0]) if meds[0] and meds[-1] else "—"
    line = f"| {impl} | " + " | ".join(row) + f" | {flat} |"
    if per is not None:
        big = by_n.get(sizes[-1])
        line += (f" {big['rss_delta_kib'] * 1024 / big['n']:,.0f} |"
                 if big and big["status"] == "ok" else " — |")
    return line


def smoke_summary(cells) -> str:
    lines = ["smoke results:"]
    for c in cells:
        if c["status"] == "ok":
            what = f"ok ({fmt_ns(c['ns_per_op']['median'])} ns/op)"
        elif c["status"] == "error":
            what = f"ERROR: {c.get('error')}"
        else:
            what = "n/a"
        lines.append(f"  {c['workload']:<18} {c['impl']:<11} {what}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ summary


def best_peer(by_impl: dict) -> tuple[str, float] | None:
    """(name, median ns/op) of the fastest non-vivace implementation that ran."""
    peers = [(c["ns_per_op"]["median"], impl) for impl, c in by_impl.items()
             if impl not in _common.SUBJECTS and c.get("status") == "ok"]
    if not peers:
        return None
    median, impl = min(peers)
    return impl, median


def summary_table(doc: dict) -> str:
    """The compact end-of-run table: one row per cell of the plan (one per workload
    outside --scaling), median ns/op per implementation, and each vivace engine's
    speed-up against the fastest other implementation of that row."""
    impls = doc["config"]["impls"]
    plan = [tuple(x) for x in doc["config"]["plan"]]
    by = {(c["workload"], c["n"]): {} for c in doc["cells"]}
    for c in doc["cells"]:
        by[(c["workload"], c["n"])][c["impl"]] = c
    ran = {c["impl"] for c in doc["cells"] if c["status"] == "ok"}
    tried = {c["impl"] for c in doc["cells"] if c["status"] != "n/a"}
    subjects = [s for s in _common.SUBJECTS if s in tried]
    has_peer = any(i in ran for i in impls if i not in _common.SUBJECTS)
    ratio_cols = subjects if has_peer else []

    head = ["workload", "n", *impls, *(f"{s} vs best" for s in ratio_cols)]
    rows = []
    for w, n in plan:
        cells = by.get((w, n), {})
        axis = next((c.get("axis") for c in cells.values() if c.get("axis")), None)
        row = [w, size_text(w, n, axis)]
        for impl in impls:
            c = cells.get(impl)
            row.append("—" if c is None else fmt_ns(c["ns_per_op"]["median"])
                       if c["status"] == "ok" else c["status"])
        peer = best_peer(cells)
        for subj in ratio_cols:
            c = cells.get(subj)
            if peer is None or c is None or c["status"] != "ok":
                row.append("—")
            else:
                row.append(f"{fmt_ratio(peer[1] / c['ns_per_op']['median'])} {peer[0]}")
        rows.append(row)

    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]

    def line(cols: list[str]) -> str:
        out = [cols[0].ljust(widths[0])]
        out += [c.rjust(wd) for c, wd in zip(cols[1:], widths[1:])]
        return "  ".join(out).rstrip()

    runs = doc["config"]["runs"]
    metric = ("CPU ns" if doc["config"].get("cpu_time") else "ns")
    lines = [f"Summary: median {metric} per operation over {runs} run(s) per cell "
             "(lower is better)"]
    if ratio_cols:
        lines.append("\"vs best\" = the fastest of the others ÷ vivace, named after it "
                     "(above 1× vivace is faster)")
    lines += ["", line(head), line(["-" * wd for wd in widths]), *map(line, rows), ""]
    served = [w for w in _common.SERVER_WORKLOADS if any(p[0] == w for p in plan)]
    if served and not doc["config"].get("cpu_time"):
        lines.append(f"ns per request for {' and '.join(served)} (1e9 ÷ req/s); their "
                     "req/s and server CPU are in the full results")
    lines.append(f"{machine_short(doc)} · {doc['duration_s']:.0f} s")
    return "\n".join(lines)
