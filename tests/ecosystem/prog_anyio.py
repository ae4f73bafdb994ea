# ruff: noqa: E402  (install() must run before anything imports trio)
"""anyio 4.16 on its trio backend, run on vivace through install().

    prog_anyio.py SCENARIO RUNNER

SCENARIO is one of the functions in SCENARIOS; RUNNER is ``anyio`` (``anyio.run(...,
backend="trio")``) or ``trio`` (``trio.run``, which after install() is vivace.run). Both
runs use trio's autojump MockClock, so every timeout below is virtual time: the program
never depends on how fast the machine is. Each scenario ends with ecocheck's proof.
"""

import vivace

vivace.install()

import os
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread
import ecocheck
import trio
import trio.testing

BACKEND_CANCELLED = anyio.get_cancelled_exc_class


def near(a: float, b: float) -> bool:
    return abs(a - b) < 1e-6


# ------------------------------------------------------------------ task groups


async def task_groups() -> None:
    # Children run concurrently: total virtual time is the longest child, not the sum.
    t0 = anyio.current_time()
    finished: list[int] = []

    async def child(i: int, delay: float) -> None:
        await anyio.sleep(delay)
        finished.append(i)

    async with anyio.create_task_group() as tg:
        for i, delay in enumerate([3, 1, 2]):
            tg.start_soon(child, i, delay, name=f"child-{i}")
    assert finished == [1, 2, 0], finished
    assert near(anyio.current_time() - t0, 3), anyio.current_time() - t0

    # Two children fail in their first step: both errors arrive in one ExceptionGroup and
    # the sleeping sibling is cancelled.
    sibling_cancelled = False

    async def sleeper() -> None:
        nonlocal sibling_cancelled
        try:
            await anyio.sleep_forever()
        except BACKEND_CANCELLED():
            sibling_cancelled = True
            raise

    async def fail(exc: Exception) -> None:
        raise exc

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.sleep(1)  # the sleeper is parked before the failures start
            tg.start_soon(fail, ValueError("a"))
            tg.start_soon(fail, KeyError("b"))
            await anyio.sleep_forever()
    except ExceptionGroup as group:
        caught = group
    else:
        raise AssertionError("the task group swallowed its children's errors")
    assert sorted(type(e).__name__ for e in caught.exceptions) == ["KeyError", "ValueError"]
    assert sibling_cancelled

    # A single failure is still a group (anyio 4 semantics); except* takes it apart.
    handled = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fail, OSError(5, "boom"))
    except* OSError as group:
        handled = [e.errno for e in group.exceptions]
    assert handled == [5], handled

    # start(): the value passed to task_status.started() is start()'s result, and the task
    # keeps running in the group afterwards.
    served: list[str] = []

    async def server(greeting: str, *, task_status: anyio.abc.TaskStatus[str]) -> None:
        await anyio.sleep(1)
        task_status.started(greeting.upper())
        served.append("after started")
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        value = await tg.start(server, "ready")
        assert value == "READY", value
        await anyio.sleep(0.5)
        assert served == ["after started"], served
        tg.cancel_scope.cancel()

    # A task that fails before started(): start() raises its error.
    async def broken(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        await anyio.sleep(0)
        raise LookupError("never started")

    async with anyio.create_task_group() as tg:
        try:
            await tg.start(broken)
        except LookupError as exc:
            assert str(exc) == "never started"
        else:
            raise AssertionError("start() did not raise the task's error")

    # A task that returns without calling started() is a RuntimeError from start().
    async def silent(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        await anyio.sleep(0)

    async with anyio.create_task_group() as tg:
        try:
            await tg.start(silent)
        except RuntimeError:
            pass
        else:
            raise AssertionError("start() accepted a task that never started")


# ------------------------------------------------------------------ cancel scopes


async def cancel_scopes() -> None:
    t0 = anyio.current_time()
    with anyio.move_on_after(5) as scope:
        await anyio.sleep_forever()
    assert scope.cancel_called and scope.cancelled_caught
    assert near(anyio.current_time() - t0, 5)

    with anyio.move_on_after(5) as scope:
        await anyio.sleep(1)
    assert not scope.cancel_called and not scope.cancelled_caught

    t0 = anyio.current_time()
    try:
        with anyio.fail_after(2):
            await anyio.sleep(10)
    except TimeoutError:
        pass
    else:
        raise AssertionError("fail_after did not raise TimeoutError")
    assert near(anyio.current_time() - t0, 2)

    # The effective deadline is the nearest one of the enclosing scopes.
    t0 = anyio.current_time()
    with anyio.move_on_after(7):
        assert near(anyio.current_effective_deadline(), t0 + 7)
        with anyio.move_on_after(30):
            assert near(anyio.current_effective_deadline(), t0 + 7)
        with anyio.CancelScope(shield=True):
            assert anyio.current_effective_deadline() == float("inf")

    # A shielded scope finishes its work inside a cancelled one; the next unshielded
    # checkpoint then delivers the cancellation.
    shielded_done = reached_after = False
    with anyio.CancelScope() as outer:
        outer.cancel()
        with anyio.CancelScope(shield=True) as shield:
            await anyio.sleep(1)
            shielded_done = True
        assert not shield.cancelled_caught
        await anyio.sleep(1)
        reached_after = True
    assert shielded_done and not reached_after and outer.cancelled_caught

    # A timeout around a shielded child task group does not interrupt it.
    t0 = anyio.current_time()
    with anyio.move_on_after(1) as timeout:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.sleep, 3)
    assert near(anyio.current_time() - t0, 3) and not timeout.cancelled_caught

    # Cancelling a task's scope from another task, and moving a deadline from outside.
    outcomes: dict[str, bool] = {}

    async def worker(name: str, *, task_status: anyio.abc.TaskStatus[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            task_status.started(scope)
            await anyio.sleep_forever()
        outcomes[name] = scope.cancelled_caught

    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        by_cancel = await tg.start(worker, "cancelled")
        by_deadline = await tg.start(worker, "deadline")
        by_deadline.deadline = anyio.current_time() + 4
        by_cancel.cancel()
    assert outcomes == {"cancelled": True, "deadline": True}, outcomes
    assert near(anyio.current_time() - t0, 4)

    # Cancelling the group's own scope from outside stops every child.
    stopped = 0

    async def forever() -> None:
        nonlocal stopped
        try:
            await anyio.sleep_forever()
        finally:
            stopped += 1

    async with anyio.create_task_group() as outer_tg:
        async with anyio.create_task_group() as inner_tg:
            for _ in range(5):
                inner_tg.start_soon(forever)
            outer_tg.start_soon(lambda: _cancel_later(inner_tg.cancel_scope))
    assert stopped == 5 and inner_tg.cancel_scope.cancelled_caught


async def _cancel_later(scope: anyio.CancelScope) -> None:
    await anyio.sleep(1)
    scope.cancel()


# ------------------------------------------------------------------ streams


async def memory_streams() -> None:
    send, receive = anyio.create_memory_object_stream[int](max_buffer_size=2)
    received: list[int] = []

    async def consumer(stream: anyio.abc.ObjectReceiveStream[int]) -> None:
        async with stream:
            async for item in stream:
                received.append(item)
                await anyio.sleep(1)  # a slow consumer: the producer must wait

    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer, receive)
        async with send:
            for i in range(10):
                await send.send(i)
    assert received == list(range(10)), received
    assert near(anyio.current_time() - t0, 10)

    # A full buffer refuses send_nowait; a closed receiver breaks the sender; a closed
    # sender ends the receiver's iteration.
    send, receive = anyio.create_memory_object_stream[str](max_buffer_size=1)
    send.send_nowait("x")
    try:
        send.send_nowait("y")
    except anyio.WouldBlock:
        pass
    else:
        raise AssertionError("send_nowait on a full buffer")
    assert send.statistics().current_buffer_used == 1
    assert await receive.receive() == "x"
    clone = receive.clone()
    await receive.aclose()
    await send.send("still one receiver")
    assert await clone.receive() == "still one receiver"
    await clone.aclose()
    try:
        await send.send("nobody")
    except anyio.BrokenResourceError:
        pass
    else:
        raise AssertionError("send with every receiver closed")
    send2, receive2 = anyio.create_memory_object_stream[str]()
    await send2.aclose()
    try:
        await receive2.receive()
    except anyio.EndOfStream:
        pass
    else:
        raise AssertionError("receive from a closed, empty stream")
    await receive2.aclose()
    await send.aclose()

    # Several producers and consumers over one unbuffered stream: everything arrives once.
    send, receive = anyio.create_memory_object_stream[tuple[int, int]]()
    got: list[tuple[int, int]] = []

    async def produce(p: int, stream: anyio.abc.ObjectSendStream[tuple[int, int]]) -> None:
        async with stream:
            for i in range(50):
                await stream.send((p, i))

    async def consume(stream: anyio.abc.ObjectReceiveStream[tuple[int, int]]) -> None:
        async with stream:
            async for item in stream:
                got.append(item)

    async with anyio.create_task_group() as tg:
        async with send, receive:
            for p in range(4):
                tg.start_soon(produce, p, send.clone())
            for _ in range(3):
                tg.start_soon(consume, receive.clone())
    assert sorted(got) == [(p, i) for p in range(4) for i in range(50)]


async def tcp_echo() -> None:
    payloads = [b"hello", b"", bytes(range(256)) * 16, os.urandom(1 << 20)]
    payloads = [p for p in payloads if p]
    served_peers: list[tuple[str, int]] = []

    async def echo(client: anyio.abc.SocketStream) -> None:
        async with client:
            served_peers.append(client.extra(anyio.abc.SocketAttribute.remote_address))
            try:
                while True:
                    await client.send(await client.receive())
            except anyio.EndOfStream:
                pass

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)

        async def client(n: int) -> None:
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                for payload in payloads:
                    await stream.send(payload)
                    echoed = bytearray()
                    while len(echoed) < len(payload):
                        echoed += await stream.receive()
                    assert echoed == payload, (n, len(echoed), len(payload))
                await stream.send_eof()
                try:
                    extra = await stream.receive()
                except anyio.EndOfStream:
                    extra = b""
                assert extra == b"", extra

        async with anyio.create_task_group() as clients:
            for n in range(5):
                clients.start_soon(client, n)
        tg.cancel_scope.cancel()
    await listener.aclose()
    assert len(served_peers) == 5 and all(host == "127.0.0.1" for host, _ in served_peers)

    # Connecting to a bound port nobody listens on is refused (no race: the port stays ours).
    import socket

    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        try:
            await anyio.connect_tcp("127.0.0.1", bound.getsockname()[1])
        except OSError:
            pass
        else:
            raise AssertionError("connected to a port with no listener")


async def files() -> None:
    data = os.urandom(100_000)
    with tempfile.TemporaryDirectory() as tmp:
        path = anyio.Path(tmp) / "data.bin"
        async with await anyio.open_file(path, "wb") as f:
            await f.write(data[:50_000])
            await f.write(data[50_000:])
        assert await path.exists() and (await path.stat()).st_size == len(data)
        async with await anyio.open_file(path, "rb") as f:
            assert await f.read() == data
        await path.with_suffix(".txt").write_text("line 1\nline 2\n")
        lines = []
        async with await anyio.open_file(path.with_suffix(".txt")) as f:
            async for line in f:
                lines.append(line)
        assert lines == ["line 1\n", "line 2\n"], lines
        names = sorted([p.name async for p in anyio.Path(tmp).iterdir()])
        assert names == ["data.bin", "data.txt"], names


# ------------------------------------------------------------------ threads


async def threads() -> None:
    loop_thread = threading.get_ident()

    # run_sync runs in a worker thread and returns (or raises) there.
    assert await anyio.to_thread.run_sync(threading.get_ident) != loop_thread
    assert await anyio.to_thread.run_sync(lambda a, b: a * b, 6, 7) == 42

    def raises() -> None:
        raise ZeroDivisionError("in the worker")

    try:
        await anyio.to_thread.run_sync(raises)
    except ZeroDivisionError as exc:
        assert str(exc) == "in the worker"
    else:
        raise AssertionError("the worker's error was lost")

    # from_thread.run / run_sync call back into the run from the worker.
    async def in_loop(x: int) -> tuple[int, int, str]:
        await anyio.sleep(1)
        import sniffio

        return x + 1, threading.get_ident(), sniffio.current_async_library()

    def worker() -> list[object]:
        value, ident, library = anyio.from_thread.run(in_loop, 1)
        sync_ident = anyio.from_thread.run_sync(threading.get_ident)
        try:
            anyio.from_thread.run(_async_raise, KeyError("back"))
        except KeyError as exc:
            raised = exc.args[0]
        return [value, ident, library, sync_ident, raised]

    assert await anyio.to_thread.run_sync(worker) == [2, loop_thread, "trio", loop_thread, "back"]

    # A CapacityLimiter bounds how many workers run at once: two threads meet at a barrier
    # of two (so the limiter does admit two), and no third is ever inside.
    limiter = anyio.CapacityLimiter(2)
    barrier = threading.Barrier(2, timeout=30)
    lock = threading.Lock()
    inside = peak = 0

    def bounded(i: int) -> int:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        barrier.wait()
        with lock:
            inside -= 1
        return i

    results: list[int] = []

    async def run_bounded(i: int) -> None:
        results.append(await anyio.to_thread.run_sync(bounded, i, limiter=limiter))

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(run_bounded, i)
    assert sorted(results) == list(range(6)) and peak == 2, (results, peak)

    # abandon_on_cancel: a timeout abandons a thread stuck in a blocking call.
    release = threading.Event()
    with anyio.move_on_after(5) as scope:
        await anyio.to_thread.run_sync(release.wait, abandon_on_cancel=True)
    assert scope.cancelled_caught
    release.set()

    # A blocking portal started from a worker thread: a second, independent run in its own
    # thread, driven from synchronous code.
    def use_portal() -> tuple[int, str]:
        with anyio.from_thread.start_blocking_portal(backend="trio") as portal:
            return portal.call(_portal_job, 20)

    value, library = await anyio.to_thread.run_sync(use_portal)
    assert (value, library) == (21, "trio"), (value, library)


async def _async_raise(exc: Exception) -> None:
    await anyio.sleep(0)
    raise exc


async def _portal_job(x: int) -> tuple[int, str]:
    import sniffio

    await anyio.sleep(0)
    ecocheck.check_modules()
    return x + 1, sniffio.current_async_library()


# ------------------------------------------------------------------ synchronization


async def sync_primitives() -> None:
    # Event: every waiter wakes when it is set.
    event = anyio.Event()
    woken: list[int] = []

    async def wait(i: int) -> None:
        await event.wait()
        woken.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(wait, i)
        await anyio.sleep(1)
        assert not woken and event.statistics().tasks_waiting == 4
        event.set()
    assert sorted(woken) == [0, 1, 2, 3] and event.is_set()

    # Lock: mutual exclusion across checkpoints, no lost updates.
    lock = anyio.Lock()
    counter = holders = 0

    async def increment() -> None:
        nonlocal counter, holders
        for _ in range(10):
            async with lock:
                holders += 1
                assert holders == 1
                value = counter
                await anyio.sleep(0.1)
                counter = value + 1
                holders -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(increment)
    assert counter == 50 and not lock.locked()

    refused: list[bool] = []

    async def try_lock() -> None:
        try:
            lock.acquire_nowait()
        except anyio.WouldBlock:
            refused.append(True)

    async with lock, anyio.create_task_group() as tg:
        tg.start_soon(try_lock)
    assert refused == [True] and not lock.locked()

    # Semaphore: at most three holders; ten one-second jobs take four seconds.
    semaphore = anyio.Semaphore(3)
    active = peak = 0

    async def job() -> None:
        nonlocal active, peak
        async with semaphore:
            active += 1
            peak = max(peak, active)
            await anyio.sleep(1)
            active -= 1

    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(job)
    assert peak == 3 and semaphore.value == 3
    assert near(anyio.current_time() - t0, 4), anyio.current_time() - t0

    # CapacityLimiter: borrowers, statistics, and raising total_tokens admits waiters.
    limiter = anyio.CapacityLimiter(1)
    admitted: list[int] = []

    async def borrower(i: int) -> None:
        async with limiter:
            admitted.append(i)
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(borrower, i)
        await anyio.sleep(1)
        assert len(admitted) == 1 and limiter.borrowed_tokens == 1
        assert limiter.statistics().tasks_waiting == 2
        limiter.total_tokens = 3
        await anyio.sleep(1)
        assert sorted(admitted) == [0, 1, 2] and limiter.available_tokens == 0
        tg.cancel_scope.cancel()
    assert limiter.borrowed_tokens == 0

    # Condition: notify(1) wakes one waiter at a time.
    condition = anyio.Condition()
    notified: list[int] = []

    async def wait_condition(i: int) -> None:
        async with condition:
            await condition.wait()
            notified.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(wait_condition, i)
        await anyio.sleep(1)
        for expected in (1, 2, 3):
            async with condition:
                condition.notify(1)
            await anyio.sleep(1)
            assert len(notified) == expected, notified


SCENARIOS: dict[str, Callable[[], Awaitable[None]]] = {
    f.__name__: f
    for f in (task_groups, cancel_scopes, memory_streams, tcp_echo, files, threads,
              sync_primitives)
}


def main(scenario: str, runner: str) -> None:
    body = SCENARIOS[scenario]

    async def program() -> None:
        await body()
        ecocheck.ran_on_vivace()

    clock = trio.testing.MockClock(autojump_threshold=0)
    if runner == "anyio":
        anyio.run(program, backend="trio", backend_options={"clock": clock})
    elif runner == "trio":
        trio.run(program, clock=clock)
    else:
        raise SystemExit(f"unknown runner {runner!r}")
    print("ok", scenario, runner)


if __name__ == "__main__":
    main(*sys.argv[1:])
