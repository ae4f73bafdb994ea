"""Markdown tables for the ecosystem benchmark (pure functions of the result document).

Design notes: like ``benchmarks/_report.py`` (whose machine info and number formats
this reuses), everything is computed from the JSON document ``run.py`` writes, so the
tables can be regenerated from a saved ``ecosystem.json``:
``eco_report.markdown(json.load(f))``.
"""

from __future__ import annotations

import _report
import eco_common
from _report import fmt_rate, fmt_ratio, fmt_us


def cell_label(cell_or_plan: dict) -> str:
    p = cell_or_plan
    if p["workload"] == "httpx":
        return f"httpx, {p['n']:,} requests, {p['concurrency']} concurrent"
    tool = p.get("tool", "wrk")
    if tool == "probe":
        return "hypercorn, probe only (smoke)"
    return f"hypercorn, {p['n']} s of {tool} load, {p.get('connections')} connections"


def _spread(s: dict | None, fmt) -> str:
    if not s:
        return "—"
    return f"{fmt(s['median'])} [{fmt(s['min'])}–{fmt(s['max'])}]"


def _name(impl: str) -> str:
    return f"**{impl}**" if impl in eco_common.VIVACE_IMPLS else impl


def _cpu_key(workload: str) -> str:
    return "client_cpu_us_per_req" if workload == "httpx" else "server_cpu_us_per_req"


def row(c: dict) -> str:
    name = _name(c["impl"])
    if c["status"] != "ok":
        return f"| {name} | {c['status']} |" + " — |" * (11 if c["workload"] == "httpx" else 10)
    rr, cr = c.get("req_ratios", {}), c.get("cpu_ratios", {})
    cpu = c[_cpu_key(c["workload"])]
    cells = [name, _spread(c["req_per_s"], fmt_rate),
             *(fmt_ratio(rr.get(b)) for b in eco_common.BASELINES),
             _spread(cpu, fmt_us),
             *(fmt_ratio(cr.get(b)) for b in eco_common.BASELINES),
             f"{c['client_cpu_share'] * 100:.0f} %", f"{c['server_cpu_share'] * 100:.0f} %"]
    side = "client" if c["workload"] == "httpx" else "server"
    cells.append(f"{fmt_us(c[side + '_user_us_per_req']['median'])} / "
                 f"{fmt_us(c[side + '_sys_us_per_req']['median'])}")
    if c["workload"] == "httpx":
        cells.append(f"{c['connections']:g}")
    return "| " + " | ".join(cells) + " |"


def section(doc: dict, plan_item: dict) -> list[str]:
    cells = [c for c in doc["cells"] if c["key"] == plan_item["key"]]
    w = plan_item["workload"]
    who = "client" if w == "httpx" else "server"
    last = " | connections opened" if w == "httpx" else ""
    out = ["", f"## {cell_label(plan_item)}", "",
           f"| impl | req/s median [min–max] | req/s vs trio | vs asyncio | vs uvloop "
           f"| {who} CPU µs/req median [min–max] | CPU vs trio | vs asyncio | vs uvloop "
           f"| client core | server core | of which user / kernel µs{last} |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
           + ("---:|" if last else "")]
    by = {c["impl"]: c for c in cells}
    for impl in doc["config"]["impls"]:
        if impl in by:
            out.append(row(by[impl]))
    return out


def headline(doc: dict) -> list[str]:
    """One line per cell: vivace's ratios against trio (the issue's goal is >= 1.5x)."""
    out = []
    for p in doc["config"]["plan"]:
        by = {c["impl"]: c for c in doc["cells"] if c["key"] == p["key"]}
        for impl in ("vivace", "vivace-ref"):
            c = by.get(impl)
            if not c or c["status"] != "ok" or "trio" not in c.get("req_ratios", {}):
                continue
            who = "client" if p["workload"] == "httpx" else "server"
            # A CPU ratio is missing when a tiny run used no measurable CPU (tick clock).
            out.append(f"- {cell_label(p)}: **{impl}** req/s = "
                       f"{fmt_ratio(c['req_ratios']['trio'])} trio's; {who} CPU per "
                       f"request: trio's ÷ {impl}'s = "
                       f"{fmt_ratio(c.get('cpu_ratios', {}).get('trio'))}")
    return out


def notes(doc: dict) -> list[str]:
    lines = [
        "Notes:",
        "- Medians over runs; [min–max] over the same runs. Every run is a fresh process; "
        "in each round every implementation runs once, in a freshly shuffled order.",
        "- req/s ratio = this row ÷ baseline; CPU ratio = baseline ÷ this row: above 1× "
        "this row is better.",
        "- `vivace` = compiled engine, `vivace-ref` = pure-Python reference engine, both "
        "running the third-party code unchanged through `vivace.install()`; `trio` = the "
        "real trio; `asyncio` / `uvloop` = the same code on anyio's / hypercorn's asyncio "
        "side.",
        "- client / server core = share of one core busy during the window "
        "(utime + stime from `/proc`); the process near 100 % is the one limiting req/s.",
    ]
    for w in doc["config"]["workloads"]:
        lines.append(f"- `{w}`: {eco_common.DESCRIPTIONS[w]}.")
    lines.append("- httpx: the measured process is the client; CPU µs/req is its "
                 "process_time over the window ÷ requests. hypercorn: the measured process "
                 "is the server; CPU µs/req is its utime + stime over wrk's window ÷ "
                 "requests.")
    return lines


def markdown(doc: dict) -> str:
    title = "vivace ecosystem smoke run" if doc["kind"] == "smoke" else \
        "vivace ecosystem benchmarks (issue 10)"
    out = [f"# {title}", "", _report.machine_line(doc), "",
           "Packages: " + ", ".join(f"{k} {v}" for k, v in doc["machine"]
                                    .get("ecosystem_packages", {}).items()), "",
           _report.run_line(doc), ""]
    head = headline(doc)
    if head:
        out += ["## vivace vs trio (same run, medians)", "", *head]
    for p in doc["config"]["plan"]:
        out += section(doc, p)
    out += ["", *notes(doc), ""]
    return "\n".join(out)


def progress_line(plan_item: dict, cells: list[dict]) -> str:
    parts = []
    for c in cells:
        if c["status"] == "ok":
            cpu = c[_cpu_key(c["workload"])]["median"]
            parts.append(f"{c['impl']} {fmt_rate(c['req_per_s']['median'])} req/s "
                         f"({fmt_us(cpu)} µs CPU/req)")
        else:
            parts.append(f"{c['impl']} {c['status']}")
    return f"{cell_label(plan_item)}: " + ", ".join(parts)


def smoke_summary(cells: list[dict]) -> str:
    lines = ["smoke results:"]
    for c in cells:
        what = ("ok" if c["status"] == "ok" else
                f"ERROR: {c.get('error')}" if c["status"] == "error" else "n/a")
        lines.append(f"  {c['key']:<28} {c['impl']:<11} {what}")
    return "\n".join(lines)
