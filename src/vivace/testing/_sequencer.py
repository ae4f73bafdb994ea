"""``testing.Sequencer``: force code in different tasks to run in a chosen order."""

from __future__ import annotations

from collections import defaultdict
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from .._core import Cancelled, final
from .._sync import Event

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@final
class Sequencer:
    """``async with seq(n):`` blocks until every block for positions ``0 .. n-1`` has
    finished, so tests can script interleavings across tasks. Each position may be used
    once; if a waiting task is cancelled, the whole sequence breaks (every waiter gets
    RuntimeError)."""

    __slots__ = ("_broken", "_claimed", "_sequence_points")

    def __init__(self) -> None:
        self._sequence_points: defaultdict[int, Event] = defaultdict(Event)
        self._claimed: set[int] = set()
        self._broken = False

    def _break(self) -> None:
        self._broken = True
        for waiter in self._sequence_points.values():
            waiter.set()

    @asynccontextmanager
    async def __call__(self, position: int) -> AsyncIterator[None]:
        if position in self._claimed:
            raise RuntimeError(f"Attempted to reuse sequence point {position}")
        if self._broken:
            raise RuntimeError("sequence broken!")
        self._claimed.add(position)
        if position > 0:
            turn = self._sequence_points[position]
            try:
                await turn.wait()
            except Cancelled:
                self._break()
                raise RuntimeError("Sequencer wait cancelled -- sequence broken") from None
            if self._broken:
                raise RuntimeError("sequence broken!")
        try:
            yield
        finally:
            self._sequence_points[position + 1].set()
