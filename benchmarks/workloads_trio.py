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

import functools

import _common


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


async def pingpong_channel(trio, n, data):
    ping_send, ping_recv = trio.open_memory_channel(0)
    pong_send, pong_recv = trio.open_memory_channel(0)
    bounced = []

    async def ponger():
        receive = ping_recv.receive
        send = pong_send.send
        k = -1
        for k in range(n):
            await send(await receive())
        bounced.append(k + 1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ponger)
        send = ping_send.send
        receive = pong_recv.receive
        i = token = -1
        for i in range(n):
            await send(i)
            token = await receive()
    # Every round trip came back, and the last token is the last one sent.
    return bounced[0] if token == i else -1


async def pingpong_event(trio, n, data):
    # events[0] is the pinger's, events[1] the ponger's. Each side waits on its own
    # event, and after waking replaces it with a fresh one *before* setting the other
    # side's, so a set never lands on an event that was already used.
    Event = trio.Event
    events = [Event(), Event()]
    bounced = []

    async def ponger():
        k = -1
        for k in range(n):
            await events[1].wait()
            events[1] = Event()
            events[0].set()
        bounced.append(k + 1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ponger)
        i = -1
        for i in range(n):
            events[1].set()
            await events[0].wait()
            events[0] = Event()
    return min(i + 1, bounced[0])


async def channel_throughput(trio, n, data):
    send_channel, receive_channel = trio.open_memory_channel(_common.CHANNEL_BUFFER)
    received = []

    async def consumer():
        receive = receive_channel.receive
        i = item = -1
        for i in range(n):
            item = await receive()
        received.append((i + 1, item))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        send = send_channel.send
        for i in range(n):
            await send(i)
    count, last = received[0]
    # FIFO: the last item received is the last one sent (order is checked in verify).
    return count if last == n - 1 else -1


async def lock_contention(trio, n, per_task):
    lock = trio.Lock()
    cp = trio.lowlevel.checkpoint
    done = []
    append = done.append

    async def worker(count):
        i = -1
        for i in range(count):
            async with lock:
                await cp()
        append(i + 1)

    async with trio.open_nursery() as nursery:
        start_soon = nursery.start_soon
        for count in per_task:
            start_soon(worker, count)
    return sum(done)


async def echo(trio, n, cfg):
    """TCP echo server for ``echo_client.py``; not timed here (the client times it).

    Serves until all ``cfg["connections"]`` connections have been closed by the client
    (or a safety deadline), after passing its port to ``cfg["announce"]``. Returns
    (bytes echoed, connections served); the worker checks them against the client's
    count. The handler is the plain trio idiom: ``receive_some`` / ``send_all`` on the
    ``SocketStream`` until EOF (``serve_listeners`` closes the stream afterwards).
    """
    conns = cfg["connections"]
    echoed = []
    all_closed = trio.Event()

    async def handler(stream):
        receive_some = stream.receive_some
        send_all = stream.send_all
        total = 0
        try:
            while True:
                data = await receive_some(65536)
                if not data:
                    break
                await send_all(data)
                total += len(data)
        finally:
            echoed.append(total)
            if len(echoed) == conns:
                all_closed.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(
            trio.serve_tcp, handler, 0, host="127.0.0.1", backlog=cfg["backlog"]))
        cfg["announce"](listeners[0].socket.getsockname()[1])
        with trio.move_on_after(cfg["max_seconds"] + 10):
            await all_closed.wait()
        nursery.cancel_scope.cancel()
    return sum(echoed), len(echoed)


async def http(trio, seconds, cfg):
    """HTTP/1.1 hello-world server on h11 for the ``http`` load; not timed here.

    One task per connection (``serve_tcp``) drives its own ``h11.Connection``: feed it
    whatever ``receive_some`` returns, and for every complete request answer "200 OK"
    with ``cfg["body"]`` in one ``send_all``, keeping the connection alive. It serves
    until a request for ``cfg["shutdown_target"]`` (sent by the load driver once the
    load is over), or a safety deadline. Returns (requests answered, connections
    accepted, protocol errors); the worker checks them against the load generator's
    own count. A peer that goes away with a response in flight (wrk does that when its
    time is up) just ends its connection; an HTTP protocol error is recorded.
    """
    h11 = cfg["h11"]
    Connection, SERVER = h11.Connection, h11.SERVER
    NEED_DATA, MUST_CLOSE = h11.NEED_DATA, h11.MUST_CLOSE
    Request, EndOfMessage, ConnectionClosed = h11.Request, h11.EndOfMessage, h11.ConnectionClosed
    Response, Data = h11.Response, h11.Data
    body, shutdown_target = cfg["body"], cfg["shutdown_target"]
    headers = [("content-type", "text/plain"), ("content-length", str(len(body)))]
    BrokenResourceError = trio.BrokenResourceError
    answered = accepted = 0
    errors = []
    stop = trio.Event()

    async def handler(stream):
        nonlocal answered, accepted
        accepted += 1
        conn = Connection(SERVER)
        next_event, receive_data, send = conn.next_event, conn.receive_data, conn.send
        receive_some, send_all = stream.receive_some, stream.send_all
        target = None
        try:
            while True:
                event = next_event()
                if event is NEED_DATA:
                    receive_data(await receive_some(65536))
                    continue
                kind = type(event)
                if kind is Request:
                    target = event.target
                elif kind is EndOfMessage:
                    await send_all(send(Response(status_code=200, headers=headers))
                                   + send(Data(data=body)) + send(EndOfMessage()))
                    if target == shutdown_target:
                        stop.set()
                    else:
                        answered += 1
                    if conn.our_state is MUST_CLOSE:
                        break
                    conn.start_next_cycle()
                elif kind is ConnectionClosed:
                    break
        except BrokenResourceError:
            pass
        except h11.ProtocolError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(
            trio.serve_tcp, handler, 0, host="127.0.0.1", backlog=cfg["backlog"]))
        cfg["announce"](listeners[0].socket.getsockname()[1])
        with trio.move_on_after(cfg["max_seconds"]):
            await stop.wait()
        nursery.cancel_scope.cancel()
    return answered, accepted, errors


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

    # Only what trio promises: every sleeper wakes, none before its deadline. Not the
    # order: a stall longer than the gap between deadlines wakes several sleepers in
    # one batch, and a batch runs in either order.
    delays = (0.03, 0.01, 0.02)
    async with trio.open_nursery() as nursery:
        for delay in delays:
            nursery.start_soon(sleeper, delay)
    assert sorted(d for d, _ in woke) == sorted(delays), f"not every sleeper woke once: {woke}"
    for delay, elapsed in woke:
        assert elapsed >= delay - 1e-6, f"sleep({delay}) woke early, after {elapsed:.6f}s"


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


async def verify_pingpong_channel(trio):
    # A 0-buffer channel is a rendezvous: send_nowait fails with nobody receiving, and
    # send blocks until a receiver has taken the value.
    send_channel, receive_channel = trio.open_memory_channel(0)
    try:
        send_channel.send_nowait("x")
    except trio.WouldBlock:
        pass
    else:
        raise AssertionError("send_nowait on a 0-buffer channel with no receiver succeeded")
    log = []

    async def receiver():
        await trio.sleep(0.005)
        log.append("receiving")
        log.append(await receive_channel.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await send_channel.send("token")
        log.append("sent")
    assert sorted(log) == ["receiving", "sent", "token"], log
    assert log.index("receiving") < log.index("sent"), f"send did not wait for a receiver: {log}"

    # Tokens come back in order through the two channels.
    ping_send, ping_recv = trio.open_memory_channel(0)
    pong_send, pong_recv = trio.open_memory_channel(0)

    async def ponger():
        for _ in range(5):
            await pong_send.send(await ping_recv.receive() * 10)

    back = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ponger)
        for i in range(5):
            await ping_send.send(i)
            back.append(await pong_recv.receive())
    assert back == [0, 10, 20, 30, 40], back


async def verify_pingpong_event(trio):
    event = trio.Event()
    log = []

    async def waiter(tag):
        await event.wait()
        log.append(tag)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "a")
        nursery.start_soon(waiter, "b")
        await trio.sleep(0.005)
        assert log == [] and not event.is_set(), f"wait() returned before set(): {log}"
        log.append("set")
        event.set()
    assert log[0] == "set" and sorted(log[1:]) == ["a", "b"], log
    assert event.is_set()
    await event.wait()  # an already-set event does not block

    with trio.CancelScope() as scope:
        scope.cancel()
        await trio.Event().wait()
    assert scope.cancelled_caught, "Event.wait() is not a cancel point"


async def verify_channel_throughput(trio):
    send_channel, receive_channel = trio.open_memory_channel(_common.CHANNEL_BUFFER)
    for i in range(_common.CHANNEL_BUFFER):
        send_channel.send_nowait(i)
    try:
        send_channel.send_nowait(-1)
    except trio.WouldBlock:
        pass
    else:
        raise AssertionError(f"buffer of {_common.CHANNEL_BUFFER} accepted one item more")
    got = [receive_channel.receive_nowait() for _ in range(_common.CHANNEL_BUFFER)]
    assert got == list(range(_common.CHANNEL_BUFFER)), "buffered items came out of order"

    n = 3 * _common.CHANNEL_BUFFER + 7
    received = []

    async def consumer():
        async for item in receive_channel:
            received.append(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        async with send_channel:
            for i in range(n):
                await send_channel.send(i)
    assert received == list(range(n)), "items lost, duplicated or reordered"


async def verify_lock_contention(trio):
    lock = trio.Lock()
    holders = []
    log = []
    tasks, rounds = 4, 5

    async def worker(tag):
        for _ in range(rounds):
            async with lock:
                holders.append(tag)
                assert len(holders) == 1, f"two tasks hold the lock: {holders}"
                log.append(tag)
                await trio.lowlevel.checkpoint()
                holders.remove(tag)

    async with trio.open_nursery() as nursery:
        for t in range(tasks):
            nursery.start_soon(worker, t)
    assert len(log) == tasks * rounds
    switches = sum(1 for x, y in zip(log, log[1:]) if x != y)
    assert switches >= len(log) // 2, f"the lock was not contended / handed over: {log}"
    assert not lock.locked()
