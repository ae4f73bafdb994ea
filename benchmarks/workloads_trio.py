"""The workloads, written once against the trio API.

Each workload is ``async def NAME(trio, n, data) -> int`` and runs as
``trio.run(NAME, trio, n, data)`` where ``trio`` is the real trio or ``vivace``. It
returns a count that the worker compares with ``n`` after the timed section.

Design notes: everything that is not the operation being measured is hoisted out of
the loop (attribute look-ups become locals) and kept identical to the asyncio twin in
``workloads_asyncio.py``, so that the loop overhead is the same for every
implementation. Counting uses ``for i in range(n)`` / ``return i + 1`` where possible
(no per-iteration bookkeeping); where a count must come from the tasks themselves, each
task does one ``list.append``, the same in every implementation.

The ``verify_*`` functions are not timed: the worker runs them after the measurement,
at a tiny size, to check that the operation really did its job (a checkpoint that does
not yield or is not a cancel point, a sleep that does not wait, a timeout that never
fires would otherwise look fast).
"""

from __future__ import annotations


async def checkpoint(trio, n, data):
    cp = trio.lowlevel.checkpoint
    i = -1
    for i in range(n):
        await cp()
    return i + 1


async def spawn(trio, n, data):
    done = []
    append = done.append

    async def noop():
        append(None)

    async with trio.open_nursery() as nursery:
        start_soon = nursery.start_soon
        for _ in range(n):
            start_soon(noop)
    return len(done)


async def timers(trio, n, delays):
    sleep = trio.sleep
    done = []
    append = done.append

    async def sleeper(delay):
        await sleep(delay)
        append(None)

    async with trio.open_nursery() as nursery:
        start_soon = nursery.start_soon
        for delay in delays:
            start_soon(sleeper, delay)
    return len(done)


async def move_on_after(trio, n, data):
    move_on_after = trio.move_on_after
    cp = trio.lowlevel.checkpoint
    i = -1
    for i in range(n):
        with move_on_after(10):
            await cp()
    return i + 1


async def cancel_scope(trio, n, data):
    CancelScope = trio.CancelScope
    i = -1
    for i in range(n):
        with CancelScope():
            pass
    return i + 1


async def empty(trio, n, data):
    """Nothing at all: the worker times it to report the fixed cost of one run()."""
    return n


# ---------------------------------------------------------------- verification (untimed)


async def verify_checkpoint(trio):
    log = []
    rounds = 40

    async def worker(tag):
        for _ in range(rounds):
            log.append(tag)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker, "a")
        nursery.start_soon(worker, "b")
    switches = sum(1 for x, y in zip(log, log[1:]) if x != y)
    assert switches >= rounds // 2, f"checkpoint() does not let other tasks run: {''.join(log)}"

    with trio.CancelScope() as scope:
        scope.cancel()
        await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught, "checkpoint() is not a cancel point"


async def verify_spawn(trio):
    done = []

    async def child(i):
        await trio.lowlevel.checkpoint()
        done.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(child, i)
    assert sorted(done) == list(range(10)), f"nursery exited before its children: {done}"


async def verify_timers(trio):
    t0 = trio.current_time()
    woke = []

    async def sleeper(delay):
        await trio.sleep(delay)
        woke.append((delay, trio.current_time() - t0))

    delays = (0.03, 0.01, 0.02)
    async with trio.open_nursery() as nursery:
        for delay in delays:
            nursery.start_soon(sleeper, delay)
    assert len(woke) == len(delays), woke
    for delay, elapsed in woke:
        assert elapsed >= delay - 1e-6, f"sleep({delay}) woke early, after {elapsed:.6f}s"
    assert [d for d, _ in woke] == sorted(delays), f"sleepers woke out of order: {woke}"


async def verify_move_on_after(trio):
    t0 = trio.current_time()
    with trio.move_on_after(0.005) as scope:
        await trio.sleep(5)
    assert scope.cancelled_caught, "move_on_after(0.005) did not cancel sleep(5)"
    assert trio.current_time() - t0 < 2.5, "move_on_after fired far too late"

    with trio.move_on_after(10) as scope:
        await trio.lowlevel.checkpoint()
    assert not scope.cancel_called and not scope.cancelled_caught


async def verify_cancel_scope(trio):
    with trio.CancelScope() as scope:
        pass
    assert not scope.cancel_called and not scope.cancelled_caught

    with trio.CancelScope() as outer:
        with trio.CancelScope():
            outer.cancel()
            await trio.lowlevel.checkpoint()
        raise AssertionError("cancel did not reach a checkpoint in a nested scope")
    assert outer.cancelled_caught
