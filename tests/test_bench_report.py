"""The benchmark runner's progress, summary table and chart, on synthetic results.

No benchmark runs here: the report functions are pure functions of a result document,
built below the way benchmarks/run.py builds it, and run.py's own loop is driven with
a fake worker. The chart tests need matplotlib (the bench extra); the rest is stdlib.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import pathlib
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

BENCH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = BENCH.parent / "scripts"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _chart  # noqa: E402
import _common  # noqa: E402
import _progress  # noqa: E402
import _report  # noqa: E402


def _load_runner() -> ModuleType:
    # Under its own name: "run" is too generic a top-level module name to claim.
    spec = importlib.util.spec_from_file_location("vivace_bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_run = _load_runner()

CPU = "Test CPU 9000"
KERNEL = "Linux 6.1.0-test"
# Median ns/op per implementation; vivace is faster than every peer except in
# channel_throughput, where vivace-ref is slower than uvloop (a bar left of 1×).
SPEEDS = {"vivace": 100.0, "vivace-ref": 400.0, "trio": 1500.0, "asyncio": 900.0,
          "uvloop": 300.0, "vivace-poll": 110.0}


def make_cell(workload: str, n: int, impl: str, median: float, runs: int) -> dict:
    # Per-round values around the median, in an order that differs per implementation
    # (so that the per-round ratios spread).
    factors = [1.0, 0.9, 1.2, 1.05, 0.95, 1.1, 0.98][:runs]
    shift = list(SPEEDS).index(impl) % runs
    factors = factors[shift:] + factors[:shift]
    values = [median * f for f in factors]
    return {"workload": workload, "n": n, "impl": impl, "metric": "wall", "status": "ok",
            "runs": runs, "ns_per_op": bench_run.spread(values),
            "ns_per_op_runs": values}


def make_doc(workloads: tuple[str, ...] = _common.WORKLOADS, impls: tuple[str, ...] =
             _common.DEFAULT_IMPLS, runs: int = 3, per_run: bool = True) -> dict:
    plan = [(w, _common.DEFAULT_SIZES[w] // 10) for w in workloads]
    cells = []
    for w, n in plan:
        group = []
        for impl in impls:
            median = SPEEDS[impl] * (8 if w == "channel_throughput" and impl == "vivace-ref"
                                     else 1)
            cell = make_cell(w, n, impl, median, runs)
            if not per_run:
                del cell["ns_per_op_runs"]
            group.append(cell)
        bench_run.add_ratios(group)
        cells += group
    return {
        "schema": 1, "kind": "suite", "created": "2026-01-02T03:04:05+00:00",
        "duration_s": 75.0,
        "machine": {"cpu_model": CPU, "logical_cpus": 2, "usable_cpus": 2,
                    "python": "CPython 3.11.7", "platform": "Linux-6.1.0-test-x86_64",
                    "kernel": KERNEL,
                    "packages": {"trio": "0.35.0", "uvloop": "0.23.0",
                                 "vivace": "0.1.0", "matplotlib": "3.11.2"}},
        "config": {"runs": runs, "quick": True, "scale": 1.0, "seed": 1,
                   "cpu_time": False, "impls": list(impls), "workloads": list(workloads),
                   "plan": [list(p) for p in plan]},
        "impls": {i: {"available": True} for i in impls},
        "cells": cells,
    }


# ------------------------------------------------------------------------ progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_as_minutes_and_seconds() -> None:
    assert _progress.fmt_duration(0) == "0:00"
    assert _progress.fmt_duration(42.4) == "0:42"
    assert _progress.fmt_duration(90) == "1:30"
    assert _progress.fmt_duration(3723) == "1:02:03"


def test_a_line_per_step_with_elapsed_time_and_what_is_left() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = _progress.Progress(4, stream=out, tty=False, clock=clock)
    for k in range(4):
        progress.step(f"checkpoint 20,000 × uvloop: run {k + 1}/4")
        clock.now += 10.0
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "[1/4] checkpoint 20,000 × uvloop: run 1/4 … 0:00 elapsed, estimating what is left",
        "[2/4] checkpoint 20,000 × uvloop: run 2/4 … 0:10 elapsed, ~0:30 left",
        "[3/4] checkpoint 20,000 × uvloop: run 3/4 … 0:20 elapsed, ~0:20 left",
        "[4/4] checkpoint 20,000 × uvloop: run 4/4 … 0:30 elapsed, ~0:10 left",
    ]
    assert progress.done == 4


def test_skipped_steps_leave_the_count_and_the_estimate() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = _progress.Progress(10, stream=out, tty=False, clock=clock)
    progress.step("a")
    clock.now += 5.0
    progress.skip(6)  # a failed cell is not run again
    progress.step("b")
    assert out.getvalue().splitlines()[-1] == "[2/4] b … 0:05 elapsed, ~0:15 left"


def test_on_a_terminal_one_status_line_is_redrawn_and_messages_stay() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = _progress.Progress(2, stream=out, tty=True, clock=clock)
    progress.step("first")
    progress.log("a result that stays")
    clock.now += 3.0
    progress.step("second")
    progress.close()
    text = out.getvalue()
    assert "\n" not in text.replace("a result that stays\n", "")  # only the log scrolls
    assert text.count("\r\x1b[K[1/2] " + _progress.bar(0.0)) == 2  # redrawn after the log
    assert "\r\x1b[K[2/2] " + _progress.bar(0.5) + " second … 0:03 elapsed" in text
    assert text.endswith("\r\x1b[K")  # close() leaves a clean line


# ------------------------------------------------------------------------ summary


def test_the_summary_has_one_row_per_workload_and_fits_a_screen() -> None:
    doc = make_doc()
    text = _report.summary_table(doc)
    lines = text.splitlines()
    assert len(lines) <= 30, text
    for w in _common.WORKLOADS:
        assert sum(line.startswith(w + " ") for line in lines) == 1, (w, text)
    header = next(line for line in lines if line.startswith("workload"))
    for impl in _common.DEFAULT_IMPLS:
        assert impl in header.split()
    assert "vivace vs best" in header and "vivace-ref vs best" in header
    assert "vivace-poll" not in text  # not run unless asked for
    assert CPU in text and KERNEL in text and "3 run(s)" in text


def test_the_poll_backend_is_a_third_vivace_subject_when_asked_for() -> None:
    doc = make_doc(workloads=("echo",), impls=_common.IMPLS)
    row = next(line for line in _report.summary_table(doc).splitlines()
               if line.startswith("echo "))
    # uvloop (300) is the fastest peer: vivace-poll 300/110 = 2.73×.
    assert row.split()[-6:] == ["3.00×", "uvloop", "0.75×", "uvloop", "2.73×", "uvloop"]


def test_the_summary_compares_each_vivace_engine_with_the_fastest_peer() -> None:
    doc = make_doc(workloads=("checkpoint", "channel_throughput"))
    rows = {line.split()[0]: line for line in _report.summary_table(doc).splitlines()
            if line.split() and line.split()[0] in ("checkpoint", "channel_throughput")}
    # uvloop (300) is the fastest peer: vivace 300/100 = 3×, vivace-ref 300/400 = 0.75×.
    assert rows["checkpoint"].split()[-4:] == ["3.00×", "uvloop", "0.75×", "uvloop"]
    assert rows["channel_throughput"].split()[-4:] == ["3.00×", "uvloop", "0.09×", "uvloop"]
    assert rows["checkpoint"].split()[2:7] == ["100", "400", "1,500", "900", "300"]


def test_the_summary_shows_failed_and_missing_implementations() -> None:
    doc = make_doc(workloads=("checkpoint",), impls=("vivace", "trio", "uvloop"))
    for c in doc["cells"]:
        if c["impl"] == "uvloop":
            c.clear()
            c.update(workload="checkpoint", n=20_000, impl="uvloop", status="n/a")
        elif c["impl"] == "vivace":
            c.update(status="error", error="boom")
    row = next(line for line in _report.summary_table(doc).splitlines()
               if line.startswith("checkpoint"))
    assert row.split()[2:] == ["error", "1,500", "n/a", "—"]


# ------------------------------------------------------------------------ spread


def test_the_spread_pairs_the_runs_of_each_round() -> None:
    subject = make_cell("checkpoint", 10, "vivace", 100.0, 3)  # 100, 90, 120
    baseline = make_cell("checkpoint", 10, "trio", 1000.0, 3)  # 1000, 900, 1200
    subject["ns_per_op_runs"] = [100.0, 90.0, 120.0]
    baseline["ns_per_op_runs"] = [1200.0, 900.0, 1000.0]
    ratio, low, high = _chart.ratio_spread(subject, baseline)
    assert ratio == pytest.approx(10.0)
    assert (low, high) == pytest.approx((1000 / 120, 12.0))


def test_without_per_run_values_the_spread_is_the_widest_combination() -> None:
    subject = make_cell("checkpoint", 10, "vivace", 100.0, 3)
    baseline = make_cell("checkpoint", 10, "trio", 1000.0, 3)
    del subject["ns_per_op_runs"], baseline["ns_per_op_runs"]
    _ratio, low, high = _chart.ratio_spread(subject, baseline)
    assert (low, high) == pytest.approx((900 / 120, 1200 / 90))


def test_the_caption_names_runs_spread_and_machine() -> None:
    text = _chart.caption(make_doc(runs=5))
    assert "5 runs per cell" in text
    assert "whiskers = min–max of the per-round ratios" in text
    for part in (CPU, "2 cores", "CPython 3.11.7", KERNEL):
        assert part in text
    old = _chart.caption(make_doc(per_run=False))
    assert "no per-run values saved" in old


# ------------------------------------------------------------------------ chart


@pytest.fixture
def plt() -> Any:
    pytest.importorskip("matplotlib", reason="the chart needs the bench extra")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def _bars(fig: Any) -> list[Any]:
    from matplotlib.container import BarContainer

    return [patch for ax in fig.axes for cont in ax.containers
            if isinstance(cont, BarContainer) for patch in cont]


def test_one_panel_per_baseline_with_bars_from_1x(plt: Any) -> None:
    fig = _chart.chart_figure(make_doc())
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["vs trio", "vs asyncio", "vs uvloop"]
    bars = _bars(fig)
    # 11 workloads x 2 vivace engines x 3 baselines
    assert len(bars) == 66
    for bar in bars:
        assert bar.get_x() == pytest.approx(1.0)
    ends = sorted(b.get_x() + b.get_width() for b in bars)
    assert ends[0] == pytest.approx(300 / 3200)  # vivace-ref 8× slower in one workload
    assert ends[-1] == pytest.approx(15.0)  # vivace vs trio
    for ax in fig.axes:
        low, high = ax.get_xlim()
        assert ax.get_xscale() == "log"
        assert low * high == pytest.approx(1.0)  # centred on 1×
        assert high > 15.0


def test_whiskers_show_the_spread_of_every_bar(plt: Any) -> None:
    from matplotlib.container import ErrorbarContainer

    doc = make_doc(workloads=("checkpoint",), impls=("vivace", "trio"))
    fig = _chart.chart_figure(doc)
    (ax,) = fig.axes
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    (segment,) = bars.lines[2][0].get_segments()
    expected = _chart.ratio_spread(doc["cells"][0], doc["cells"][1])
    assert segment[0][0] == pytest.approx(expected[1])
    assert segment[1][0] == pytest.approx(expected[2])
    assert expected[1] < expected[0] < expected[2]


def test_the_figure_caption_has_the_run_count_and_the_machine(plt: Any) -> None:
    fig = _chart.chart_figure(make_doc(runs=7))
    text = " ".join(t.get_text().replace("\n", " ") for t in fig.texts)
    assert "7 runs per cell" in text and "whiskers" in text
    for part in (CPU, "2 cores", "CPython 3.11.7", KERNEL):
        assert part in text


def test_no_label_overlaps_another(plt: Any) -> None:
    fig = _chart.chart_figure(make_doc())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = list(fig.texts)  # the caption and the suptitle
    for legend in fig.legends:
        texts += legend.get_texts()
    for ax in fig.axes:
        texts += [*ax.texts, ax.title, ax.xaxis.label, *ax.get_xticklabels(),
                  *ax.get_yticklabels()]
    shown = [t for t in texts if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in shown]
    assert len(boxes) > 100
    width, height = fig.canvas.get_width_height()
    for name, box in boxes:
        assert box.x0 >= 0 and box.y0 >= 0, name
        assert box.x1 <= width and box.y1 <= height, name  # nothing cut off
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), (a, b)


def test_without_vivace_the_peers_are_compared_with_the_first_baseline(plt: Any) -> None:
    fig = _chart.chart_figure(make_doc(impls=("trio", "asyncio", "uvloop")))
    assert [ax.get_title() for ax in fig.axes] == ["vs trio"]
    assert len(_bars(fig)) == 2 * len(_common.WORKLOADS)


def test_a_saved_result_is_redrawn_from_the_command_line(tmp_path: pathlib.Path,
                                                         plt: Any) -> None:
    saved = tmp_path / "latest.json"
    saved.write_text(json.dumps(make_doc(per_run=False)))
    proc = subprocess.run([sys.executable, str(BENCH / "_chart.py"), str(saved)],
                          capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------ run.py


def fake_worker(fail: str | None = None) -> Any:
    speeds = itertools.count(1)

    def call_worker(args: list[str], timeout: float) -> dict:
        impl = args[args.index("--impl") + 1]
        if "--probe" in args:
            return {"ok": True, "version": "1.0", "engine": "compiled"}
        if impl == fail:
            return {"ok": False, "error": "synthetic failure"}
        ns = SPEEDS[impl] + next(speeds)  # every run differs a little
        return {"ok": True, "wall_ns_per_op": ns, "cpu_ns_per_op": ns,
                "elapsed_s": ns / 1e6, "cpu_s": ns / 1e6, "peak_rss_kib": 1000,
                "rss_delta_kib": 0, "run_overhead_s": 0.0001}

    return call_worker


def test_a_run_reports_every_step_and_ends_with_the_summary(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench_run, "call_worker", fake_worker())
    status = bench_run.main(["--workloads", "checkpoint,spawn", "--impls", "vivace,trio",
                             "--runs", "3", "--seed", "7", "--no-chart",
                             "--out", str(tmp_path)])
    assert status == 0
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("[")]
    assert len(steps) == 12  # 2 workloads x 2 impls x 3 runs
    for k, line in enumerate(steps, 1):
        assert line.startswith(f"[{k}/12] ")
        assert " elapsed, " in line
    assert "[1/12] checkpoint 200,000 × " in steps[0]
    assert "run 3/3" in steps[-1]
    summary = out[out.index("Summary:"):]
    assert len(summary.splitlines()) <= 30
    doc = json.loads((tmp_path / "latest.json").read_text())
    for cell in doc["cells"]:
        assert len(cell["ns_per_op_runs"]) == 3
        assert cell["ns_per_op"]["median"] == sorted(cell["ns_per_op_runs"])[1]


def test_a_failing_cell_shortens_the_count(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench_run, "call_worker", fake_worker(fail="trio"))
    status = bench_run.main(["--workloads", "checkpoint", "--impls", "vivace,trio",
                             "--runs", "3", "--seed", "7", "--no-chart",
                             "--out", str(tmp_path)])
    assert status == 1
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("[")]
    # trio fails in round 1 and is not run again: 3 vivace runs + 1 trio run.
    assert steps[-1].startswith("[4/4] ")
    row = next(line for line in out.splitlines() if line.startswith("checkpoint "))
    # vivace's median, then trio's "error" (no peer ran, so no "vs best" column)
    assert row.split()[3:] == ["error"]


# ------------------------------------------------------------------------ scripts/bench


def test_scripts_bench_times_every_set_up_step(tmp_path: pathlib.Path) -> None:
    # scripts/bench with stand-ins for _venv.sh (two set-up steps announced through
    # vv_log, as the real one does), ensure-wrk and the interpreter.
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "run.py").write_text("")
    (scripts / "bench").write_text((SCRIPTS / "bench").read_text())
    (scripts / "_venv.sh").write_text(
        'VV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"\n'
        'vv_log() { printf "%s\\n" "[vivace] $*" >&2; }\n'
        'vv_die() { printf "%s\\n" "[vivace] error: $*" >&2; exit 1; }\n'
        'vv_setup_venv() { vv_log "creating .venv"; vv_log "installing -e .[$1]"; '
        'VV_PY=/bin/echo; }\n')
    (scripts / "ensure-wrk").write_text("#!/bin/sh\nexit 0\n")
    for name in ("bench", "ensure-wrk"):
        (scripts / name).chmod(0o755)
    proc = subprocess.run([str(scripts / "bench"), "--quick"], capture_output=True,
                          text=True, timeout=50, env={**os.environ, "VIVACE_NO_APT": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "benchmarks/run.py --quick\n"  # what the interpreter was given
    lines = proc.stderr.splitlines()
    assert all(line.startswith("[bench 0:0") for line in lines), lines
    said = [line.split("] ", 1)[1] for line in lines]
    assert said[0].startswith("set-up 1/2: .venv with the test,bench extras")
    # Whole seconds of wall time: a loaded machine can make a stand-in step straddle one.
    took = [re.sub(r"took \d+ s$", "took N s", line) for line in said[1:5]]
    assert took == ["  creating .venv ...", "  ... took N s",
                    "  installing -e .[test,bench] ...", "  ... took N s"]
    assert said[5].startswith("set-up 1/2 done")
    assert said[6].startswith("set-up 2/2: wrk")
    assert said[7] == "set-up done in 0:00; starting benchmarks/run.py --quick"
