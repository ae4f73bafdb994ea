"""Reference deadline heap: the pure-Python twin of ``_ext/_heap.pyx``.

Design notes
------------
An *indexed* binary min-heap keyed by ``(deadline, seq)``.  ``seq`` is a
counter taken on every push and update, so the order is total and equal
deadlines leave in the order they were (re-)keyed.

Why indexed rather than a plain ``heapq`` list with lazy deletion: cancel
scopes are exited early and re-keyed all the time; with lazy deletion each of
those leaves a dead entry behind until its old deadline passes, so the heap
grows with the churn instead of with the number of live deadlines.  Here each
entry knows its position, which makes remove and update real O(log n)
operations and keeps ``len(heap)`` equal to the number of live entries.

Handles mirror ``csrc/vv_heap.h`` bit for bit, so both engines hand out the
same values for the same sequence of operations:

* an entry lives in a *slot*; freed slots go on a LIFO free list and are
  reused first, new slots are numbered 0, 1, 2, ...;
* a handle is ``(generation << 32) | slot``; a slot's generation starts at 1
  and is bumped (skipping 0 on wrap-around) whenever its entry leaves, so a
  stale handle never matches a reused slot, and 0 is never a valid handle;
* ``clear()`` frees every slot and leaves the free list in ascending order.

Invariants (``_check_invariants`` verifies them):

1. heap order on ``(deadline, seq)`` between every node and its parent;
2. ``self._heap[e.pos] is e`` for every live entry ``e`` and
   ``self._slots[e.slot] is e``;
3. a slot is either live (``_slots[i]`` is an entry) or on the free list;
4. no NaN deadline is ever stored.

Every argument check and error message matches the compiled twin.
"""

from __future__ import annotations

import math
import numbers
from typing import Generic, TypeVar, final

__all__ = ["DeadlineHeap"]

_P = TypeVar("_P")

_SLOT_MASK = 0xFFFF_FFFF
# Generations run 1 .. 2**32 - 1 and wrap to 1: g % _GEN_MASK + 1.
_GEN_MASK = 0xFFFF_FFFF
_MAX_HANDLE = 0xFFFF_FFFF_FFFF_FFFF


def _as_real(x: object, what: str) -> float:
    """Validate and convert a deadline-like argument (as the compiled twin)."""
    if type(x) is float:
        d = x
    elif isinstance(x, (int, float, numbers.Real)):
        d = float(x)  # OverflowError for huge ints, like the compiled twin
    else:
        raise TypeError(f"{what} must be a real number (int or float), not {type(x).__name__}")
    if d != d:
        raise ValueError(f"{what} must not be NaN")
    return d


@final
class _Entry(Generic[_P]):
    __slots__ = ("deadline", "seq", "slot", "pos", "payload")

    def __init__(self, deadline: float, seq: int, slot: int, pos: int, payload: _P) -> None:
        self.deadline = deadline
        self.seq = seq
        self.slot = slot
        self.pos = pos
        self.payload = payload


def _less(a: _Entry[_P], b: _Entry[_P]) -> bool:
    return a.deadline < b.deadline or (a.deadline == b.deadline and a.seq < b.seq)


@final
class DeadlineHeap(Generic[_P]):
    """Min-heap of (deadline, insertion order) -> payload with O(log n)
    removal and re-keying through integer handles."""

    __slots__ = ("_heap", "_slots", "_gens", "_free", "_seq")

    def __init__(self) -> None:
        self._heap: list[_Entry[_P]] = []
        # _slots[i] is the live entry in slot i, or None if slot i is free.
        self._slots: list[_Entry[_P] | None] = []
        # Generation of slot i's current (or, when free, next) tenant.
        self._gens: list[int] = []
        # Free slot indices; the last one is reused first (LIFO, as in C).
        self._free: list[int] = []
        self._seq = 0

    # ---- internals ----

    # The sifts inline the (deadline, seq) comparison of _less: they are the
    # inner loops, and a call per level would double their cost.

    def _sift_up(self, pos: int, e: _Entry[_P]) -> None:
        heap = self._heap
        d, seq = e.deadline, e.seq
        while pos > 0:
            parent_pos = (pos - 1) >> 1
            parent = heap[parent_pos]
            pd = parent.deadline
            if d > pd or (d == pd and seq > parent.seq):
                break
            heap[pos] = parent
            parent.pos = pos
            pos = parent_pos
        heap[pos] = e
        e.pos = pos

    def _sift_down(self, pos: int, e: _Entry[_P]) -> None:
        heap = self._heap
        n = len(heap)
        d, seq = e.deadline, e.seq
        while True:
            child_pos = 2 * pos + 1
            if child_pos >= n:
                break
            child = heap[child_pos]
            if child_pos + 1 < n:
                right = heap[child_pos + 1]
                rd, cd = right.deadline, child.deadline
                if rd < cd or (rd == cd and right.seq < child.seq):
                    child_pos += 1
                    child = right
            cd = child.deadline
            if cd > d or (cd == d and child.seq > seq):
                break
            heap[pos] = child
            child.pos = pos
            pos = child_pos
        heap[pos] = e
        e.pos = pos

    def _resift(self, pos: int, e: _Entry[_P]) -> None:
        if pos > 0 and _less(e, self._heap[(pos - 1) >> 1]):
            self._sift_up(pos, e)
        else:
            self._sift_down(pos, e)

    def _live(self, h: object) -> _Entry[_P] | None:
        if not isinstance(h, int) or not 0 < h <= _MAX_HANDLE:
            return None
        slot = h & _SLOT_MASK
        if slot >= len(self._slots):
            return None
        e = self._slots[slot]
        if e is None or self._gens[slot] != h >> 32:
            return None
        return e

    def _free_slot(self, slot: int) -> None:
        self._slots[slot] = None
        self._gens[slot] = self._gens[slot] % _GEN_MASK + 1
        self._free.append(slot)

    def _take(self, pos: int) -> _P:
        heap = self._heap
        e = heap[pos]
        last = heap.pop()
        if last is not e:
            self._resift(pos, last)
        self._free_slot(e.slot)
        return e.payload

    # ---- public API ----

    def push(self, deadline: float, payload: _P) -> int:
        """Add ``payload`` due at ``deadline``; return its handle."""
        d = _as_real(deadline, "deadline")
        if self._free:
            slot = self._free.pop()
        else:
            slot = len(self._slots)
            self._slots.append(None)
            self._gens.append(1)
        e = _Entry(d, self._seq, slot, len(self._heap), payload)
        self._seq += 1
        self._slots[slot] = e
        self._heap.append(e)
        self._sift_up(e.pos, e)
        return (self._gens[slot] << 32) | slot

    def remove(self, h: int) -> _P:
        """Remove the entry for handle ``h`` and return its payload."""
        e = self._live(h)
        if e is None:
            raise KeyError(h)
        return self._take(e.pos)

    def discard(self, h: int) -> bool:
        """Remove the entry for ``h`` if present; return whether it was."""
        e = self._live(h)
        if e is None:
            return False
        self._take(e.pos)
        return True

    def update(self, h: int, deadline: float) -> None:
        """Give the entry for ``h`` a new deadline, keeping its handle."""
        d = _as_real(deadline, "deadline")
        e = self._live(h)
        if e is None:
            raise KeyError(h)
        e.deadline = d
        e.seq = self._seq
        self._seq += 1
        self._resift(e.pos, e)

    def peek_deadline(self) -> float:
        """Smallest deadline, or ``math.inf`` when empty."""
        return self._heap[0].deadline if self._heap else math.inf

    def peek(self) -> _P:
        """Payload with the smallest deadline (not removed)."""
        if not self._heap:
            raise IndexError("peek from an empty DeadlineHeap")
        return self._heap[0].payload

    def pop(self) -> _P:
        """Remove and return the payload with the smallest deadline."""
        if not self._heap:
            raise IndexError("pop from an empty DeadlineHeap")
        return self._take(0)

    def pop_expired(self, now: float) -> list[_P]:
        """Remove and return, in order, the payloads with deadline <= now."""
        t = _as_real(now, "now")
        heap = self._heap
        out: list[_P] = []
        while heap and heap[0].deadline <= t:
            out.append(self._take(0))
        return out

    def deadline_of(self, h: int) -> float:
        """Deadline of the entry for handle ``h``."""
        e = self._live(h)
        if e is None:
            raise KeyError(h)
        return e.deadline

    def clear(self) -> None:
        """Remove every entry; every outstanding handle becomes stale."""
        # Detach everything first, then drop the payloads (when `entries`
        # dies), so a payload's __del__ sees a consistent, empty heap.
        entries = self._heap
        self._heap = []
        for e in entries:
            self._slots[e.slot] = None
            self._gens[e.slot] = self._gens[e.slot] % _GEN_MASK + 1
        self._free = list(range(len(self._slots) - 1, -1, -1))
        del entries

    def __len__(self) -> int:
        return len(self._heap)

    def __contains__(self, h: object) -> bool:
        return self._live(h) is not None

    def __repr__(self) -> str:
        return f"<DeadlineHeap with {len(self._heap)} entries>"

    # The compiled twin is a final C type holding raw payload pointers: it can be
    # neither subclassed nor copied.  Refuse both here too (a shallow copy of this
    # class would even share the entry lists with the original).

    def __init_subclass__(cls, **kwargs: object) -> None:
        raise TypeError("type 'DeadlineHeap' is not an acceptable base type")

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("DeadlineHeap objects cannot be pickled or copied")

    def _check_invariants(self) -> None:
        """Raise AssertionError if the heap's internal invariants are broken."""
        if not self._invariants_hold():
            raise AssertionError("DeadlineHeap invariants are broken")

    def _invariants_hold(self) -> bool:
        heap, slots = self._heap, self._slots
        for i, e in enumerate(heap):
            if e.pos != i or e.slot >= len(slots) or slots[e.slot] is not e:
                return False
            if e.deadline != e.deadline:
                return False
            if i > 0 and _less(e, heap[(i - 1) >> 1]):
                return False
        live = sum(1 for e in slots if e is not None)
        free = set(self._free)
        return (
            live == len(heap)
            and len(free) == len(self._free)
            and all(0 <= i < len(slots) and slots[i] is None for i in free)
            and len(free) + live == len(slots)
            and len(self._gens) == len(slots)
            and all(g != 0 for g in self._gens)
        )
