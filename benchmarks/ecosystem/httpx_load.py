"""The ``httpx`` workload's client side: many concurrent GETs through one AsyncClient.

Design notes: written once against anyio + httpx and run unchanged on every
implementation; only the ``anyio.run`` backend differs (``trio`` for vivace, vivace-ref
and trio, where httpcore then uses its trio backend; ``asyncio`` for asyncio and
uvloop). ``concurrency`` tasks each keep one request in flight, pulling from a shared
countdown (one thread, so a plain integer is safe), so exactly ``n`` requests are made
whatever the scheduling order. The timed window is inside the running loop and covers
only the measured requests: the client, its pool and the warm-up requests that open
the pool come before it. Every response is checked (status and body) inside the window,
as a real client would read it; the check costs the same on every implementation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import anyio
import httpx


async def fetch(client: httpx.AsyncClient, url: str, n: int, concurrency: int,
                body: bytes) -> int:
    """Make exactly *n* GETs to *url* with *concurrency* tasks; return how many were ok."""
    remaining = n
    done = 0

    async def one_connection() -> None:
        nonlocal remaining, done
        get = client.get
        while remaining > 0:
            remaining -= 1
            response = await get(url)
            if response.status_code != 200 or response.content != body:
                raise AssertionError(f"GET {url}: {response.status_code} "
                                     f"{response.content[:60]!r}")
            done += 1

    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, n)):
            tg.start_soon(one_connection)
    return done


async def client_run(cfg: dict) -> dict:
    """Warm up, then time ``cfg["requests"]`` GETs; return the window's figures."""
    import sniffio

    library = sniffio.current_async_library()
    with anyio.fail_after(cfg["max_seconds"]):  # hang guard only
        return await _client_run(cfg, library)


async def _client_run(cfg: dict, library: str | None) -> dict:
    url, body, conc = cfg["url"], cfg["body"], cfg["concurrency"]
    server_cpu: Callable[[], tuple[float, float]] = cfg["server_cpu"]
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    timeout = httpx.Timeout(cfg["request_timeout"])
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        warm = await fetch(client, url, cfg["warmup"], conc, body)
        profiler = cfg.get("profiler")  # --profile: cProfile around the window only
        before = server_cpu()
        c0, p0 = os.times(), time.process_time()
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        done = await fetch(client, url, cfg["requests"], conc, body)
        if profiler is not None:
            profiler.disable()
        t1 = time.perf_counter()
        c1, p1 = os.times(), time.process_time()
        after = server_cpu()
    # process_time: the total (fine-grained); os.times(): its split into user (Python,
    # the loop) and system (the TCP stack), at clock-tick resolution.
    user, system = c1.user - c0.user, c1.system - c0.system
    return {"requests_ok": done, "warmup_ok": warm, "window_s": t1 - t0,
            "client_cpu_s": p1 - p0, "client_user_s": user, "client_sys_s": system,
            "server_user_s": after[0] - before[0],
            "server_sys_s": after[1] - before[1], "sniffio": library}
