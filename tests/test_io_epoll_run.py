"""The epoll I/O manager under real workloads through ``run``: socket streaming,
closes nobody announced and fd-number reuse, many fds, fd leaks, and wake-ups from
other threads and guest mode.

These run on whichever engine ``_impl`` selected.
"""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import outcome
import pytest

import vivace
from _io_epoll_support import (
    THREAD_TIMEOUT,
    fill,
    io_stats,
    open_fds,
    until_blocked_in_epoll,
)
from vivace import lowlevel
from vivace.testing import trio_test, wait_all_tasks_blocked

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux-only")


@trio_test
async def test_socket_streaming_both_ways() -> None:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 10000)
    a.setblocking(False)
    b.setblocking(False)
    total = 300_000
    results: dict[str, int] = {}

    async def sender(sock: socket.socket, key: str) -> None:
        sent = 0
        chunk = b"x" * 7001
        while sent < total:
            await lowlevel.wait_writable(sock)
            sent += sock.send(chunk[: total - sent])
        sock.shutdown(socket.SHUT_WR)
        results[key] = sent

    async def receiver(sock: socket.socket, key: str) -> None:
        received = 0
        while True:
            await lowlevel.wait_readable(sock)
            data = sock.recv(65536)
            if not data:
                break
            received += len(data)
        results[key] = received

    with a, b:
        with vivace.fail_after(20):
            async with vivace.open_nursery() as nursery:
                nursery.start_soon(sender, a, "sent a")
                nursery.start_soon(sender, b, "sent b")
                nursery.start_soon(receiver, a, "got a")
                nursery.start_soon(receiver, b, "got b")
    assert results == {"sent a": total, "sent b": total, "got a": total, "got b": total}


@trio_test
async def test_socket_streaming_rewaits_without_epoll_ctl_churn() -> None:
    from vivace._core._run import _runner

    poller = _runner().io_manager._poller
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        rounds = 200

        async def receiver() -> None:
            for _ in range(rounds):
                await lowlevel.wait_readable(a)
                a.recv(10)

        async with vivace.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await wait_all_tasks_blocked()
            before = poller.ctl_calls
            for _ in range(rounds - 1):
                b.send(b"x")
                await wait_all_tasks_blocked()
            after = poller.ctl_calls
            b.send(b"x")
        assert after - before <= 2


@trio_test
async def test_unnotified_close_scenarios_are_survivable() -> None:
    # Closing an fd without notify_closing is a bug in the caller, but waits may
    # only return, raise OSError, or stay cancellable -- never wedge the run.
    ended: list[str] = []

    async def tolerant(wait: Callable[[Any], Any], fd: Any) -> None:
        try:
            await wait(fd)
        except OSError:
            ended.append("OSError")
        except vivace.Cancelled:
            ended.append("cancelled")
            raise
        else:
            ended.append("returned")

    def all_ended(tasks: int) -> bool:
        # Every waiter came out one of the tolerated ways, none is left parked.
        done = len(ended) == tasks and set(ended) <= {"OSError", "cancelled", "returned"}
        ended.clear()
        return done

    await wait_all_tasks_blocked()  # let the system tasks settle into their waits
    base = io_stats()

    with socket.socket() as s:
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(tolerant, lowlevel.wait_readable, s.fileno())
            await wait_all_tasks_blocked()
            s.close()
            await wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert all_ended(1)
    assert io_stats() == base

    with socket.socket() as s, s.dup():
        async with vivace.open_nursery() as nursery:
            nursery.start_soon(tolerant, lowlevel.wait_readable, s.fileno())
            await wait_all_tasks_blocked()
            s.close()
            await wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert all_ended(1)
    assert io_stats() == base

    for trigger in ["cancel", "data"]:
        a, b = socket.socketpair()
        with a, b, a.dup() as a2:
            a.setblocking(False)
            b.setblocking(False)
            fill(a)
            done = vivace.Event()

            async def watch_a2(a2: socket.socket, done: vivace.Event) -> None:
                await lowlevel.wait_readable(a2)
                done.set()

            async with vivace.open_nursery() as nursery:
                fd = a.fileno()
                nursery.start_soon(tolerant, lowlevel.wait_readable, fd)
                nursery.start_soon(tolerant, lowlevel.wait_writable, fd)
                nursery.start_soon(watch_a2, a2, done)
                await wait_all_tasks_blocked()
                a.close()
                if trigger == "data":
                    b.send(b"x")
                    await done.wait()
                    await wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
            assert done.is_set() == (trigger == "data")
        assert all_ended(2)
        assert io_stats() == base
        # The run still works afterwards.
        c, d = socket.socketpair()
        with c, d:
            d.send(b"z")
            await lowlevel.wait_readable(c)
            assert c.recv(1) == b"z"


@pytest.mark.parametrize("pass_socket", [False, True], ids=["fileno", "socket"])
@trio_test
async def test_fd_number_reused_after_unnotified_close(pass_socket: bool) -> None:
    # The same task is woken, closes the socket without notify_closing, and waits on
    # a new socket that got the same fd number -- all in one batch.
    a, b = socket.socketpair()
    fd = a.fileno()
    b.send(b"x")
    with vivace.fail_after(5):
        for _ in range(5):
            await lowlevel.wait_readable(a if pass_socket else a.fileno())
            a.close()
            b.close()
            a, b = socket.socketpair()
            if a.fileno() != fd:
                a, b = b, a
            assert a.fileno() == fd
            b.send(b"x")
    a.close()
    b.close()


@trio_test
async def test_wrapper_whose_fileno_changes_is_not_trusted() -> None:
    class Conn:
        def __init__(self) -> None:
            self.sock, self.peer = socket.socketpair()

        def fileno(self) -> int:
            return self.sock.fileno()

        def reconnect(self) -> None:
            self.sock.close()
            self.peer.close()
            self.sock, self.peer = socket.socketpair()
            if self.sock.fileno() > self.peer.fileno():
                self.sock, self.peer = self.peer, self.sock

    conn = Conn()
    try:
        with vivace.fail_after(5):
            for i in range(4):
                conn.peer.send(b"%d" % i)
                await lowlevel.wait_readable(conn)
                # Woken for the socket behind fileno() now, not an earlier one.
                assert conn.sock.recv(1) == b"%d" % i
                conn.reconnect()
    finally:
        conn.sock.close()
        conn.peer.close()


@trio_test
async def test_many_fds_wake_and_leak_nothing() -> None:
    count = 1000
    await wait_all_tasks_blocked()
    base = io_stats()
    before = open_fds()
    pairs = [socket.socketpair() for _ in range(count)]
    try:
        woken = 0

        async def reader(sock: socket.socket) -> None:
            nonlocal woken
            await lowlevel.wait_readable(sock)
            assert sock.recv(1) == b"x"
            woken += 1

        async with vivace.open_nursery() as nursery:
            for a, _ in pairs:
                nursery.start_soon(reader, a)
            await wait_all_tasks_blocked()
            assert io_stats().tasks_waiting_read == base.tasks_waiting_read + count
            for _, b in pairs:
                b.send(b"x")
        assert woken == count
        assert io_stats() == base
    finally:
        for a, b in pairs:
            lowlevel.notify_closing(a)
            a.close()
            b.close()
    assert open_fds() == before


def test_run_leaks_no_fds() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b:
            b.send(b"x")
            await lowlevel.wait_readable(a)

    vivace.run(main)  # warm up lazily created resources (thread caches, ...)
    gc.collect()
    before = open_fds()
    for _ in range(3):
        vivace.run(main)
    gc.collect()
    assert open_fds() == before


def test_force_wakeup_from_thread_ends_the_runs_blocking_wait() -> None:
    # MockClock without autojump: the sleep below blocks the run in get_events with
    # a huge timeout. Only the manager's force_wakeup, from another thread, can make
    # that wait return; afterwards the thread ends the sleep through run_sync_soon.
    blocked = threading.Event()
    returned = threading.Event()

    class Recorder(vivace.abc.Instrument):
        def before_io_wait(self, timeout: float) -> None:
            if timeout > 1000:
                blocked.set()

        def after_io_wait(self, timeout: float) -> None:
            if timeout > 1000:
                returned.set()

    clock = vivace.testing.MockClock()
    early: list[bool] = []

    async def main() -> None:
        from vivace._core._run import _runner

        manager = _runner().io_manager
        token = lowlevel.current_trio_token()

        run_thread = threading.get_native_id()

        def poke() -> None:
            try:
                if blocked.wait(THREAD_TIMEOUT):
                    until_blocked_in_epoll(run_thread)
                    early.append(returned.is_set())
                    manager.force_wakeup()
                    early.append(returned.wait(THREAD_TIMEOUT))
            finally:
                token.run_sync_soon(clock.jump, 100)

        thread = threading.Thread(target=poke)
        thread.start()
        try:
            await vivace.sleep(50)
        finally:
            thread.join(2 * THREAD_TIMEOUT)

    vivace.run(main, clock=clock, instruments=[Recorder()])
    assert early == [False, True]


def test_guest_mode_waits_for_io_in_a_worker_thread() -> None:
    import queue

    todo: queue.Queue[Callable[[], object]] = queue.Queue()
    done: list[outcome.Outcome[Any]] = []

    async def main() -> str:
        a, b = socket.socketpair()
        with a, b:
            timer = threading.Timer(0.02, b.send, (b"ping",))
            timer.start()
            await lowlevel.wait_readable(a)
            timer.join()
            return a.recv(10).decode()

    lowlevel.start_guest_run(main, run_sync_soon_threadsafe=todo.put, done_callback=done.append)
    deadline = time.monotonic() + THREAD_TIMEOUT
    while not done:
        todo.get(timeout=max(0.0, deadline - time.monotonic()))()
    assert done[0].unwrap() == "ping"
