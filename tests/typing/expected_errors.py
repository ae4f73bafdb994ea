"""Misuses a type checker must reject, one per line marked ``# error``.

scripts/typecheck requires mypy --strict and pyright (strict) to report errors on exactly
the marked lines, against vivace and against real trio alike: vivace's types are as
strict as trio's, not looser (an ``Any`` where trio has a type would let these pass).
Never run.
"""

from __future__ import annotations

import vivace as trio
from vivace import testing


async def misuse() -> None:
    await trio.sleep("1")  # error
    trio.no_such_function()  # error
    print(trio.socket.NO_SUCH_CONSTANT)  # error
    send, receive = trio.open_memory_channel[int](0)
    await send.send("text")  # error
    text: str = await receive.receive()  # error
    async with await trio.open_file("data.bin", "rb") as file:
        chunk: str = await file.read()  # error
    print(trio.lowlevel.current_task().no_such_attribute)  # error
    with trio.CancelScope(deadline="soon"):  # error
        pass
    testing.MockClock(rate="fast")  # error
    exists: str = await trio.Path("x").exists()  # error
    print(text, chunk, exists)
