"""Charts for ``run.py`` (matplotlib, optional and imported lazily).

    python benchmarks/_chart.py results/latest.json [out.png]   # redraw a saved run

Design notes: the speed-up chart has one panel per baseline (trio, asyncio, uvloop), a
row per workload and a bar per vivace engine. Bars start at 1× on a log axis centred
on 1×, so "faster" and "slower" are the two sides of one line, equally far for 2× and
½×; every panel has the same axis, so panels compare at a glance. Whiskers show the
spread across runs; the caption says how many runs, and on what machine. Every
function here is a pure function of the result document, like ``_report``'s.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path
from typing import Any

import _common
import _report

# One colour per implementation drawn as bars (vivace engines, or any impl when no
# vivace was measured), stable across runs.
COLOURS = {"vivace": "#1f77b4", "vivace-ref": "#9ecae1", "vivace-poll": "#9467bd",
           "trio": "#2ca02c",
           "asyncio": "#ff7f0e", "uvloop": "#d62728"}
FASTER = "#e8f5e9"  # background of the "faster" half of each panel


def _pyplot() -> tuple[Any, str | None]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:  # ImportError, or a broken install
        return None, f"chart skipped: matplotlib is not available ({exc})"
    return plt, None


# ------------------------------------------------------------------------ data


def series(doc: dict) -> tuple[list[str], list[str]]:
    """(baselines, subjects): one panel per baseline, one bar per subject. Without a
    vivace build, every other implementation is compared with the first baseline."""
    have = {c["impl"] for c in doc["cells"] if c["status"] == "ok"}
    subjects = [s for s in _common.SUBJECTS if s in have]
    if subjects:
        return [b for b in _common.BASELINES if b in have], subjects
    ref = next((b for b in _common.BASELINES if b in have), None)
    if ref is None:
        return [], []
    return [ref], [i for i in _common.IMPLS if i in have and i != ref]


def ratio_spread(subject: dict, baseline: dict) -> tuple[float, float, float]:
    """(ratio, low, high) of baseline ns/op ÷ subject ns/op (above 1: subject faster).

    The ratio is that of the medians. The spread pairs the runs of the same round (the
    runner interleaves implementations round by round, so both met the same machine
    load) and gives the min and max of those ratios; results saved without per-run
    values get the widest combination of the two min–max ranges instead."""
    s, b = subject["ns_per_op"], baseline["ns_per_op"]
    ratio = b["median"] / s["median"]
    s_runs, b_runs = subject.get("ns_per_op_runs"), baseline.get("ns_per_op_runs")
    if s_runs and b_runs and len(s_runs) == len(b_runs):
        per_round = [bv / sv for sv, bv in zip(s_runs, b_runs) if sv > 0]
        low, high = min(per_round), max(per_round)
    else:
        low, high = b["min"] / s["max"], b["max"] / s["min"]
    # A ratio of medians can fall outside the per-round range; the whisker covers it.
    return ratio, min(low, ratio), max(high, ratio)


def paired(doc: dict) -> bool:
    """True when every measured cell kept its per-run values (see ratio_spread)."""
    return all(c.get("ns_per_op_runs") for c in doc["cells"] if c["status"] == "ok")


def caption(doc: dict) -> str:
    """Run count, how to read bars and whiskers, and the machine (two lines)."""
    c = doc["config"]
    sizes = " (--quick sizes)" if c.get("quick") else ""
    how = ("min–max of the per-round ratios" if paired(doc) else
           "baseline min–max ÷ vivace max–min (no per-run values saved)")
    clock = ("CPU time" if c.get("cpu_time") else "wall time (timers: CPU time)"
             if "timers" in c["workloads"] else "wall time")
    first = (f"{c['runs']} runs per cell{sizes}, each a fresh process, implementations "
             f"interleaved in shuffled rounds; bar = ratio of medians of {clock}, "
             f"whiskers = {how}.")
    pk = doc["machine"].get("packages", {})
    measured = {i.split("-")[0] for i in c["impls"]}
    versions = " · ".join(f"{d} {pk[d]}" for d in ("trio", "uvloop", "vivace")
                          if pk.get(d) and d in measured)
    second = f"Machine: {_report.machine_short(doc)} · {versions} · {doc['created']}"
    return first + "\n" + second


def wrap_caption(text: str, width_in: float) -> str:
    """Wrap each caption line to the figure's width (7-pt text, ~0.058 in a char)."""
    chars = max(40, int(width_in / 0.058))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


# ------------------------------------------------------------------------ axes


def _ratio_label(v: float) -> str:
    """2×, ½ → "1/2×": a speed-up or a slow-down of the same size read alike."""
    if v >= 1:
        return f"{v:g}×"
    return f"1/{1 / v:g}×"


def axis_limit(extremes: list[float]) -> float:
    """L such that the axis spans [1/L, L], a power of 2 with room for the labels."""
    far = max([abs(math.log2(x)) for x in extremes if x > 0] + [1.0])
    return 2.0 ** math.ceil(far + 1.0)  # a doubling's room for the value labels


def _ticks(limit: float) -> list[float]:
    top = int(round(math.log2(limit)))
    step = 1 if top <= 3 else 2 if top <= 6 else 3
    # None at the very ends: there they would meet the next panel's labels.
    return [2.0 ** k for k in range(1 - top, top) if k % step == 0]


# ------------------------------------------------------------------------ charts


def chart_figure(doc: dict) -> Any:
    """The speed-up figure, or None when there is no ratio to draw."""
    plt, _note = _pyplot()
    baselines, subjects = series(doc)
    if plt is None or not baselines or not subjects:
        return None
    plan = [tuple(x) for x in doc["config"]["plan"]]
    by = {(c["workload"], c["n"], c["impl"]): c for c in doc["cells"]}

    bars: dict[str, list[tuple[int, str, tuple[float, float, float] | None]]] = {}
    extremes: list[float] = []
    for base in baselines:
        rows = bars[base] = []
        for i, (w, n) in enumerate(plan):
            b = by.get((w, n, base))
            for subj in subjects:
                s = by.get((w, n, subj))
                if s and b and s["status"] == "ok" and b["status"] == "ok":
                    r = ratio_spread(s, b)
                    rows.append((i, subj, r))
                    extremes += [r[1], r[2]]
                else:
                    rows.append((i, subj, None))
    limit = axis_limit(extremes)

    height = 1.2 + 0.42 * len(plan) * max(1, len(subjects)) ** 0.5
    fig, axes = plt.subplots(1, len(baselines), figsize=(3.9 * len(baselines) + 1.8,
                                                         height + 1.3),
                             sharey=True, sharex=True, squeeze=False)
    slot = 0.8 / len(subjects)
    for ax, base in zip(axes[0], baselines):
        ax.axvspan(1.0, limit, color=FASTER, zorder=0)
        for i, subj, r in bars[base]:
            y = i - 0.4 + slot * (subjects.index(subj) + 0.5)
            if r is None:
                status = (by.get(plan[i] + (subj,)) or {}).get("status", "n/a")
                ax.text(1.0, y, f" {status}", va="center", fontsize=7, color="grey")
                continue
            ratio, low, high = r
            # Bars grow from 1×: left of it the subject is slower, right of it faster.
            ax.barh(y, ratio - 1.0, left=1.0, height=slot * 0.9,
                    color=COLOURS.get(subj, "grey"), zorder=2)
            ax.errorbar(ratio, y, xerr=[[ratio - low], [high - ratio]], fmt="none",
                        ecolor="black", elinewidth=0.8, capsize=2, zorder=3)
            if ratio >= 1:
                ax.text(high * 1.06, y, _report.fmt_ratio(ratio), va="center",
                        ha="left", fontsize=7)
            else:
                ax.text(low / 1.06, y, _report.fmt_ratio(ratio), va="center",
                        ha="right", fontsize=7)
        ax.axvline(1.0, color="black", linewidth=0.9, zorder=4)
        ax.set_xscale("log")
        ax.set_xlim(1 / limit, limit)
        ticks = _ticks(limit)
        ax.set_xticks(ticks)
        ax.set_xticklabels([_ratio_label(t) for t in ticks], fontsize=8)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_title(f"vs {base}", fontsize=10)
        ax.set_xlabel(f"← slower than {base} · faster than {base} →", fontsize=8)
        ax.grid(True, axis="x", alpha=0.3, zorder=1)
    first = axes[0][0]
    first.set_yticks(range(len(plan)))
    first.set_yticklabels([f"{w} {_row_size(by, w, n, subjects)}" for w, n in plan],
                          fontsize=8)
    first.set_ylim(len(plan) - 0.5, -0.5)  # first workload on top
    who = "vivace" if subjects[0] in _common.SUBJECTS else ", ".join(subjects)
    fig.suptitle(f"{who}: speed-up against each baseline (baseline median ÷ {who} "
                 "median; bars from 1×, right = faster)", fontsize=10,
                 y=1 - 0.12 / (height + 1.3), va="top")
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=COLOURS.get(s, "grey"), label=s) for s in subjects]
               + [_whisker_handle(plt)], loc="upper center", ncol=len(subjects) + 1,
               bbox_to_anchor=(0.5, 1 - 0.45 / (height + 1.3)), fontsize=8,
               frameon=False)
    text = wrap_caption(caption(doc), fig.get_figwidth())
    fig.text(0.01, 0.01, text, fontsize=7, va="bottom", linespacing=1.5)
    # Room in inches, whatever the figure's height: the caption's lines at the
    # bottom, 0.62 for the title and the legend at the top.
    total = height + 1.3
    bottom = 0.1 + 0.15 * (text.count("\n") + 1)
    fig.tight_layout(rect=(0, bottom / total, 1, 1 - 0.62 / total))
    return fig


def _whisker_handle(plt: Any) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="black", linewidth=0.8, marker="|", markersize=6,
                  label="spread across runs")


def _row_size(by: dict, w: str, n: int, subjects: list[str]) -> str:
    cell = next((by[(w, n, s)] for s in subjects if (w, n, s) in by), None)
    size = _report.size_text(cell) if cell else _report.size_text(w, n)
    return f"({size}, req/s)" if w in _common.SERVER_WORKLOADS else f"({size})"


def chart(doc: dict, path: Any) -> str | None:
    """Write the speed-up chart to *path*. Returns a note when skipped."""
    plt, note = _pyplot()
    if plt is None:
        return note
    fig = chart_figure(doc)
    if fig is None:
        return "chart skipped: no ratios to plot"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def scaling_chart(doc: dict, path: Any) -> str | None:
    """Cost per op against size, one panel per workload; min–max band across runs."""
    plt, note = _pyplot()
    if plt is None:
        return note
    workloads = [w for w in doc["config"]["workloads"]
                 if any(c["workload"] == w and c["status"] == "ok" for c in doc["cells"])]
    if not workloads:
        return "chart skipped: nothing measured"
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.5 * len(workloads), 4.8),
                             squeeze=False)
    for ax, w in zip(axes[0], workloads):
        for impl in doc["config"]["impls"]:
            pts = sorted((c["n"], c["ns_per_op"]) for c in doc["cells"]
                         if c["workload"] == w and c["impl"] == impl
                         and c["status"] == "ok")
            if not pts:
                continue
            xs = [p[0] for p in pts]
            colour = COLOURS.get(impl)
            ax.plot(xs, [p[1]["median"] for p in pts], marker="o", label=impl,
                    color=colour)
            ax.fill_between(xs, [p[1]["min"] for p in pts], [p[1]["max"] for p in pts],
                            color=colour, alpha=0.15, linewidth=0)
        mine = [c for c in doc["cells"] if c["workload"] == w]
        axis = next((c.get("axis") for c in mine if c.get("axis")), None)
        metric = next((c["metric"] for c in mine if c.get("metric")), "wall")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("open connections" if axis == "connections" else "n")
        ax.set_ylabel("server CPU ns/request" if axis == "connections" else
                      "CPU ns/op" if metric == "cpu" else "ns/op")
        ax.set_title(w)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    runs = doc["config"]["runs"]
    fig.text(0.01, 0.01, f"{runs} runs per point: line = median, band = min–max.\n"
             f"Machine: {_report.machine_short(doc)} · {doc['created']}", fontsize=7,
             va="bottom", linespacing=1.5)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print("usage: python benchmarks/_chart.py RESULTS.json [OUT.png]", file=sys.stderr)
        return 2
    src = Path(argv[0])
    doc = json.loads(src.read_text())
    out = Path(argv[1]) if len(argv) > 1 else src.with_suffix(".png")
    draw = scaling_chart if doc.get("kind") == "scaling" else chart
    note = draw(doc, out)
    print(note or f"wrote {out}")
    return 1 if note else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
