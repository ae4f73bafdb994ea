"""The asyncio twins of ``workloads_trio.py`` (run on asyncio's loop and on uvloop).

Each workload is ``async def NAME(n, data) -> int``, run inside
``asyncio.Runner(loop_factory=...)``. Shapes mirror the trio versions line for line:
same hoisting, same counting, same per-task ``list.append``.

Equivalences (see README.md for how fair each one is):
- checkpoint     -> ``await asyncio.sleep(0)`` (a bare yield to the loop; unlike trio's
                    checkpoint it is not a cancel point unless a cancel is pending)
- spawn          -> ``TaskGroup.create_task(noop())``
- timers         -> ``asyncio.sleep(d)`` in a TaskGroup
- move_on_after  -> ``async with asyncio.timeout(10): await asyncio.sleep(0)``
- cancel_scope   -> ``async with asyncio.timeout(None): pass`` (nearest thing; an async
                    context manager, so it also creates two coroutine objects)

Requires Python >= 3.11 (TaskGroup, timeout, Runner); the worker reports asyncio as
unavailable otherwise.
"""

from __future__ import annotations

import asyncio


async def checkpoint(n, data):
    sleep = asyncio.sleep
    i = -1
    for i in range(n):
        await sleep(0)
    return i + 1


async def spawn(n, data):
    done = []
    append = done.append

    async def noop():
        append(None)

    async with asyncio.TaskGroup() as tg:
        create_task = tg.create_task
        for _ in range(n):
            create_task(noop())
    return len(done)


async def timers(n, delays):
    sleep = asyncio.sleep
    done = []
    append = done.append

    async def sleeper(delay):
        await sleep(delay)
        append(None)

    async with asyncio.TaskGroup() as tg:
        create_task = tg.create_task
        for delay in delays:
            create_task(sleeper(delay))
    return len(done)


async def move_on_after(n, data):
    timeout = asyncio.timeout
    sleep = asyncio.sleep
    i = -1
    for i in range(n):
        async with timeout(10):
            await sleep(0)
    return i + 1


async def cancel_scope(n, data):
    timeout = asyncio.timeout
    i = -1
    for i in range(n):
        async with timeout(None):
            pass
    return i + 1


async def empty(n, data):
    """Nothing at all: the worker times it to report the fixed cost of one run()."""
    return n


# ---------------------------------------------------------------- verification (untimed)

# uvloop keeps time in whole milliseconds, so its timers may fire up to ~1 ms "early"
# by a float clock; allow that much.
_TIMER_SLACK = 0.0015


async def verify_checkpoint():
    log = []
    rounds = 40

    async def worker(tag):
        for _ in range(rounds):
            log.append(tag)
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(worker("a"))
        tg.create_task(worker("b"))
    switches = sum(1 for x, y in zip(log, log[1:]) if x != y)
    assert switches >= rounds // 2, f"sleep(0) does not let other tasks run: {''.join(log)}"

    task = asyncio.current_task()
    task.cancel()
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        task.uncancel()
    else:
        raise AssertionError("a pending cancel was not delivered at sleep(0)")


async def verify_spawn():
    done = []

    async def child(i):
        await asyncio.sleep(0)
        done.append(i)

    async with asyncio.TaskGroup() as tg:
        for i in range(10):
            tg.create_task(child(i))
    assert sorted(done) == list(range(10)), f"TaskGroup exited before its children: {done}"


async def verify_timers():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    woke = []

    async def sleeper(delay):
        await asyncio.sleep(delay)
        woke.append((delay, loop.time() - t0))

    delays = (0.03, 0.01, 0.02)
    async with asyncio.TaskGroup() as tg:
        for delay in delays:
            tg.create_task(sleeper(delay))
    assert len(woke) == len(delays), woke
    for delay, elapsed in woke:
        assert elapsed >= delay - _TIMER_SLACK, f"sleep({delay}) woke early: {elapsed:.6f}s"
    assert [d for d, _ in woke] == sorted(delays), f"sleepers woke out of order: {woke}"


async def verify_move_on_after():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        async with asyncio.timeout(0.005):
            await asyncio.sleep(5)
    except TimeoutError:
        pass
    else:
        raise AssertionError("timeout(0.005) did not cancel sleep(5)")
    assert loop.time() - t0 < 2.5, "timeout fired far too late"

    async with asyncio.timeout(10) as cm:
        await asyncio.sleep(0)
    assert not cm.expired()


async def verify_cancel_scope():
    async with asyncio.timeout(None) as cm:
        pass
    assert not cm.expired()

    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as cm:
            cm.reschedule(loop.time())
            await asyncio.sleep(5)
    except TimeoutError:
        pass
    else:
        raise AssertionError("a rescheduled timeout(None) did not fire")
