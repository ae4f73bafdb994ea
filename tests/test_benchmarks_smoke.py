"""Every benchmark workload runs (and passes its own result checks) at tiny scale on
both vivace engines. Benchmarks themselves never run in the test suite; this only keeps
them from rotting."""

from __future__ import annotations

import pathlib
import subprocess
import sys

RUNNER = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


def test_every_workload_runs_on_both_vivace_engines() -> None:
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--smoke", "--impls", "vivace,vivace-ref"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Each workload reported "ok" for each engine (nothing silently "n/a"):
    # 11 workloads (incl. echo and http) x 2 engines. http is loaded by wrk when it is
    # installed, else by the stdlib client, so this never depends on apt.
    assert proc.stdout.count(" ok (") == 22, proc.stdout
    for workload in ("echo", "http"):
        assert proc.stdout.count(f"  {workload} ") == 2, proc.stdout


def test_http_workload_runs_with_the_stdlib_client() -> None:
    # The fallback load generator used where wrk is not installed.
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--smoke", "--impls", "vivace,vivace-ref",
         "--workloads", "http", "--http-client", "python"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "http load generator: python" in proc.stdout, proc.stdout
    assert proc.stdout.count(" ok (") == 2, proc.stdout
