"""The debug build's live-object counters (``VIVACE_DEBUG=1`` at build time)."""

from __future__ import annotations

import gc
import os

import vivace as trio
from vivace._core import _impl


def _debug_build_expected() -> bool:
    # scripts/_venv.sh records VIVACE_DEBUG in the environment it builds with.
    return os.environ.get("VIVACE_DEBUG", "") not in ("", "0")


def test_counters_exist_exactly_in_a_compiled_debug_build() -> None:
    counters = _impl.debug_counters()
    if _impl.ENGINE == "compiled" and _debug_build_expected():
        assert counters is not None
        assert set(counters) == {"tasks", "kernels", "deadline_heaps"}
    else:
        assert counters is None


def test_counters_follow_live_tasks_when_available() -> None:
    if _impl.debug_counters() is None:
        assert _impl.ENGINE == "reference" or not _debug_build_expected()
        return
    seen: list[dict[str, int] | None] = []

    async def child(event: trio.Event) -> None:
        await event.wait()

    async def main() -> None:
        event = trio.Event()
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(child, event)
            await trio.testing.wait_all_tasks_blocked()
            seen.append(_impl.debug_counters())
            event.set()

    gc.collect()
    before = _impl.debug_counters()
    assert before is not None
    trio.run(main)
    gc.collect()
    during = seen[0]
    assert during is not None
    # The ten children, the main task, the root task, the system tasks; one kernel.
    assert during["tasks"] >= before["tasks"] + 12
    assert during["kernels"] == before["kernels"] + 1
    assert during["deadline_heaps"] == before["deadline_heaps"] + 1
    assert _impl.debug_counters() == before
