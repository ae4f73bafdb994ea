"""Shared definitions for the benchmark runner and its worker.

Design notes: this module is imported by both ``run.py`` (the orchestrator) and
``_worker.py`` (one measurement per fresh process), so it must stay stdlib-only and
must import neither trio, asyncio's event-loop policies, uvloop nor vivace.
Everything that must be identical for every implementation of one cell — the size, the
random sleeper delays, which metric is reported — is decided here, not in the workload
modules.
"""

from __future__ import annotations

import random
import sys

# Implementations, in the order the tables list them. vivace-poll is the compiled engine
# on the poll(2) I/O backend (VIVACE_IO_BACKEND=poll) instead of the platform default.
IMPLS = ("vivace", "vivace-ref", "vivace-poll", "trio", "asyncio", "uvloop")
# What runs when --impls is not given: vivace-poll only answers "what does poll cost
# against epoll" (benchmarks/README.md), so it is asked for by name.
DEFAULT_IMPLS = tuple(i for i in IMPLS if i != "vivace-poll")
# Implementations driven through the trio API (``mod.run(fn, mod, n, data)``).
TRIO_API_IMPLS = frozenset({"vivace", "vivace-ref", "vivace-poll", "trio"})
# The I/O backend an implementation forces (None: whatever VIVACE_IO_BACKEND or the
# platform's default says).
IO_BACKEND = {"vivace-poll": "poll"}
# Implementations the ratio columns compare against.
BASELINES = ("trio", "asyncio", "uvloop")
# Implementations whose ratios against the baselines are the point of the suite.
SUBJECTS = ("vivace", "vivace-ref", "vivace-poll")

WORKLOADS = (
    "checkpoint",
    "spawn",
    "timers",
    "move_on_after",
    "cancel_scope",
    "pingpong_channel",
    "pingpong_event",
    "channel_throughput",
    "lock_contention",
    "echo",
    "http",
)

DEFAULT_SIZES = {
    "checkpoint": 200_000,
    "spawn": 100_000,
    "timers": 50_000,
    "move_on_after": 100_000,
    "cancel_scope": 200_000,
    "pingpong_channel": 100_000,  # round trips
    "pingpong_event": 100_000,  # round trips
    "channel_throughput": 100_000,  # items
    "lock_contention": 100_000,  # acquisitions, over LOCK_TASKS tasks
    "echo": 100_000,  # measured round trips over ECHO_CONNECTIONS connections
    "http": 10,  # SECONDS of load (the load generator is duration-based), not a count
}
# Where "size / QUICK_DIVISOR" or SMOKE_N does not fit (http's size is a duration in
# whole seconds: wrk takes no fractions).
QUICK_SIZES = {"http": 1}  # keeps --quick under 2 minutes on a busy 2-core machine
SMOKE_SIZES = {"http": 1}
QUICK_DIVISOR = 10
DEFAULT_RUNS = 7
QUICK_RUNS = 3
SMOKE_N = 50

# --scaling: per-op cost should stay flat as n grows (deadline heap and run queue are
# O(log n) / O(1) per op). Sizes are 1x/10x/100x(/1000x) of a 1,000 base.
SCALING_SIZES = {
    "checkpoint": (1_000, 10_000, 100_000, 1_000_000),
    "spawn": (1_000, 10_000, 100_000),
    "timers": (1_000, 10_000, 100_000, 1_000_000),
    "echo": (10, 100, 1_000),  # concurrent connections (see SCALING_AXIS)
}
# --scaling --quick drops the 1,000,000 points.
QUICK_SCALING_MAX = 100_000
# Scaled workloads whose scaling size is not n: echo scales the number of concurrent
# connections, each point measuring the same number of round trips (n below).
SCALING_AXIS = {"echo": "connections"}
ECHO_SCALING_REQUESTS = 50_000
QUICK_ECHO_SCALING_REQUESTS = 20_000

# Sleepers in the ``timers`` workload sleep a uniformly random delay in this range, so
# that every one of them really expires through the deadline heap and the heap sees
# deadlines in random order. The same seeded delays are used by every implementation.
TIMER_MIN_DELAY = 0.001
TIMER_MAX_DELAY = 0.010
TIMER_SEED = 20240611

# ``channel_throughput``: the memory channel's buffer / the asyncio.Queue's maxsize.
CHANNEL_BUFFER = 100
# ``lock_contention``: this many tasks share n acquisitions of one lock (n // LOCK_TASKS
# each, the remainder spread over the first tasks), each holding it across a checkpoint.
LOCK_TASKS = 10

# ``echo``: a TCP echo server (the worker process, one per implementation) driven over
# loopback by ``echo_client.py``, a separate stdlib-only process (blocking sockets +
# selectors). ECHO_CONNECTIONS connections, one ECHO_SIZE-byte request in flight on
# each; n is the number of round trips in the measured window (all connections
# together), after an unmeasured warm-up of echo_warmup(n) round trips. The client gives
# up after ECHO_MAX_SECONDS; the server stops when every connection has closed (or
# ECHO_MAX_SECONDS + 10 s later).
ECHO_CONNECTIONS = 50
ECHO_SIZE = 1024
ECHO_MAX_SECONDS = 120.0
# The listen backlog of the echo and http servers, passed explicitly on both sides
# (asyncio's default is 100, trio's the OS maximum): large enough that the 1,000
# connections of the scaling run never wait for a SYN retransmit.
LISTEN_BACKLOG = 1024


def echo_warmup(n: int, connections: int = ECHO_CONNECTIONS) -> int:
    return min(n, max(2_000, 2 * connections))


def echo_config(n: int, connections: int | None = None) -> dict:
    """The ``echo`` server's settings; identical for every implementation."""
    conns = connections or ECHO_CONNECTIONS
    return {"connections": conns, "size": ECHO_SIZE, "warmup": echo_warmup(n, conns),
            "max_seconds": ECHO_MAX_SECONDS, "backlog": LISTEN_BACKLOG}


# ``http``: an HTTP/1.1 hello-world server built on h11 (the same sans-I/O parser on
# every side, so the parsing cost is identical) in the worker process, loaded over
# loopback for n SECONDS by a separate process: ``wrk`` when it is installed, else
# ``http_client.py`` (stdlib only). HTTP_CONNECTIONS keep-alive connections, one
# request in flight on each. Every response is "200 OK" with HTTP_BODY.
HTTP_CONNECTIONS = 50
HTTP_BODY = b"Hello, world!"
HTTP_SHUTDOWN_TARGET = b"/shutdown"
# Keep-alive requests on one connection, checked field by field with http.client
# before the load (they also warm the server's code path up).
HTTP_PROBE_REQUESTS = 20
# The load generator gives up this long after the duration; the server stops by
# itself HTTP_GRACE_SECONDS later than that.
HTTP_EXTRA_SECONDS = 60.0
HTTP_GRACE_SECONDS = 10.0
HTTP_CLIENTS = ("auto", "wrk", "python")


def http_config(seconds: int, connections: int | None = None) -> dict:
    """The ``http`` server's settings; identical for every implementation."""
    return {"connections": connections or HTTP_CONNECTIONS, "duration_s": seconds,
            "body": HTTP_BODY, "shutdown_target": HTTP_SHUTDOWN_TARGET,
            "backlog": LISTEN_BACKLOG,
            "max_seconds": seconds + HTTP_EXTRA_SECONDS + HTTP_GRACE_SECONDS}


def raise_nofile_limit(needed: int) -> None:
    """Raise RLIMIT_NOFILE's soft limit (up to the hard limit) if it is below *needed*.

    A server or client with 1,000 connections needs more than the common default soft
    limit of 1,024 descriptors. Raises OSError if even the hard limit is too low.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == infinity or soft >= needed:
        return
    if hard != infinity and hard < needed:
        raise OSError(f"RLIMIT_NOFILE: {needed} descriptors needed, hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == infinity else hard, hard))


def size_label(workload: str, n: int, axis: str | None = None) -> str:
    """How a cell's size reads in tables: a count, a duration, or a connection count."""
    if axis == "connections":
        return f"{n:,} conns"
    if workload == "http":
        return f"{n:g} s"
    return f"{n:,}"


# Which clock a workload's headline ns/op comes from. "wall" is perf_counter around the
# run; "cpu" is process_time around the run. ``timers`` is CPU time: its wall time has a
# floor of TIMER_MAX_DELAY spent idle in the poller (10 ms / 1,000 sleepers = 10 us per
# op), which would swamp the cost of the deadline machinery at small n. Both clocks are
# always recorded in latest.json.
METRIC = {"timers": "cpu"}
# Workloads served to a separate client process: their ns/op is per request, their
# extra figures (req/s, server CPU per request) come from the client's window.
SERVER_WORKLOADS = ("echo", "http")

# One line per workload for the Markdown notes and the README.
DESCRIPTIONS = {
    "checkpoint": "one task, n x `await trio.lowlevel.checkpoint()` "
    "(asyncio: `await asyncio.sleep(0)`)",
    "spawn": "n no-op tasks started in one nursery and waited for "
    "(asyncio: `TaskGroup.create_task`)",
    "timers": "n concurrent sleepers, each `await trio.sleep(d)` with d uniform in "
    f"{TIMER_MIN_DELAY * 1000:g}-{TIMER_MAX_DELAY * 1000:g} ms; per sleeper, CPU time "
    "(asyncio: `asyncio.sleep(d)` in a TaskGroup)",
    "move_on_after": "n x `with trio.move_on_after(10): await trio.lowlevel.checkpoint()` "
    "(asyncio: `async with asyncio.timeout(10): await asyncio.sleep(0)`)",
    "cancel_scope": "n x `with trio.CancelScope(): pass` "
    "(asyncio nearest: `async with asyncio.timeout(None): pass`, an async context "
    "manager, so not identical)",
    "pingpong_channel": "two tasks bounce a token n times over two "
    "`trio.open_memory_channel(0)`; per round trip "
    "(asyncio: two `asyncio.Queue(maxsize=1)`, as it has no rendezvous queue)",
    "pingpong_event": "two tasks alternate n times, each waiting on its own fresh "
    "`trio.Event()` that the other sets; per round trip (asyncio: `asyncio.Event`)",
    "channel_throughput": f"one producer sends n ints through "
    f"`trio.open_memory_channel({CHANNEL_BUFFER})` to one consumer; per item "
    f"(asyncio: `asyncio.Queue(maxsize={CHANNEL_BUFFER})`)",
    "lock_contention": f"{LOCK_TASKS} tasks share n acquisitions of one `trio.Lock()`, "
    "each `async with lock: await trio.lowlevel.checkpoint()`; per acquisition "
    "(asyncio: `asyncio.Lock` around `await asyncio.sleep(0)`)",
    "echo": f"TCP echo server over loopback, {ECHO_CONNECTIONS} connections x "
    f"{ECHO_SIZE} B request/response, driven by a separate stdlib client process "
    "(blocking sockets + selectors, the same for every server); per round trip, wall "
    "time of the client's measured window (= 1 / req/s). trio API: `trio.serve_tcp` + "
    "`SocketStream.receive_some` / `send_all`; asyncio: `asyncio.start_server` + "
    "`reader.read` / `writer.write` + `drain`",
    "http": f"HTTP/1.1 hello-world server (h11 on both sides) over loopback, "
    f"{HTTP_CONNECTIONS} keep-alive connections, n = seconds of load from `wrk` (or the "
    "stdlib `http_client.py` where wrk is missing); per request, wall time "
    "(= 1 / req/s). trio API: `trio.serve_tcp` + `receive_some` / `send_all`; asyncio: "
    "`asyncio.start_server` + `reader.read` / `writer.write` + `drain`",
}

# Environment variables that change interpreter or event-loop speed; the runner strips
# them from the workers' environment so that every cell runs in a normal mode.
SLOW_MODE_ENV = (
    "PYTHONASYNCIODEBUG",
    "PYTHONDEVMODE",
    "PYTHONTRACEMALLOC",
    "PYTHONMALLOC",
    "PYTHONMALLOCSTATS",
    "PYTHONPROFILEIMPORTTIME",
)


def metric_of(workload: str) -> str:
    return METRIC.get(workload, "wall")


def timer_delays(n: int) -> list[float]:
    """The sleepers' delays for ``timers`` of size n: seeded, so identical per impl."""
    rng = random.Random(TIMER_SEED + n)
    lo, span = TIMER_MIN_DELAY, TIMER_MAX_DELAY - TIMER_MIN_DELAY
    return [lo + span * rng.random() for _ in range(n)]


def lock_shares(n: int) -> list[int]:
    """Acquisitions per task for ``lock_contention`` of size n (they sum to n)."""
    base, extra = divmod(n, LOCK_TASKS)
    return [base + (1 if k < extra else 0) for k in range(LOCK_TASKS)]


def prepare(workload: str, n: int):
    """Build a workload's input outside the timed section (None for most)."""
    if workload == "timers":
        return timer_delays(n)
    if workload == "lock_contention":
        return lock_shares(n)
    return None


def scaled(n: int, factor: float) -> int:
    return max(1, int(round(n * factor)))


def server_port(given: int | None) -> int:
    """A load client's target port: ``--port`` if given, else the line the worker
    writes to the client's stdin once its server listens."""
    if given is not None:
        return given
    line = sys.stdin.readline()
    if not line.strip():
        raise RuntimeError("no port on stdin (the server did not start)")
    return int(line)
