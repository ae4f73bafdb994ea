"""``lowlevel.UnboundedQueue`` (deprecated; kept for trio compatibility).

Design notes
------------
``put_nowait`` never blocks; consumers take *everything* queued at once
(``get_batch``). ``_can_get`` is the hand-off flag: it becomes true when the queue goes
from empty to non-empty with nobody waiting, and stays false while items arrive for a
consumer that was already woken. That way, when a consumer is parked, the first
``put_nowait`` wakes exactly one of them (the oldest) and that consumer is promised the
whole batch: another task calling ``get_batch_nowait`` in between gets WouldBlock, and
the later puts before it runs join the same batch (no spurious wake-ups).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ._deprecate import warn_deprecated
from ._exceptions import WouldBlock
from ._impl import cancel_shielded_checkpoint
from ._ki import enable_ki_protection
from ._parking_lot import ParkingLot
from ._run import checkpoint_if_cancelled
from ._util import final

if TYPE_CHECKING:
    from typing import Self

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UnboundedQueueStatistics:
    """``qsize``: items queued; ``tasks_waiting``: tasks blocked in ``get_batch``."""

    qsize: int
    tasks_waiting: int


@final
class UnboundedQueue(Generic[T]):
    """A queue whose producers never block and whose consumers take batches.

    Deprecated: use ``open_memory_channel(math.inf)``. ``put_nowait`` always succeeds;
    ``get_batch`` returns every queued item (oldest first) as one non-empty list,
    waiting if there is none. ``async for batch in queue`` loops over batches forever.
    Waiting consumers are served in FIFO order.
    """

    __slots__ = ("__weakref__", "_can_get", "_data", "_lot")

    def __init__(self) -> None:
        warn_deprecated(
            "vivace.lowlevel.UnboundedQueue",
            "0.9.0",
            issue=497,
            instead="vivace.open_memory_channel(math.inf)",
        )
        self._lot = ParkingLot()
        self._data: list[T] = []
        self._can_get = False

    def __repr__(self) -> str:
        return f"<UnboundedQueue holding {len(self._data)} items>"

    def qsize(self) -> int:
        """How many items are queued."""
        return len(self._data)

    def empty(self) -> bool:
        """Whether nothing is queued (items promised to a woken consumer count as
        queued until it takes them)."""
        return not self._data

    @enable_ki_protection
    def put_nowait(self, obj: T) -> None:
        """Append *obj*; never blocks. The first item after the queue was empty wakes
        the oldest waiting consumer, if any."""
        if not self._data:
            if self._lot:
                self._lot.unpark(count=1)
            else:
                self._can_get = True
        self._data.append(obj)

    def _take_all(self) -> list[T]:
        batch = self._data
        self._data = []
        self._can_get = False
        return batch

    def get_batch_nowait(self) -> list[T]:
        """Take every queued item without blocking; WouldBlock if there is none (or
        they are promised to a consumer that was already woken)."""
        if not self._can_get:
            raise WouldBlock
        return self._take_all()

    async def get_batch(self) -> list[T]:
        """Take every queued item, waiting for at least one (a checkpoint)."""
        await checkpoint_if_cancelled()
        if not self._can_get:
            await self._lot.park()
            return self._take_all()
        batch = self._take_all()
        await cancel_shielded_checkpoint()
        return batch

    def statistics(self) -> UnboundedQueueStatistics:
        """Debugging information; see ``UnboundedQueueStatistics``."""
        return UnboundedQueueStatistics(qsize=len(self._data), tasks_waiting=len(self._lot))

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[T]:
        return await self.get_batch()
