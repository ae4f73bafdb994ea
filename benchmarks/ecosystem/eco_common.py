"""Settings shared by the ecosystem benchmark's runner, worker and load processes.

Design notes: stdlib only, imports no async framework, so that every process (the
runner, the neutral server, the load drivers) can import it. Everything that must be
identical for every implementation of a cell (sizes, the response body, time limits)
is decided here. The module names under ``benchmarks/ecosystem/`` all differ from those
of ``benchmarks/`` because both directories are on ``sys.path`` (the ecosystem code
reuses ``_common``, ``_worker``, ``run``, ``_report`` and ``http_client`` from there).
"""

from __future__ import annotations

import sys
from pathlib import Path

ECO = Path(__file__).resolve().parent
BENCH = ECO.parent
REPO = BENCH.parent


def add_paths() -> None:
    """Put ``benchmarks/`` first and ``benchmarks/ecosystem/`` second on sys.path.

    ``benchmarks/`` must win: its ``run.py`` shares a name with this directory's entry
    point, and the harness modules reused from it are imported by bare name.
    """
    for path in (str(ECO), str(BENCH)):
        while path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


IMPLS = ("vivace", "vivace-ref", "trio", "asyncio", "uvloop")
TRIO_FAMILY = frozenset({"vivace", "vivace-ref", "trio"})
VIVACE_IMPLS = frozenset({"vivace", "vivace-ref"})
BASELINES = ("trio", "asyncio", "uvloop")
WORKLOADS = ("httpx", "hypercorn")

# httpx: REQUESTS measured GETs through one httpx.AsyncClient, CONCURRENCY tasks each
# issuing one request at a time over a keep-alive pool of CONCURRENCY connections, after
# an unmeasured warm-up of httpx_warmup() requests (opens the pool, warms the caches).
HTTPX_REQUESTS = 2_000
HTTPX_CONCURRENCY = 100
# run.py measures one cell per concurrency level. At 100, httpcore 1.0's pool dominates:
# for every request it scans all connections for each queued request (O(connections x
# waiting requests)), the same pure-Python work on every backend; at 10 the HTTP
# stack's per-request work and the async library under it are what is measured.
HTTPX_CONCURRENCY_CELLS = (100, 10)
HTTPX_QUICK_REQUESTS = 500
HTTPX_SMOKE_REQUESTS = 12
HTTPX_SMOKE_CONCURRENCY = 4
# Client-side hang guard (httpx timeout per request, and the whole run).
HTTPX_REQUEST_TIMEOUT = 30.0
HTTPX_MAX_SECONDS = 300.0

# hypercorn: seconds of wrk load (-c HYPERCORN_CONNECTIONS, keep-alive) against one
# hypercorn worker serving the hello-world ASGI app.
HYPERCORN_SECONDS = 5
HYPERCORN_QUICK_SECONDS = 1
HYPERCORN_CONNECTIONS = 50
# --smoke: the driver only runs its checked keep-alive probe (no wrk, no timing).
SMOKE_TOOL = "probe"
HYPERCORN_TOOLS = ("auto", "wrk", "python", "probe")

DEFAULT_RUNS = 5
QUICK_RUNS = 3

# The same response everywhere: the neutral server of the httpx workload sends it
# verbatim, the ASGI app of the hypercorn workload sends the same status, content type
# and body (what ``benchmarks/http_client.py`` checks).
BODY = b"Hello, world!"
CONTENT_TYPE = b"text/plain"
FIXED_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
                  b"\r\n%s" % (len(BODY), BODY))


def httpx_warmup(requests: int, concurrency: int) -> int:
    return min(requests, 2 * concurrency)


DESCRIPTIONS = {
    "httpx": "n GET requests with one `httpx.AsyncClient` (httpx 0.28 / httpcore 1.0, "
    "started with `anyio.run`), CONCURRENCY tasks each with one request in flight over a "
    "keep-alive pool of as many connections, against a neutral HTTP/1.1 server in a "
    "separate process (an `asyncio.Protocol` on uvloop that answers a fixed 200 "
    "response, the same for every client); after an unmeasured warm-up of "
    "2 x CONCURRENCY requests",
    "hypercorn": "hypercorn 0.18 serving a hello-world ASGI app (200, text/plain, 13-byte "
    "body) in the worker process: `hypercorn.trio.serve` for vivace / vivace-ref / trio, "
    "`hypercorn.asyncio.serve` for asyncio / uvloop; load from a separate process "
    "(`wrk -t 1 -c 50`, keep-alive), after a checked 20-request keep-alive probe",
}
