"""Memory does not grow with the number of operations (issue 9: leak growth).

Each workload runs twice in a fresh ``run``: a warm-up pass, which brings free lists,
interned names, the deadline heap's array and the allocator's arenas to their working
size, then a measured pass. Whatever the measured pass leaves behind after a collection
is growth per operation; a leak of even one small object per operation shows up as
thousands of times the bounds below.

Two measures, read after ``gc.collect()``:

* ``sys.getallocatedblocks()``: blocks held by CPython's small-object allocator. Every
  Python object (the engine's Cython types too) and every small ``PyMem_Malloc`` buffer
  lives in one, so an object leaked per operation adds at least one block per operation.
  It is exact and costs nothing to read, where tracemalloc would slow every allocation
  of a million-operation workload several times over.
* the resident set size from ``/proc/self/statm``: catches what the first cannot see,
  such as C buffers taken from ``malloc`` directly.

Sizes: the issue asks for 1,000,000 spawns, 1,000,000 ``move_on_after`` + checkpoint and
100,000 cancelled sleeps. The compiled engine runs them at full size (about 12 s in all
on a loaded 2-core machine); the reference engine is several times slower per operation,
so by default it runs a tenth of each (about 5 s). ``VIVACE_LEAK_SCALE`` sets the fraction
of the full size for either engine: ``1`` gives the reference engine the full size,
``0.1`` is a quick look at the compiled one.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

import vivace as trio
from vivace._core import _impl

_PAGE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096

# Batches bound how many tasks or heap entries are alive at once, so the working set
# (and with it what the warm-up must reach) does not depend on the operation count.
_BATCH = 1000


def _scale() -> float:
    default = 1.0 if _impl.ENGINE == "compiled" else 0.1
    return float(os.environ.get("VIVACE_LEAK_SCALE", default))


def _count(full_size: int) -> int:
    return max(_BATCH, int(full_size * _scale()) // _BATCH * _BATCH)


def _rss() -> int:
    """The resident set size now where /proc has it; elsewhere the peak so far, whose
    growth across the measured pass bounds the same thing; 0 where neither exists."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, else KiB


@dataclass
class _Growth:
    ops: int
    blocks: int
    rss: int

    def __str__(self) -> str:
        return (
            f"{self.ops} ops: {self.blocks / self.ops:+.4f} blocks/op "
            f"({self.blocks:+d}), {self.rss / self.ops:+.3f} B/op RSS ({self.rss:+d} B)"
        )


def _measured_pass(workload: Callable[[int], int], ops: int) -> _Growth:
    gc.collect()
    blocks, rss = sys.getallocatedblocks(), _rss()
    done = workload(ops)
    gc.collect()
    growth = _Growth(ops, sys.getallocatedblocks() - blocks, _rss() - rss)
    # The workload must have done what it claims, or the bounds say nothing.
    assert done == ops, f"the workload completed {done} of {ops} operations"
    return growth


def _measure(workload: Callable[[int], int], ops: int) -> _Growth:
    done = workload(max(_BATCH, ops // 10 // _BATCH * _BATCH))  # warm-up
    assert done > 0
    growth = _measured_pass(workload, ops)
    if "resident set size" in _violations(growth):
        # The RSS moves in arena-sized steps whenever the allocator takes or returns
        # one (seen: +1.04 MiB over a 10,000-operation pass with 3 blocks of growth, on
        # a loaded machine). A leak grows it again on a second pass; an arena step does
        # not repeat, so the smaller of the two passes is what the bound judges.
        again = _measured_pass(workload, ops)
        growth = _Growth(ops, growth.blocks, min(growth.rss, again.rss))
    return growth


def _violations(growth: _Growth) -> list[str]:
    found = []
    # Blocks: one leaked object per operation would be >= 1.0 per op; the allowance is a
    # few hundred blocks of one-off caches (first-use method caches, a resized dict).
    if growth.blocks > 500 + growth.ops // 1000:
        found.append("allocated blocks")
    # RSS: pages come and go with the allocator's arenas; 1 MiB of slack absorbs that,
    # while a 16-byte malloc leaked per operation over 1M operations is 16 MiB.
    if growth.rss > (1 << 20) + 2 * growth.ops:
        found.append("resident set size")
    return found


# ---------------------------------------------------------------- workloads
# Each returns how many operations completed as intended.


async def _noop() -> None:
    pass


def _spawns(ops: int) -> int:
    async def main() -> int:
        done = 0
        for _ in range(ops // _BATCH):
            async with trio.open_nursery() as nursery:
                for _ in range(_BATCH):
                    nursery.start_soon(_noop)
            done += _BATCH
        return done

    return trio.run(main)


# One scope in 64 has already expired when the checkpoint runs, so the path that makes
# and catches a Cancelled is in the loop too, without dominating the run time.
_EXPIRED_EVERY = 64


def _move_on_after_checkpoints(ops: int) -> int:
    async def main() -> int:
        checkpoint = trio.lowlevel.checkpoint
        caught = 0
        for i in range(ops):
            with trio.move_on_after(0 if i % _EXPIRED_EVERY == 0 else 3600) as cs:
                await checkpoint()
            caught += cs.cancelled_caught
        assert caught == ops // _EXPIRED_EVERY + (ops % _EXPIRED_EVERY != 0)
        return ops

    return trio.run(main)


def _cancelled_sleeps(ops: int) -> int:
    # Half the sleepers are cancelled by their own scope's deadline (the deadline heap's
    # expiry path), half by cancel() from the parent (the sleep's abort path, which
    # takes its entry out of the heap). Virtual time: the autojump clock moves on as
    # soon as every task is parked.
    cancelled = 0

    async def by_deadline() -> None:
        nonlocal cancelled
        with trio.move_on_after(1) as cs:
            await trio.sleep(2)
        cancelled += cs.cancelled_caught

    async def by_cancel(scopes: list[trio.CancelScope]) -> None:
        nonlocal cancelled
        with trio.CancelScope() as cs:
            scopes.append(cs)
            await trio.sleep(2)
        cancelled += cs.cancelled_caught

    async def main() -> int:
        for _ in range(ops // _BATCH):
            scopes: list[trio.CancelScope] = []
            async with trio.open_nursery() as nursery:
                for i in range(_BATCH):
                    if i % 2:
                        nursery.start_soon(by_deadline)
                    else:
                        nursery.start_soon(by_cancel, scopes)
                # Every sleeper is parked before virtual time reaches 0.5.
                await trio.sleep(0.5)
                assert len(scopes) == _BATCH // 2
                for cs in scopes:
                    cs.cancel()
        return cancelled

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize(
    ("workload", "full_size"),
    [
        pytest.param(_spawns, 1_000_000, id="spawn"),
        pytest.param(_move_on_after_checkpoints, 1_000_000, id="move_on_after-checkpoint"),
        pytest.param(_cancelled_sleeps, 100_000, id="cancelled-sleep"),
    ],
)
def test_memory_is_flat_over_many_operations(
    workload: Callable[[int], int], full_size: int
) -> None:
    growth = _measure(workload, _count(full_size))
    print(f"{_impl.ENGINE} {workload.__name__}: {growth}")
    assert not _violations(growth), f"memory grew with the operation count: {growth}"


def test_the_bounds_catch_one_leaked_object_per_operation() -> None:
    # The measure itself: a workload that keeps one object per operation alive must
    # break both bounds (the blocks one only where pymalloc is in use: under
    # PYTHONMALLOC=malloc the count is always 0). The object is ~1.5 KiB of written
    # memory, so that the RSS bound breaks even when earlier tests in this process left
    # tens of MiB of freed memory for the leak to reuse without growing the RSS (a
    # float per operation was not enough for that in a full suite run).
    kept: list[object] = []

    def leaky(ops: int) -> int:
        async def main() -> int:
            for i in range(ops):
                kept.append(b"%08d" % i * 192)
                await trio.lowlevel.checkpoint()
            return ops

        return trio.run(main)

    ops = 100_000
    growth = _measure(leaky, ops)
    expected = ["allocated blocks"] if sys.getallocatedblocks() else []
    if _rss():
        expected.append("resident set size")
    assert expected, "no measure available here"
    assert _violations(growth) == expected, str(growth)
    # The warm-up, the measured pass and, the RSS bound broken by the first, a second
    # measured pass, which the leak broke too (the bound judges the smaller).
    passes = 2 if "resident set size" in expected else 1
    assert len(kept) == ops // 10 + passes * ops
