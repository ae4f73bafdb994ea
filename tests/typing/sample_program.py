"""An ordinary program written against trio's public API, the way a user writes it.

scripts/typecheck checks it with ``mypy --strict`` and pyright (strict) against vivace,
and the same file with ``vivace`` replaced by ``trio`` against real trio: both must give
0 errors. tests/test_typing_sample.py runs it, so it stays a working program.
"""

from __future__ import annotations

import functools
import math
import ssl
import sys
import tempfile
from collections.abc import AsyncGenerator

import trustme

import vivace as trio
from vivace import testing

HOST = "127.0.0.1"


# ---------------------------------------------------------------- tasks and cancellation


async def started_worker(
    label: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    await trio.lowlevel.checkpoint()
    task_status.started(f"{label} ready")
    await trio.sleep_forever()


async def tasks_and_scopes() -> list[str]:
    seen: list[str] = []
    async with trio.open_nursery() as nursery:
        greeting: str = await nursery.start(started_worker, "worker")
        seen.append(greeting)
        nursery.start_soon(trio.sleep, 0.01, name="napper")
        nursery.cancel_scope.cancel(reason="done")

    with trio.CancelScope() as scope:
        scope.cancel()
        await trio.lowlevel.checkpoint()
    seen.append(f"cancelled_caught={scope.cancelled_caught}")

    with trio.move_on_after(0.01) as timeout_scope:
        await trio.sleep_forever()
    deadline: float = timeout_scope.deadline
    seen.append(f"moved on: {timeout_scope.cancelled_caught}, {deadline > 0}")

    try:
        with trio.fail_after(0.01):
            await trio.sleep(1)
    except trio.TooSlowError:
        seen.append("too slow")

    with trio.move_on_at(trio.current_time() + 0.01):
        seen.append(f"deadline {trio.current_effective_deadline() < math.inf}")

    try:
        async with trio.open_nursery() as failing:
            failing.start_soon(raise_value_error)
    except* ValueError as group:
        seen.append(f"{len(group.exceptions)} ValueError")
    return seen


async def raise_value_error() -> None:
    await trio.lowlevel.checkpoint()
    raise ValueError("expected")


# ---------------------------------------------------------------- channels and sync


@trio.as_safe_channel
async def count_to(limit: int) -> AsyncGenerator[int, None]:
    for number in range(1, limit + 1):
        yield number


async def channels() -> int:
    send_channel, receive_channel = trio.open_memory_channel[int](0)
    total = 0

    async def producer(channel: trio.MemorySendChannel[int]) -> None:
        async with channel:
            for value in range(5):
                await channel.send(value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer, send_channel.clone())
        await send_channel.aclose()
        async with receive_channel:
            async for value in receive_channel:
                total += value
    stats: trio.MemoryChannelStatistics = receive_channel.statistics()
    assert stats.open_receive_channels == 0

    async with count_to(3) as numbers:
        async for number in numbers:
            total += number

    buffered_send, buffered_receive = trio.open_memory_channel[str](math.inf)
    buffered_send.send_nowait("x")
    try:
        buffered_receive.receive_nowait()
        buffered_receive.receive_nowait()
    except trio.WouldBlock:
        total += 100
    return total


async def synchronization() -> list[str]:
    event = trio.Event()
    lock = trio.Lock()
    fifo_lock = trio.StrictFIFOLock()
    semaphore = trio.Semaphore(2, max_value=2)
    limiter = trio.CapacityLimiter(1)
    condition = trio.Condition()
    log: list[str] = []

    async def waiter() -> None:
        await event.wait()
        async with lock, fifo_lock, semaphore, limiter:
            log.append("inside every primitive")
        async with condition:
            await condition.wait()
            log.append("notified")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        event.set()
        await testing.wait_all_tasks_blocked()
        async with condition:
            condition.notify_all()

    lock_stats: trio.LockStatistics = lock.statistics()
    limiter_stats: trio.CapacityLimiterStatistics = limiter.statistics()
    log.append(f"{lock_stats.locked} {limiter_stats.total_tokens} {semaphore.value}")
    limiter.total_tokens = 3
    return log


# ---------------------------------------------------------------- networking


async def echo_handler(stream: trio.SocketStream) -> None:
    async with stream:
        async for chunk in stream:
            await stream.send_all(chunk)


async def networking() -> bytes:
    async with trio.open_nursery() as nursery:
        listeners: list[trio.SocketListener] = await nursery.start(
            functools.partial(trio.serve_tcp, echo_handler, 0, host=HOST)
        )
        port: int = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream(HOST, port)
        async with stream:
            await stream.send_all(b"ping")
            reply = await stream.receive_some(4)
        other = await testing.open_stream_to_socket_listener(listeners[0])
        await other.aclose()
        nursery.cancel_scope.cancel()

    udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with udp:
        await udp.bind((HOST, 0))
        await udp.sendto(b"datagram", udp.getsockname())
        data, _address = await udp.recvfrom(100)
    left, right = trio.socket.socketpair()
    with left, right:
        await left.send(b"pair")
        data += await right.recv(4)
    infos = await trio.socket.getaddrinfo(HOST, port, type=trio.socket.SOCK_STREAM)
    assert infos[0][0] == trio.socket.AF_INET
    return reply + data


async def tls() -> bytes:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("example.org").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    client_raw, server_raw = testing.memory_stream_pair()
    client = trio.SSLStream(client_raw, client_context, server_hostname="example.org")
    server = trio.SSLStream(server_raw, server_context, server_side=True)

    async def serve_one() -> None:
        await server.do_handshake()
        await server.send_all(await server.receive_some(5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one)
        await client.send_all(b"hello")
        answer = await client.receive_some(5)
    await client.aclose()
    await server.aclose()
    return bytes(answer)


# ---------------------------------------------------------------- threads, files, processes


def blocking_work(count: int) -> float:
    trio.from_thread.check_cancelled()
    now = trio.from_thread.run_sync(trio.current_time)
    trio.from_thread.run(trio.sleep, 0)
    return now + count


async def threads() -> float:
    limiter = trio.to_thread.current_default_thread_limiter()
    return await trio.to_thread.run_sync(blocking_work, 2, limiter=limiter)


async def files_and_processes() -> str:
    with tempfile.TemporaryDirectory() as directory:
        path = trio.Path(directory) / "note.txt"
        await path.write_text("first line\n")
        async with await trio.open_file(path, "a") as file:
            await file.write("second line\n")
        async with await trio.open_file(path) as file:
            lines = [line.rstrip() async for line in file]
        async with await path.open("rb") as binary:
            head: bytes = await binary.read(5)
            await binary.seek(0)
        lines.append(head.decode())
        exists = await path.exists()
        listing = await trio.Path(directory).iterdir()
        lines.extend(entry.name for entry in listing)
    result = await trio.run_process(
        [sys.executable, "-c", "print('child')"], capture_stdout=True
    )
    return f"{len(lines)} lines, exists={exists}, {result.stdout.decode().strip()}"


# ---------------------------------------------------------------- lowlevel and testing


async def lowlevel() -> str:
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()
    lot = trio.lowlevel.ParkingLot()
    woken: list[str] = []

    async def parked() -> None:
        await lot.park()
        woken.append("unparked")

    async def system_task() -> None:
        await trio.lowlevel.checkpoint()

    trio.lowlevel.spawn_system_task(system_task)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(parked)
        await testing.wait_all_tasks_blocked()
        lot.unpark_all()
    done = trio.Event()
    token.run_sync_soon(done.set)
    await done.wait()
    statistics = trio.lowlevel.current_statistics()
    return f"{task.name} {woken} {statistics.tasks_living > 0}"


class Countdown(trio.abc.ReceiveChannel[int]):
    """A user-defined channel: the abstract classes are generic, as trio's are."""

    def __init__(self, start: int) -> None:
        self._next = start

    async def receive(self) -> int:
        await trio.lowlevel.checkpoint()
        if self._next <= 0:
            raise trio.EndOfChannel
        self._next -= 1
        return self._next

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


REQUEST_ID: trio.lowlevel.RunVar[int] = trio.lowlevel.RunVar("REQUEST_ID", default=0)


async def abstract_types(stream: trio.abc.Stream, token: trio.lowlevel.TrioToken) -> list[int]:
    REQUEST_ID.set(7)
    await stream.send_all(b"x")
    received = [value async for value in Countdown(3)]
    token.run_sync_soon(lambda: None)
    return [REQUEST_ID.get(), *received]


async def with_mock_clock() -> float:
    start = trio.current_time()
    await trio.sleep(3600)
    return trio.current_time() - start


async def memory_streams() -> bytes:
    send_stream, receive_stream = testing.memory_stream_one_way_pair()
    await send_stream.send_all(b"through memory")
    return bytes(await receive_stream.receive_some())


async def main() -> None:
    print(await tasks_and_scopes())
    print(await channels())
    print(await synchronization())
    print(await networking())
    print(await tls())
    print(await threads())
    print(await files_and_processes())
    print(await lowlevel())
    print(await memory_streams())
    left, _right = testing.memory_stream_pair()
    print(await abstract_types(left, trio.lowlevel.current_trio_token()))


def run_all() -> float:
    trio.run(main)
    clock = testing.MockClock(autojump_threshold=0)
    return trio.run(with_mock_clock, clock=clock)


if __name__ == "__main__":
    print(run_all())
