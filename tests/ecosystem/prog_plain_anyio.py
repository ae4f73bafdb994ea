"""An ordinary trio + anyio program with no mention of vivace: the CLI forms
(``python -m vivace run prog_plain_anyio.py ARGS`` and ``... run -m prog_plain_anyio ARGS``)
must switch it to vivace with no change. Run with plain ``python``, it uses the real trio
and ecocheck's proof fails, which is how the tests know the proof can fail.

It sums the integers given as arguments through a memory stream, in an anyio task group
inside ``trio.run``, and prints ``sum=<n> name=<__name__>``.
"""

from __future__ import annotations

import sys

import anyio
import ecocheck
import trio


async def main(numbers: list[int]) -> int:
    send, receive = anyio.create_memory_object_stream[int]()
    total = 0

    async def add_all() -> None:
        nonlocal total
        async with receive:
            async for n in receive:
                total += n

    async with anyio.create_task_group() as tg:
        tg.start_soon(add_all)
        async with send, trio.open_nursery() as nursery:
            for n in numbers:
                nursery.start_soon(send.send, n)
            await nursery.start(_started_and_done)
    ecocheck.ran_on_vivace()
    return total


async def _started_and_done(*, task_status: trio.TaskStatus[None]) -> None:
    await trio.sleep(0)
    task_status.started()


if __name__ == "__main__":
    result = trio.run(main, [int(a) for a in sys.argv[1:]])
    print(f"sum={result} name={__name__}")
