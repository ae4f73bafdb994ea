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

# Implementations, in the order the tables list them.
IMPLS = ("vivace", "vivace-ref", "trio", "asyncio", "uvloop")
# Implementations driven through the trio API (``mod.run(fn, mod, n, data)``).
TRIO_API_IMPLS = frozenset({"vivace", "vivace-ref", "trio"})
# Implementations the ratio columns compare against.
BASELINES = ("trio", "asyncio", "uvloop")
# Implementations whose ratios against the baselines are the point of the suite.
SUBJECTS = ("vivace", "vivace-ref")

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
}
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
}
# --scaling --quick drops the 1,000,000 points.
QUICK_SCALING_MAX = 100_000

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


def echo_warmup(n: int) -> int:
    return min(n, 2_000)


def echo_config(n: int) -> dict:
    """The ``echo`` server's settings; identical for every implementation."""
    return {"connections": ECHO_CONNECTIONS, "size": ECHO_SIZE,
            "warmup": echo_warmup(n), "max_seconds": ECHO_MAX_SECONDS}


# Which clock a workload's headline ns/op comes from. "wall" is perf_counter around the
# run; "cpu" is process_time around the run. ``timers`` is CPU time: its wall time has a
# floor of TIMER_MAX_DELAY spent idle in the poller (10 ms / 1,000 sleepers = 10 us per
# op), which would swamp the cost of the deadline machinery at small n. Both clocks are
# always recorded in latest.json.
METRIC = {"timers": "cpu"}

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
