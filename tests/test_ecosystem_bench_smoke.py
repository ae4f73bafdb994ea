"""The ecosystem benchmark (benchmarks/ecosystem/run.py, issue 10) runs and checks itself.

At tiny size, on this process's engine: httpx (12 GETs, 4 concurrent, against the
neutral server) and hypercorn's trio / asyncio workers (the checked 20-request
keep-alive probe and the shutdown request; no wrk), each on vivace installed as trio,
the real trio and asyncio, every one in its own fresh process. The workers verify the
responses and the counts on both sides; this test requires that every cell passed,
that vivace ran on this process's engine and really stood in for trio, and that the
trio cell ran the real trio. uvloop is left to the benchmark itself (it may be absent
in a test environment). Nothing here depends on timing: the rates the runner computes
are not looked at.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from vivace._core import _impl

RUNNER = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "ecosystem" / "run.py"
VIVACE = "vivace" if _impl.ENGINE == "compiled" else "vivace-ref"
IMPLS = (VIVACE, "trio", "asyncio")
# A hang guard, not a timing assertion: the run takes ~8 s on an idle 2-core machine.
# It stays below pytest's 60 s timeout so that a hang reports the runner's output.
BUDGET = 50.0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("ecosystem-smoke")
    cmd = [sys.executable, str(RUNNER), "--smoke", "--impls", ",".join(IMPLS),
           "--out", str(out), "--timeout", str(BUDGET / 3)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUDGET,
                              env=dict(os.environ))
    except subprocess.TimeoutExpired as exc:
        text = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"the smoke run took over {BUDGET} s; its output so far:\n{text}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "ecosystem-smoke.json").read_text())
    assert (out / "ecosystem-smoke.md").read_text().startswith("# vivace ecosystem smoke")
    return doc


def _cell(doc: dict, workload: str, impl: str) -> dict:
    found = [c for c in doc["cells"] if c["workload"] == workload and c["impl"] == impl]
    assert len(found) == 1, doc["cells"]
    return found[0]


@pytest.mark.parametrize("impl", IMPLS)
def test_httpx_client_gets_every_response(smoke: dict, impl: str) -> None:
    cell = _cell(smoke, "httpx", impl)
    assert cell["status"] == "ok", cell.get("error")
    (run,) = cell["raw"]
    # The worker checked status and body of each of them and the server's count.
    assert run["requests"] == 12
    # Keep-alive: at least two requests per connection (12 + 8 warm-up over a pool of
    # 4). Not "at most 4": httpcore replaces a connection left idle past its 5 s
    # keep-alive expiry, which a stalled, overloaded machine could cause.
    assert 1 <= cell["connections"] <= 10
    assert cell["ran_on"]["backend"] == ("asyncio" if impl == "asyncio" else "trio")


@pytest.mark.parametrize("impl", IMPLS)
def test_hypercorn_answers_the_checked_probe(smoke: dict, impl: str) -> None:
    cell = _cell(smoke, "hypercorn", impl)
    assert cell["status"] == "ok", cell.get("error")
    assert cell["load"]["tool"] == "probe"
    assert cell["load"]["probe_requests"] == 20
    if impl == "asyncio":
        assert cell["ran_on"]["loop_module"] == "asyncio.unix_events"


def test_vivace_stood_in_for_trio_on_this_engine(smoke: dict) -> None:
    info = smoke["impls"][VIVACE]
    assert info["available"], info
    assert info["engine"] == ("compiled" if _impl.ENGINE == "compiled" else "python")
    assert info["trio_metadata_version"] == "0.35.0"
    for workload in ("httpx", "hypercorn"):
        # ``import trio`` gave vivace's own module (not a copy under trio's name).
        ran = _cell(smoke, workload, VIVACE)["ran_on"]["trio_module"]
        assert ran.startswith("vivace from ") and ran.endswith(os.sep + "vivace"), ran
        real = _cell(smoke, workload, "trio")["ran_on"]["trio_module"]
        assert real.startswith("trio from ") and real.endswith(os.sep + "trio"), real
