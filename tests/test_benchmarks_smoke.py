"""Every benchmark workload runs (and passes its own result checks) at tiny scale on
both vivace engines. Benchmarks themselves never run in the test suite; this only keeps
them from rotting.

Timeouts: a smoke run takes ~20 s on an idle 2-core machine and a few times that when
both cores are busy, so the project-wide 60 s pytest timeout does not fit. Each test
gives its subprocess a budget with room for a loaded machine, caps each benchmark
worker below that budget (so a hung cell is reported by the runner, not killed with
the rest), and raises its own pytest timeout above the budget, so that the
subprocess's own timeout, which shows its output, is the one that fires.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

RUNNER = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

ALL_WORKLOADS_BUDGET = 300
HTTP_ONLY_BUDGET = 120
# Between the subprocess's end and pytest-timeout: interpreter start-up and checks.
MARGIN = 60


def _smoke(*args: str, budget: float, cell_timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(RUNNER), "--smoke", "--impls", "vivace,vivace-ref",
           "--timeout", str(cell_timeout), *args]
    # Both engines on the platform's default I/O backend: the suite may run under
    # VIVACE_IO_BACKEND=kqueue, which on Linux is an emulation for the reference engine
    # only, and the benchmarks' own backend choice (vivace-poll) is not what this checks.
    env = {k: v for k, v in os.environ.items() if k != "VIVACE_IO_BACKEND"}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=budget, env=env)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"the smoke run took over {budget} s; its output so far:\n{out}")


@pytest.mark.timeout(ALL_WORKLOADS_BUDGET + MARGIN)
def test_every_workload_runs_on_both_vivace_engines() -> None:
    proc = _smoke(budget=ALL_WORKLOADS_BUDGET, cell_timeout=ALL_WORKLOADS_BUDGET / 3)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Each workload reported "ok" for each engine (nothing silently "n/a"):
    # 11 workloads (incl. echo and http) x 2 engines. http is loaded by wrk when it is
    # installed, else by the stdlib client, so this never depends on apt.
    assert proc.stdout.count(" ok (") == 22, proc.stdout
    for workload in ("echo", "http"):
        assert proc.stdout.count(f"  {workload} ") == 2, proc.stdout


@pytest.mark.timeout(HTTP_ONLY_BUDGET + MARGIN)
def test_http_workload_runs_with_the_stdlib_client() -> None:
    # The fallback load generator used where wrk is not installed.
    proc = _smoke("--workloads", "http", "--http-client", "python",
                  budget=HTTP_ONLY_BUDGET, cell_timeout=HTTP_ONLY_BUDGET / 3)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "http load generator: python" in proc.stdout, proc.stdout
    assert proc.stdout.count(" ok (") == 2, proc.stdout
