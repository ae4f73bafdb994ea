"""Issue 11's acceptance test: 200 children spawned and cancelled at random points leave
no zombie and no extra fd, with pidfds and with the waitid fallback."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from functools import partial
from typing import Any

import pytest

import vivace as trio
import vivace._subprocess as vivace_subprocess
from vivace.lowlevel import checkpoint, open_process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

LONG_SLEEP = ["sleep", "3600"]
KINDS = ["run_sleep", "run_io", "run_quick", "start", "open_aclose", "open_wait_kill"]


def zombie_children() -> list[str]:
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # exited between listdir and open
        # The command name may contain spaces; the fields after its ')' do not.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if ppid == me and state == "Z":
            found.append(stat)
    return found


async def one_child(kind: str, rng: random.Random) -> None:
    if kind == "run_sleep":
        await trio.run_process(LONG_SLEEP)
    elif kind == "run_io":
        data = rng.randbytes(rng.choice([0, 10, 100_000]))
        await trio.run_process(["cat"], stdin=data, capture_stdout=True, capture_stderr=True)
    elif kind == "run_quick":
        await trio.run_process(["true"])
    elif kind == "start":
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    trio.run_process, LONG_SLEEP, stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
            )
            await trio.sleep_forever()
    elif kind == "open_aclose":
        proc = await open_process(
            LONG_SLEEP, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        async with proc:
            await proc.wait()
    else:
        proc = await open_process(LONG_SLEEP, stdout=subprocess.DEVNULL)
        try:
            await proc.wait()
        finally:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()


async def spawn_and_cancel(count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    outcomes = {"cancelled": 0, "finished": 0}
    # A few children at a time: enough overlap to interleave, little load on 2 cores.
    limiter = trio.CapacityLimiter(8)

    async def run_one(kind: str, child_rng: random.Random, delay: float, yields: int) -> None:
        async with limiter:
            # Cancel after a random number of scheduler passes, or a random few
            # milliseconds of real time, whichever comes first: anywhere from before
            # the spawn to after the child is running.
            finished = False
            with trio.move_on_after(delay):
                async with trio.open_nursery() as nursery:

                    async def cancel_after_yields() -> None:
                        for _ in range(yields):
                            await checkpoint()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(cancel_after_yields)
                    await one_child(kind, child_rng)
                    finished = True
                    nursery.cancel_scope.cancel()
            outcomes["finished" if finished else "cancelled"] += 1

    with trio.fail_after(120):  # hang guard only
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                kind = rng.choice(KINDS)
                child_rng = random.Random(rng.random())
                nursery.start_soon(run_one, kind, child_rng, rng.uniform(0, 0.03),
                                   rng.randrange(0, 40))
    return outcomes


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "waitid"])
def test_200_children_cancelled_at_random_points_leave_no_zombie_or_fd(
    pidfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pidfd and not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open here")
    monkeypatch.setattr(vivace_subprocess, "can_try_pidfd_open", pidfd)
    spawned: list[int] = []

    class RecordingPopen(subprocess.Popen[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            spawned.append(self.pid)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    fds_before = sorted(os.listdir("/proc/self/fd"))

    outcomes = trio.run(spawn_and_cancel, 200, 11)

    assert sum(outcomes.values()) == 200
    assert outcomes["cancelled"] > 100  # most children really were cancelled
    assert len(spawned) > 150  # and most were cancelled after their spawn
    for pid in spawned:
        with pytest.raises(ChildProcessError):  # reaped: no longer our child
            os.waitpid(pid, os.WNOHANG)
    assert zombie_children() == []
    with pytest.raises(ChildProcessError):  # no child of ours is left at all
        os.waitpid(-1, os.WNOHANG)
    assert sorted(os.listdir("/proc/self/fd")) == fds_before
