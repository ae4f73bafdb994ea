"""Micro-benchmark of the kernel: the cost of ``await vivace.lowlevel.checkpoint()``.

    python benchmarks/micro_kernel.py [--runs 7] [--n 200000]

Every measurement is a fresh subprocess (``VIVACE_REQUIRE_EXTENSIONS=1`` for the compiled
engine, ``VIVACE_NO_EXTENSIONS=1`` for the reference); each number is the median over
``--runs`` processes, timed with ``time.perf_counter`` around the awaiting loop only.

Workloads (all make N checkpoints in total):

* ``one_task``  -- one task, N checkpoints: every batch holds one task, so the per-batch
  work (``KernelBase.run_busy``'s checks, and every ~0.2 ms a full iteration of the Python
  run loop with its epoll poll) is paid once per checkpoint.
* ``batch100``  -- 100 tasks x N/100 checkpoints: batches of 100, so the per-batch work is
  spread over 100 steps.
* ``kernel``    -- the kernel alone: a minimal ``KernelBase`` subclass steps 100 tasks x
  N/100 checkpoints with ``run_batch``, no run loop, no I/O poll, a plain-attribute cancel
  status. This is the floor the engine's own step + trap + awaitable cost.

From these, per checkpoint: ``loop`` = per-batch cost of the run loop
= (one_task - batch100) * 100 / 99; ``in-run step`` = batch100 - loop / 100 (the step as it
runs inside a real run, including the Python-layer work reached from it, such as the cancel
status lookup); ``python layer`` = in-run step - kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ENGINES = {
    "compiled": {"VIVACE_REQUIRE_EXTENSIONS": "1", "VIVACE_NO_EXTENSIONS": ""},
    "reference": {"VIVACE_NO_EXTENSIONS": "1", "VIVACE_REQUIRE_EXTENSIONS": ""},
}
WORKLOADS = ("one_task", "batch100", "kernel")
TASKS = 100


def _one_task(n: int) -> float:
    import vivace
    from vivace.lowlevel import checkpoint

    elapsed = 0.0

    async def main() -> None:
        nonlocal elapsed
        t0 = time.perf_counter()
        for _ in range(n):
            await checkpoint()
        elapsed = time.perf_counter() - t0

    vivace.run(main)
    return elapsed


def _batch100(n: int) -> float:
    import vivace
    from vivace.lowlevel import checkpoint

    per_task = n // TASKS
    elapsed = 0.0

    async def worker() -> None:
        for _ in range(per_task):
            await checkpoint()

    # Includes spawning the 100 workers (~0.5% of the total at N=200k).
    async def main_timed() -> None:
        nonlocal elapsed
        t0 = time.perf_counter()
        async with vivace.open_nursery() as nursery:
            for _ in range(TASKS):
                nursery.start_soon(worker)
        elapsed = time.perf_counter() - t0

    vivace.run(main_timed)
    return elapsed


def _kernel(n: int) -> float:
    import contextvars

    from vivace._core import _impl

    per_task = n // TASKS
    checkpoint = _impl.checkpoint

    class Status:
        effectively_cancelled = False

    class Kernel(_impl.KernelBase):  # type: ignore[misc,valid-type]
        def task_exited(self, task: object, result: object) -> None:
            pass

    class Task(_impl.TaskBase):  # type: ignore[misc,valid-type]
        __slots__ = ()

    async def worker() -> None:
        for _ in range(per_task):
            await checkpoint()

    kernel = Kernel()
    status = Status()
    for i in range(TASKS):
        task = Task(worker(), contextvars.copy_context(), kernel, i, False)
        task._cancel_status = status
        kernel.reschedule(task, None)
    t0 = time.perf_counter()
    while kernel.runq:
        batch = kernel.runq
        kernel.runq = []
        kernel.run_batch(batch)
    return time.perf_counter() - t0


def worker_main(workload: str, n: int) -> None:
    from vivace._core import _impl

    ns = globals()["_" + workload](n) / n * 1e9
    print(json.dumps({"engine": _impl.ENGINE, "ns": ns}))


def run_engine(engine: str, n: int, runs: int) -> dict[str, float]:
    env = dict(os.environ, **ENGINES[engine])
    samples: dict[str, list[float]] = {name: [] for name in WORKLOADS}
    for _ in range(runs):
        for name in WORKLOADS:  # interleaved, so drifting machine load hits all alike
            out = subprocess.run(
                [sys.executable, __file__, "--worker", name, "--n", str(n)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            data = json.loads(out.strip().splitlines()[-1])
            if data["engine"] != engine:
                raise SystemExit(f"asked for the {engine} engine, got {data['engine']}")
            samples[name].append(data["ns"])
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, args.n)
        return

    print(f"{args.n} checkpoints, median of {args.runs} processes, ns per checkpoint")
    print(
        f"{'engine':<10} {'one_task':>9} {'batch100':>9} {'kernel':>8} "
        f"{'loop':>8} {'in-run step':>12} {'python layer':>13}"
    )
    for engine in ENGINES:
        r = run_engine(engine, args.n, args.runs)
        loop = (r["one_task"] - r["batch100"]) * TASKS / (TASKS - 1)
        step = r["batch100"] - loop / TASKS
        print(
            f"{engine:<10} {r['one_task']:9.0f} {r['batch100']:9.0f} {r['kernel']:8.0f} "
            f"{loop:8.0f} {step:12.0f} {step - r['kernel']:13.0f}"
        )


if __name__ == "__main__":
    main()
