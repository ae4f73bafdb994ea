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
- pingpong_channel   -> two ``asyncio.Queue(maxsize=1)`` (asyncio has no rendezvous
                        queue; maxsize=1 is the nearest)
- pingpong_event     -> fresh ``asyncio.Event`` objects, same hand-over protocol
- channel_throughput -> ``asyncio.Queue(maxsize=100)``, one producer, one consumer
- lock_contention    -> ``async with asyncio.Lock(): await asyncio.sleep(0)``, 10 tasks
- echo               -> ``asyncio.start_server``; ``reader.read`` / ``writer.write`` +
                        ``drain`` (trio: ``serve_tcp``; ``receive_some`` / ``send_all``)
- http               -> the same h11 server loop on ``asyncio.start_server`` streams

Requires Python >= 3.11 (TaskGroup, timeout, Runner); the worker reports asyncio as
unavailable otherwise.
"""

from __future__ import annotations

import asyncio

import _common


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


async def pingpong_channel(n, data):
    # asyncio has no rendezvous queue (maxsize=0 means unbounded); maxsize=1 is nearest.
    ping = asyncio.Queue(maxsize=1)
    pong = asyncio.Queue(maxsize=1)
    bounced = []

    async def ponger():
        get = ping.get
        put = pong.put
        k = -1
        for k in range(n):
            await put(await get())
        bounced.append(k + 1)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(ponger())
        put = ping.put
        get = pong.get
        i = token = -1
        for i in range(n):
            await put(i)
            token = await get()
    return bounced[0] if token == i else -1


async def pingpong_event(n, data):
    Event = asyncio.Event
    events = [Event(), Event()]
    bounced = []

    async def ponger():
        k = -1
        for k in range(n):
            await events[1].wait()
            events[1] = Event()
            events[0].set()
        bounced.append(k + 1)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(ponger())
        i = -1
        for i in range(n):
            events[1].set()
            await events[0].wait()
            events[0] = Event()
    return min(i + 1, bounced[0])


async def channel_throughput(n, data):
    queue = asyncio.Queue(maxsize=_common.CHANNEL_BUFFER)
    received = []

    async def consumer():
        get = queue.get
        i = item = -1
        for i in range(n):
            item = await get()
        received.append((i + 1, item))

    async with asyncio.TaskGroup() as tg:
        tg.create_task(consumer())
        put = queue.put
        for i in range(n):
            await put(i)
    count, last = received[0]
    return count if last == n - 1 else -1


async def lock_contention(n, per_task):
    lock = asyncio.Lock()
    sleep = asyncio.sleep
    done = []
    append = done.append

    async def worker(count):
        i = -1
        for i in range(count):
            async with lock:
                await sleep(0)
        append(i + 1)

    async with asyncio.TaskGroup() as tg:
        create_task = tg.create_task
        for count in per_task:
            create_task(worker(count))
    return sum(done)


async def echo(n, cfg):
    """TCP echo server for ``echo_client.py``: the twin of ``workloads_trio.echo``.

    The plain asyncio streams idiom: ``asyncio.start_server`` and, per connection,
    ``reader.read`` / ``writer.write`` + ``await writer.drain()`` until EOF.
    """
    conns = cfg["connections"]
    echoed = []
    all_closed = asyncio.Event()

    async def handler(reader, writer):
        read = reader.read
        write = writer.write
        drain = writer.drain
        total = 0
        try:
            while True:
                data = await read(65536)
                if not data:
                    break
                write(data)
                await drain()
                total += len(data)
        finally:
            writer.close()
            echoed.append(total)
            if len(echoed) == conns:
                all_closed.set()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=cfg["backlog"])
    async with server:
        cfg["announce"](server.sockets[0].getsockname()[1])
        try:
            async with asyncio.timeout(cfg["max_seconds"] + 10):
                await all_closed.wait()
        except TimeoutError:
            pass
    return sum(echoed), len(echoed)


async def http(seconds, cfg):
    """HTTP/1.1 hello-world server on h11: the twin of ``workloads_trio.http``.

    The asyncio streams idiom around the same h11 state machine: ``reader.read`` feeds
    it, each complete request is answered with one ``writer.write`` + ``drain``. After
    the shutdown request, connections still open are closed before the server is.
    """
    h11 = cfg["h11"]
    Connection, SERVER = h11.Connection, h11.SERVER
    NEED_DATA, MUST_CLOSE = h11.NEED_DATA, h11.MUST_CLOSE
    Request, EndOfMessage, ConnectionClosed = h11.Request, h11.EndOfMessage, h11.ConnectionClosed
    Response, Data = h11.Response, h11.Data
    body, shutdown_target = cfg["body"], cfg["shutdown_target"]
    headers = [("content-type", "text/plain"), ("content-length", str(len(body)))]
    answered = accepted = 0
    errors = []
    writers = set()
    stop = asyncio.Event()

    async def handler(reader, writer):
        nonlocal answered, accepted
        accepted += 1
        writers.add(writer)
        conn = Connection(SERVER)
        next_event, receive_data, send = conn.next_event, conn.receive_data, conn.send
        read, write, drain = reader.read, writer.write, writer.drain
        target = None
        try:
            while True:
                event = next_event()
                if event is NEED_DATA:
                    receive_data(await read(65536))
                    continue
                kind = type(event)
                if kind is Request:
                    target = event.target
                elif kind is EndOfMessage:
                    write(send(Response(status_code=200, headers=headers))
                          + send(Data(data=body)) + send(EndOfMessage()))
                    await drain()
                    if target == shutdown_target:
                        stop.set()
                    else:
                        answered += 1
                    if conn.our_state is MUST_CLOSE:
                        break
                    conn.start_next_cycle()
                elif kind is ConnectionClosed:
                    break
        except ConnectionError:
            pass
        except h11.ProtocolError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=cfg["backlog"])
    async with server:
        cfg["announce"](server.sockets[0].getsockname()[1])
        try:
            async with asyncio.timeout(cfg["max_seconds"]):
                await stop.wait()
        except TimeoutError:
            pass
        for writer in list(writers):
            writer.close()
    return answered, accepted, errors


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

    # The same check as the trio twin's: every sleeper wakes, none before its deadline
    # (the wake order is left out there, since trio does not promise it).
    delays = (0.03, 0.01, 0.02)
    async with asyncio.TaskGroup() as tg:
        for delay in delays:
            tg.create_task(sleeper(delay))
    assert sorted(d for d, _ in woke) == sorted(delays), f"not every sleeper woke once: {woke}"
    for delay, elapsed in woke:
        assert elapsed >= delay - _TIMER_SLACK, f"sleep({delay}) woke early: {elapsed:.6f}s"


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


async def verify_pingpong_channel():
    # Not a rendezvous (asyncio has none): a maxsize=1 queue takes one item, then is full.
    queue = asyncio.Queue(maxsize=1)
    queue.put_nowait("x")
    try:
        queue.put_nowait("y")
    except asyncio.QueueFull:
        pass
    else:
        raise AssertionError("Queue(maxsize=1) accepted a second item")
    assert queue.get_nowait() == "x"

    # A put into a full queue blocks until a consumer has taken the item before it.
    log = []
    queue.put_nowait("first")

    async def consumer():
        await asyncio.sleep(0.005)
        log.append("receiving")
        log.append(await queue.get())

    async with asyncio.TaskGroup() as tg:
        tg.create_task(consumer())
        await queue.put("second")
        log.append("sent")
    assert log.index("receiving") < log.index("sent"), f"put into a full queue did not wait: {log}"
    assert queue.get_nowait() == "second"

    ping = asyncio.Queue(maxsize=1)
    pong = asyncio.Queue(maxsize=1)

    async def ponger():
        for _ in range(5):
            await pong.put(await ping.get() * 10)

    back = []
    async with asyncio.TaskGroup() as tg:
        tg.create_task(ponger())
        for i in range(5):
            await ping.put(i)
            back.append(await pong.get())
    assert back == [0, 10, 20, 30, 40], back


async def verify_pingpong_event():
    event = asyncio.Event()
    log = []

    async def waiter(tag):
        await event.wait()
        log.append(tag)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(waiter("a"))
        tg.create_task(waiter("b"))
        await asyncio.sleep(0.005)
        assert log == [] and not event.is_set(), f"wait() returned before set(): {log}"
        log.append("set")
        event.set()
    assert log[0] == "set" and sorted(log[1:]) == ["a", "b"], log
    assert event.is_set()
    await event.wait()  # an already-set event does not block

    blocked = asyncio.ensure_future(asyncio.Event().wait())
    await asyncio.sleep(0)
    blocked.cancel()
    try:
        await blocked
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("a waiter on an unset Event could not be cancelled")


async def verify_channel_throughput():
    size = _common.CHANNEL_BUFFER
    queue = asyncio.Queue(maxsize=size)
    for i in range(size):
        queue.put_nowait(i)
    try:
        queue.put_nowait(-1)
    except asyncio.QueueFull:
        pass
    else:
        raise AssertionError(f"Queue(maxsize={size}) accepted one item more")
    got = [queue.get_nowait() for _ in range(size)]
    assert got == list(range(size)), "buffered items came out of order"

    n = 3 * size + 7
    received = []

    async def consumer():
        for _ in range(n):
            received.append(await queue.get())

    async with asyncio.TaskGroup() as tg:
        tg.create_task(consumer())
        for i in range(n):
            await queue.put(i)
    assert received == list(range(n)), "items lost, duplicated or reordered"


async def verify_lock_contention():
    lock = asyncio.Lock()
    holders = []
    log = []
    tasks, rounds = 4, 5

    async def worker(tag):
        for _ in range(rounds):
            async with lock:
                holders.append(tag)
                assert len(holders) == 1, f"two tasks hold the lock: {holders}"
                log.append(tag)
                await asyncio.sleep(0)
                holders.remove(tag)

    async with asyncio.TaskGroup() as tg:
        for t in range(tasks):
            tg.create_task(worker(t))
    assert len(log) == tasks * rounds
    switches = sum(1 for x, y in zip(log, log[1:]) if x != y)
    assert switches >= len(log) // 2, f"the lock was not contended / handed over: {log}"
    assert not lock.locked()
