"""DeadlineHeap: ordering, handles, validation, ownership and a model check.

Runs against whichever engine ``vivace._core._impl`` selected; both twins must
behave (and word their errors) identically.
"""

from __future__ import annotations

import gc
import math
import random
import weakref
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from vivace._core._impl import DeadlineHeap


class Payload:
    """A weak-referenceable payload that remembers its name."""

    def __init__(self, name: object = None) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Payload({self.name!r})"


def drain(heap: DeadlineHeap) -> list:
    out = []
    while len(heap):
        out.append(heap.pop())
    return out


# ---------------------------------------------------------------- ordering


def test_pop_returns_payloads_in_deadline_order() -> None:
    heap = DeadlineHeap()
    for d in [5.0, 1.0, 4.0, 2.0, 3.0, -1.0, math.inf, 0.5]:
        heap.push(d, d)
    assert drain(heap) == [-1.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, math.inf]


def test_equal_deadlines_pop_in_insertion_order() -> None:
    heap = DeadlineHeap()
    for i in range(50):
        heap.push(7.0, i)
    assert drain(heap) == list(range(50))


def test_int_and_float_deadlines_compare_as_numbers() -> None:
    heap = DeadlineHeap()
    heap.push(2, "two")
    heap.push(1.5, "one and a half")
    heap.push(1, "one")
    assert drain(heap) == ["one", "one and a half", "two"]


def test_peek_deadline_is_smallest_deadline() -> None:
    heap = DeadlineHeap()
    heap.push(3.0, "a")
    heap.push(1.0, "b")
    heap.push(2.0, "c")
    assert heap.peek_deadline() == 1.0


def test_peek_returns_smallest_payload_without_removing_it() -> None:
    heap = DeadlineHeap()
    heap.push(2.0, "later")
    heap.push(1.0, "sooner")
    assert heap.peek() == "sooner"
    assert len(heap) == 2


def test_peek_deadline_is_inf_when_empty() -> None:
    assert DeadlineHeap().peek_deadline() == math.inf


def test_peek_on_empty_heap_raises_index_error() -> None:
    with pytest.raises(IndexError, match="^peek from an empty DeadlineHeap$"):
        DeadlineHeap().peek()


def test_pop_on_empty_heap_raises_index_error() -> None:
    with pytest.raises(IndexError, match="^pop from an empty DeadlineHeap$"):
        DeadlineHeap().pop()


# ---------------------------------------------------------------- remove / update


def test_remove_from_middle_returns_payload_and_keeps_order() -> None:
    heap = DeadlineHeap()
    handles = {d: heap.push(float(d), d) for d in range(20)}
    assert heap.remove(handles[7]) == 7
    assert heap.remove(handles[13]) == 13
    heap._check_invariants()
    assert drain(heap) == [d for d in range(20) if d not in (7, 13)]


def test_remove_of_the_minimum_exposes_the_next_one() -> None:
    heap = DeadlineHeap()
    h = heap.push(1.0, "first")
    heap.push(2.0, "second")
    heap.remove(h)
    assert heap.peek_deadline() == 2.0
    assert heap.peek() == "second"


def test_discard_returns_whether_the_entry_was_present() -> None:
    heap = DeadlineHeap()
    h = heap.push(1.0, "x")
    assert heap.discard(h) is True
    assert heap.discard(h) is False
    assert len(heap) == 0


def test_update_to_earlier_deadline_moves_entry_up() -> None:
    heap = DeadlineHeap()
    for d in range(10):
        heap.push(float(d), d)
    h = heap.push(100.0, "late")
    heap.update(h, -1.0)
    heap._check_invariants()
    assert heap.peek() == "late"
    assert heap.deadline_of(h) == -1.0


def test_update_to_later_deadline_moves_entry_down() -> None:
    heap = DeadlineHeap()
    h = heap.push(0.0, "early")
    for d in range(1, 10):
        heap.push(float(d), d)
    heap.update(h, 5.5)
    heap._check_invariants()
    assert drain(heap) == [1, 2, 3, 4, 5, "early", 6, 7, 8, 9]


def test_update_keeps_the_handle_valid() -> None:
    heap = DeadlineHeap()
    h = heap.push(1.0, "x")
    heap.update(h, 9.0)
    assert h in heap
    assert heap.remove(h) == "x"


def test_update_orders_after_existing_equal_deadlines() -> None:
    heap = DeadlineHeap()
    first = heap.push(1.0, "first")
    heap.push(1.0, "second")
    heap.update(first, 1.0)
    assert drain(heap) == ["second", "first"]


def test_deadline_of_returns_the_current_deadline() -> None:
    heap = DeadlineHeap()
    h = heap.push(3, "x")
    assert heap.deadline_of(h) == 3.0
    assert type(heap.deadline_of(h)) is float


# ---------------------------------------------------------------- handles


def test_remove_with_stale_handle_raises_key_error() -> None:
    heap = DeadlineHeap()
    h = heap.push(1.0, "x")
    heap.remove(h)
    with pytest.raises(KeyError) as info:
        heap.remove(h)
    assert info.value.args == (h,)


def test_stale_handle_does_not_match_a_reused_slot() -> None:
    heap = DeadlineHeap()
    old = heap.push(1.0, "old")
    heap.remove(old)
    new = heap.push(2.0, "new")
    assert new != old
    assert old not in heap
    with pytest.raises(KeyError):
        heap.remove(old)
    with pytest.raises(KeyError):
        heap.update(old, 0.0)
    with pytest.raises(KeyError):
        heap.deadline_of(old)
    assert heap.remove(new) == "new"


def test_handle_of_popped_entry_is_stale() -> None:
    heap = DeadlineHeap()
    h = heap.push(1.0, "x")
    heap.pop()
    assert h not in heap
    with pytest.raises(KeyError):
        heap.update(h, 2.0)


def test_handle_values_encode_generation_and_slot() -> None:
    # Both engines hand out the same values: (generation << 32) | slot,
    # generations starting at 1, freed slots reused last-in first-out.
    heap = DeadlineHeap()
    a = heap.push(1.0, "a")
    b = heap.push(1.0, "b")
    assert (a, b) == ((1 << 32) | 0, (1 << 32) | 1)
    heap.remove(a)
    heap.remove(b)
    assert heap.push(1.0, "c") == (2 << 32) | 1
    assert heap.push(1.0, "d") == (2 << 32) | 0


@pytest.mark.parametrize(
    "handle", [0, -1, 1, 2**64, 2**64 + (1 << 32), 10**30, "1", 1.0, None, True]
)
def test_unknown_handles_raise_key_error_naming_the_handle(handle: object) -> None:
    heap = DeadlineHeap()
    heap.push(1.0, "x")
    for op in (heap.remove, heap.deadline_of, lambda h: heap.update(h, 1.0)):
        with pytest.raises(KeyError) as info:
            op(handle)
        assert info.value.args == (handle,)
    assert handle not in heap
    assert heap.discard(handle) is False
    assert len(heap) == 1


def test_update_with_stale_handle_raises_key_error() -> None:
    heap = DeadlineHeap()
    h = heap.push(1.0, "x")
    heap.remove(h)
    with pytest.raises(KeyError):
        heap.update(h, 2.0)


# ---------------------------------------------------------------- validation


def test_push_nan_raises_value_error() -> None:
    heap = DeadlineHeap()
    with pytest.raises(ValueError, match="^deadline must not be NaN$"):
        heap.push(math.nan, "x")
    assert len(heap) == 0


def test_update_to_nan_raises_value_error_and_keeps_the_entry() -> None:
    heap = DeadlineHeap()
    h = heap.push(1.0, "x")
    with pytest.raises(ValueError, match="^deadline must not be NaN$"):
        heap.update(h, math.nan)
    assert heap.deadline_of(h) == 1.0


@pytest.mark.parametrize(
    ("value", "type_name"),
    [("1.0", "str"), (None, "NoneType"), (Decimal(1), "Decimal"), (1j, "complex"), ([], "list")],
)
def test_push_non_number_raises_type_error(value: object, type_name: str) -> None:
    heap = DeadlineHeap()
    with pytest.raises(TypeError) as info:
        heap.push(value, "x")
    assert str(info.value) == f"deadline must be a real number (int or float), not {type_name}"
    assert len(heap) == 0


def test_update_to_non_number_raises_type_error() -> None:
    heap = DeadlineHeap()
    h = heap.push(1.0, "x")
    with pytest.raises(TypeError, match="^deadline must be a real number"):
        heap.update(h, "soon")
    assert heap.deadline_of(h) == 1.0


def test_update_validates_the_deadline_before_the_handle() -> None:
    with pytest.raises(ValueError, match="^deadline must not be NaN$"):
        DeadlineHeap().update(12345, math.nan)


def test_push_accepts_infinities_and_other_real_numbers() -> None:
    heap = DeadlineHeap()
    heap.push(math.inf, "inf")
    heap.push(-math.inf, "-inf")
    heap.push(Fraction(1, 2), "half")
    heap.push(True, "bool is an int")
    assert drain(heap) == ["-inf", "half", "bool is an int", "inf"]


def test_push_int_too_large_for_float_raises_overflow_error() -> None:
    with pytest.raises(OverflowError):
        DeadlineHeap().push(10**400, "x")


def test_pop_expired_rejects_nan_now() -> None:
    heap = DeadlineHeap()
    heap.push(1.0, "x")
    with pytest.raises(ValueError, match="^now must not be NaN$"):
        heap.pop_expired(math.nan)
    assert len(heap) == 1


def test_pop_expired_rejects_non_number_now() -> None:
    with pytest.raises(TypeError, match=r"^now must be a real number \(int or float\), not str$"):
        DeadlineHeap().pop_expired("now")


# ---------------------------------------------------------------- pop_expired


def test_pop_expired_includes_deadline_equal_to_now() -> None:
    heap = DeadlineHeap()
    heap.push(5.0, "due")
    assert heap.pop_expired(5.0) == ["due"]
    assert len(heap) == 0


def test_pop_expired_leaves_later_deadlines() -> None:
    heap = DeadlineHeap()
    heap.push(5.0, "due")
    heap.push(math.nextafter(5.0, math.inf), "not yet")
    assert heap.pop_expired(5.0) == ["due"]
    assert heap.peek() == "not yet"


def test_pop_expired_returns_deadline_then_insertion_order() -> None:
    heap = DeadlineHeap()
    heap.push(3.0, "c")
    heap.push(1.0, "a1")
    heap.push(2.0, "b")
    heap.push(1.0, "a2")
    heap.push(9.0, "later")
    assert heap.pop_expired(3) == ["a1", "a2", "b", "c"]
    assert len(heap) == 1


def test_pop_expired_with_nothing_due_returns_empty_list() -> None:
    heap = DeadlineHeap()
    heap.push(1.0, "x")
    assert heap.pop_expired(0.5) == []
    assert DeadlineHeap().pop_expired(0.0) == []


def test_pop_expired_at_inf_takes_infinite_deadlines_too() -> None:
    heap = DeadlineHeap()
    heap.push(math.inf, "never")
    heap.push(1.0, "x")
    assert heap.pop_expired(math.inf) == ["x", "never"]


# ---------------------------------------------------------------- len / contains / clear


def test_len_and_contains_track_entries() -> None:
    heap = DeadlineHeap()
    assert len(heap) == 0 and not heap
    h1 = heap.push(1.0, "a")
    h2 = heap.push(2.0, "b")
    assert len(heap) == 2 and h1 in heap and h2 in heap
    heap.remove(h1)
    assert len(heap) == 1 and h1 not in heap and h2 in heap


def test_clear_empties_the_heap_and_invalidates_handles() -> None:
    heap = DeadlineHeap()
    handles = [heap.push(float(i), i) for i in range(10)]
    heap.clear()
    assert len(heap) == 0
    assert heap.peek_deadline() == math.inf
    assert not any(h in heap for h in handles)
    heap._check_invariants()


def test_heap_is_usable_after_clear_and_old_handles_stay_stale() -> None:
    heap = DeadlineHeap()
    old = [heap.push(float(i), i) for i in range(5)]
    heap.clear()
    new = [heap.push(float(i), -i) for i in range(5)]
    assert set(old).isdisjoint(new)
    for h in old:
        with pytest.raises(KeyError):
            heap.remove(h)
    assert drain(heap) == [0, -1, -2, -3, -4]


def test_clear_reuses_slots_from_the_lowest_index() -> None:
    heap = DeadlineHeap()
    for i in range(3):
        heap.push(float(i), i)
    heap.clear()
    assert [heap.push(0.0, i) & 0xFFFF_FFFF for i in range(4)] == [0, 1, 2, 3]


def test_clear_of_an_empty_heap_also_resets_slot_order() -> None:
    heap = DeadlineHeap()
    handles = [heap.push(float(i), i) for i in range(3)]
    for h in handles:
        heap.remove(h)  # the free list now yields slot 2 first
    heap.clear()
    assert heap.push(0.0, "x") & 0xFFFF_FFFF == 0


def test_repr_shows_the_entry_count() -> None:
    heap = DeadlineHeap()
    heap.push(1.0, "x")
    assert repr(heap) == "<DeadlineHeap with 1 entries>"


def test_class_can_be_subscripted_for_annotations() -> None:
    alias = DeadlineHeap[int]
    assert alias.__origin__ is DeadlineHeap


# ---------------------------------------------------------------- ownership


def test_removed_payload_is_released_by_the_heap() -> None:
    heap = DeadlineHeap()
    p = Payload()
    ref = weakref.ref(p)
    h = heap.push(1.0, p)
    del p
    assert ref() is not None
    heap.remove(h)
    assert ref() is None


def test_discarded_payload_is_released() -> None:
    heap = DeadlineHeap()
    p = Payload()
    ref = weakref.ref(p)
    h = heap.push(1.0, p)
    del p
    heap.discard(h)
    assert ref() is None


def test_popped_and_expired_payloads_are_released() -> None:
    heap = DeadlineHeap()
    p1, p2 = Payload(1), Payload(2)
    refs = [weakref.ref(p1), weakref.ref(p2)]
    heap.push(1.0, p1)
    heap.push(2.0, p2)
    del p1, p2
    heap.pop()
    heap.pop_expired(2.0)
    assert [r() for r in refs] == [None, None]


def test_updated_payload_is_neither_leaked_nor_released_early() -> None:
    heap = DeadlineHeap()
    p = Payload()
    ref = weakref.ref(p)
    h = heap.push(1.0, p)
    del p
    heap.update(h, 2.0)
    assert ref() is not None
    heap.remove(h)
    assert ref() is None


def test_clear_releases_payloads() -> None:
    heap = DeadlineHeap()
    refs = []
    for i in range(10):
        p = Payload(i)
        refs.append(weakref.ref(p))
        heap.push(float(i), p)
    del p
    heap.clear()
    assert all(r() is None for r in refs)


def test_dropping_the_heap_releases_payloads() -> None:
    heap = DeadlineHeap()
    p = Payload()
    ref = weakref.ref(p)
    heap.push(1.0, p)
    del p, heap
    assert ref() is None


def test_heap_in_a_reference_cycle_is_collected() -> None:
    # scope -> heap -> scope, as when a cancel scope keeps its runner alive.
    heap = DeadlineHeap()
    p = Payload()
    p.name = heap
    ref = weakref.ref(p)
    heap.push(1.0, p)
    del p, heap
    gc.collect()
    assert ref() is None


def test_payload_finalizer_may_reenter_the_heap_during_clear() -> None:
    heap = DeadlineHeap()

    class Reenter:
        def __del__(self) -> None:
            heap.push(0.0, "pushed from __del__")

    heap.push(1.0, Reenter())
    heap.push(2.0, "plain")
    heap.clear()
    heap._check_invariants()
    assert drain(heap) == ["pushed from __del__"]


def test_payload_finalizer_may_reenter_the_heap_during_discard() -> None:
    heap = DeadlineHeap()

    class Reenter:
        def __del__(self) -> None:
            heap.push(0.0, "pushed from __del__")

    h = heap.push(1.0, Reenter())
    heap.push(2.0, "plain")
    heap.discard(h)
    heap._check_invariants()
    assert drain(heap) == ["pushed from __del__", "plain"]


# ---------------------------------------------------------------- model checks


def test_random_operations_match_a_sorted_model() -> None:
    rng = random.Random(20240601)
    heap = DeadlineHeap()
    model: dict[int, tuple[float, int, int]] = {}  # handle -> (deadline, seq, payload)
    dead: list[int] = []
    seq = 0
    for step in range(20_000):
        op = rng.random()
        if op < 0.40 or not model:
            d = float(rng.randrange(50))
            h = heap.push(d, step)
            assert h not in model
            model[h] = (d, seq, step)
            seq += 1
        elif op < 0.60:
            h = rng.choice(list(model))
            assert heap.remove(h) == model.pop(h)[2]
            dead.append(h)
        elif op < 0.80:
            h = rng.choice(list(model))
            d = float(rng.randrange(50))
            heap.update(h, d)
            model[h] = (d, seq, model[h][2])
            seq += 1
        elif op < 0.90:
            now = float(rng.randrange(50))
            due = sorted(v for v in model.values() if v[0] <= now)
            assert heap.pop_expired(now) == [v[2] for v in due]
            for h in [h for h, v in model.items() if v[0] <= now]:
                del model[h]
                dead.append(h)
        elif dead:
            h = rng.choice(dead)
            assert h not in heap
            with pytest.raises(KeyError):
                heap.remove(h)
        assert len(heap) == len(model)
        expected_min = min(model.values(), default=(math.inf, 0, None))
        assert heap.peek_deadline() == expected_min[0]
        if step % 500 == 0:
            heap._check_invariants()
    assert drain(heap) == [v[2] for v in sorted(model.values())]


class DeadlineHeapMachine(RuleBasedStateMachine):
    """Hypothesis drives push/remove/update/pop/pop_expired against a dict model."""

    handles = Bundle("handles")
    deadlines = st.one_of(st.integers(-3, 3).map(float), st.just(math.inf))

    def __init__(self) -> None:
        super().__init__()
        self.heap = DeadlineHeap()
        self.model: dict[int, tuple[float, int, int]] = {}
        self.seq = 0

    def _key_order(self) -> list[int]:
        return [h for h, _ in sorted(self.model.items(), key=lambda kv: kv[1][:2])]

    @rule(target=handles, deadline=deadlines)
    def push(self, deadline: float) -> int:
        h = self.heap.push(deadline, self.seq)
        self.model[h] = (deadline, self.seq, self.seq)
        self.seq += 1
        return h

    @rule(h=handles)
    def remove(self, h: int) -> None:
        if h in self.model:
            assert self.heap.remove(h) == self.model.pop(h)[2]
        else:
            with pytest.raises(KeyError):
                self.heap.remove(h)

    @rule(h=handles, deadline=deadlines)
    def update(self, h: int, deadline: float) -> None:
        if h in self.model:
            self.heap.update(h, deadline)
            self.model[h] = (deadline, self.seq, self.model[h][2])
            self.seq += 1
        else:
            with pytest.raises(KeyError):
                self.heap.update(h, deadline)

    @precondition(lambda self: bool(self.model))
    @rule()
    def pop(self) -> None:
        first = self._key_order()[0]
        assert self.heap.pop() == self.model.pop(first)[2]

    @rule(now=deadlines)
    def pop_expired(self, now: float) -> None:
        due = [h for h in self._key_order() if self.model[h][0] <= now]
        assert self.heap.pop_expired(now) == [self.model.pop(h)[2] for h in due]

    @rule()
    def clear(self) -> None:
        self.heap.clear()
        self.model.clear()

    @invariant()
    def matches_model(self) -> None:
        assert len(self.heap) == len(self.model)
        expected = min((v[0] for v in self.model.values()), default=math.inf)
        assert self.heap.peek_deadline() == expected
        for h, v in self.model.items():
            assert self.heap.deadline_of(h) == v[0]
        self.heap._check_invariants()


TestDeadlineHeapMachine = DeadlineHeapMachine.TestCase
TestDeadlineHeapMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_many_pushes_then_random_removes_leave_the_heap_empty_and_valid() -> None:
    rng = random.Random(7)
    heap = DeadlineHeap()
    n = 200_000
    handles = [heap.push(rng.random() * 1000.0, i) for i in range(n)]
    assert len(heap) == n
    heap._check_invariants()
    rng.shuffle(handles)
    for h in handles[: n // 2]:
        heap.remove(h)
    heap._check_invariants()
    for h in handles[n // 2 :]:
        heap.remove(h)
    assert len(heap) == 0
    assert heap.peek_deadline() == math.inf
    heap._check_invariants()
