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
    # Each workload reported "ok" for each engine (nothing silently "n/a").
    # 10 workloads x 2 engines.
    assert proc.stdout.count(" ok (") == 20, proc.stdout
