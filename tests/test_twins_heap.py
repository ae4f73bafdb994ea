"""Twin tests of the deadline heap: ``vivace._core._heap_py.DeadlineHeap`` (reference)
against ``vivace._core._ext._heap.DeadlineHeap`` (compiled, over ``csrc/vv_heap.h``).

Both twins get the same operation sequences -- hand-made ones with literal expectations,
and seeded random ones of a few thousand operations -- and every result, every handle
value and every error (type, message, arguments) is compared.  The random sequences
are also checked against a small model (live entries keyed by handle, ordered by
deadline then by the order they were last (re-)keyed), so the reference run is a real
test too, not a comparison of the reference with itself.

Messages are compared verbatim except for one thing the twins cannot share: a C type's
name in interpreter-made messages is qualified with its module
(``'vivace._core._ext._heap.DeadlineHeap' object is not iterable``), so ``norm``
strips that prefix.  Errors raised by argument binding (wrong number of arguments) are
worded by CPython for one twin and by Cython for the other; there only the type is
compared.

The compiled twin is required when ``VIVACE_REQUIRE_EXTENSIONS=1``; otherwise, if it
was not built, only the reference is tested.
"""

from __future__ import annotations

import copy
import gc
import math
import numbers
import os
import pickle
import random
import weakref
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from vivace._core import _heap_py

_REQUIRED = os.environ.get("VIVACE_REQUIRE_EXTENSIONS", "") not in ("", "0")
try:
    from vivace._core._ext import _heap as _heap_c
except ImportError:  # not built
    if _REQUIRED:
        raise
    _heap_c = None

REFERENCE: Any = _heap_py.DeadlineHeap
HEAPS = [pytest.param(REFERENCE, id="reference")]
if _heap_c is not None:
    HEAPS.append(pytest.param(_heap_c.DeadlineHeap, id="compiled"))

twins = pytest.mark.parametrize("Heap", HEAPS)

H0 = 1 << 32  # generation 1, slot 0: the first handle a fresh heap hands out
GEN = 1 << 32


def norm(message: str) -> str:
    return message.replace("vivace._core._ext._heap.DeadlineHeap", "DeadlineHeap")


def call(fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """``("ok", result)`` or ``(error type name, normalised message, args)``."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001
        args = tuple(norm(a) if isinstance(a, str) else a for a in exc.args)
        return (type(exc).__name__, norm(str(exc)), args)


def drain(heap: Any) -> list[Any]:
    out = []
    while len(heap):
        out.append(heap.pop())
    return out


class Real:
    """A numbers.Real that is neither int nor float (registered below)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        # Test ids come from repr; pytest-xdist needs them the same in every worker.
        return f"Real({self.value!r})"


numbers.Real.register(Real)


class FloatSub(float):
    pass


class IntSub(int):
    pass


# ------------------------------------------------------------------ hand-made sequences


@twins
def test_equal_deadlines_leave_in_push_order_and_update_rekeys_last(Heap: Any) -> None:
    heap = Heap()
    handles = [heap.push(5.0, name) for name in "abcde"]
    heap.push(-0.0, "minus zero")
    heap.push(0, "zero")  # equal to -0.0: push order decides
    heap.update(handles[1], 5)  # same deadline, re-keyed: now after "e"
    heap.update(handles[3], 5.0)
    assert drain(heap) == ["minus zero", "zero", "a", "c", "e", "b", "d"]
    heap._check_invariants()


@twins
def test_infinities_order_and_pop_expired_boundaries(Heap: Any) -> None:
    heap = Heap()
    for d, p in [(math.inf, "inf"), (1.0, "one"), (-math.inf, "-inf"), (1, "one again")]:
        heap.push(d, p)
    assert heap.peek_deadline() == -math.inf
    assert heap.pop_expired(-math.inf) == ["-inf"]
    assert heap.pop_expired(0.999) == []
    assert heap.pop_expired(1) == ["one", "one again"]  # deadline == now is due
    assert heap.pop_expired(1e308) == []
    assert heap.pop_expired(math.inf) == ["inf"]
    assert heap.peek_deadline() == math.inf
    assert len(heap) == 0


@twins
def test_handle_values_follow_slot_and_generation_rules(Heap: Any) -> None:
    heap = Heap()
    a, b, c = heap.push(1, "a"), heap.push(2, "b"), heap.push(3, "c")
    assert (a, b, c) == (H0, H0 + 1, H0 + 2)
    assert heap.remove(a) == "a"
    assert heap.pop() == "b"
    # Freed slots are reused last-freed first, each with its generation bumped.
    assert heap.push(4, "d") == 2 * GEN + 1
    assert heap.push(5, "e") == 2 * GEN + 0
    assert heap.push(6, "f") == H0 + 3  # free list empty: a new slot
    heap.clear()
    # clear() frees every slot and hands them out again from slot 0 upwards.
    assert [heap.push(0, i) for i in range(5)] == [
        3 * GEN + 0,
        3 * GEN + 1,
        2 * GEN + 2,
        2 * GEN + 3,
        H0 + 4,
    ]
    heap._check_invariants()


@twins
def test_stale_handles_never_match_a_reused_slot(Heap: Any) -> None:
    heap = Heap()
    old = heap.push(1.0, "old")
    assert heap.discard(old) is True
    new = heap.push(2.0, "new")
    assert new == old + GEN  # same slot, next generation
    assert old not in heap and new in heap
    assert call(heap.remove, old) == ("KeyError", str(old), (old,))
    assert call(heap.update, old, 3.0) == ("KeyError", str(old), (old,))
    assert call(heap.deadline_of, old) == ("KeyError", str(old), (old,))
    assert heap.discard(old) is False
    assert heap.deadline_of(new) == 2.0 and len(heap) == 1


INVALID_HANDLES = [
    0,
    -1,
    -H0,
    H0 + 7,  # a slot never handed out
    2 * GEN,  # slot 0 with a generation it does not have
    2**64 - 1,
    2**64,
    2**64 + H0,  # the live handle plus 2**64: must not wrap onto it
    10**30,
    True,
    1.0,
    float(H0),
    math.nan,
    "4294967296",
    None,
    (H0,),
]


@twins
@pytest.mark.parametrize("bad", INVALID_HANDLES, ids=repr)
def test_invalid_handles_are_key_errors_naming_the_handle(Heap: Any, bad: object) -> None:
    heap = Heap()
    assert heap.push(1.0, "live") == H0
    assert (bad in heap) is False
    assert heap.discard(bad) is False
    for op in (heap.remove, heap.deadline_of, lambda h: heap.update(h, 2.0)):
        kind, message, args = call(op, bad)
        assert (kind, message) == ("KeyError", repr(bad))
        assert args[0] is bad
    assert heap.deadline_of(H0) == 1.0 and len(heap) == 1
    heap._check_invariants()


@twins
def test_int_subclass_handles_are_accepted(Heap: Any) -> None:
    heap = Heap()
    h = heap.push(1.0, "x")
    assert IntSub(h) in heap
    assert heap.deadline_of(IntSub(h)) == 1.0
    assert heap.remove(IntSub(h)) == "x"


DEADLINES_OK = [
    (True, 1.0),
    (False, 0.0),
    (7, 7.0),
    (IntSub(3), 3.0),
    (FloatSub(2.5), 2.5),
    (Fraction(1, 4), 0.25),
    (Real(-1.5), -1.5),
    (2**80, float(2**80)),
    (-0.0, 0.0),
    (math.inf, math.inf),
    (-math.inf, -math.inf),
]


@twins
@pytest.mark.parametrize(("given", "stored"), DEADLINES_OK, ids=repr)
def test_real_deadlines_are_stored_as_floats(Heap: Any, given: object, stored: float) -> None:
    heap = Heap()
    h = heap.push(given, "p")
    value = heap.deadline_of(h)
    assert type(value) is float and value == stored
    heap.update(h, given)
    assert heap.peek_deadline() == stored
    assert heap.pop_expired(given) == ["p"]


DEADLINES_BAD = [
    ("x", "TypeError", "deadline must be a real number (int or float), not str"),
    (None, "TypeError", "deadline must be a real number (int or float), not NoneType"),
    (Decimal(1), "TypeError", "deadline must be a real number (int or float), not Decimal"),
    (1j, "TypeError", "deadline must be a real number (int or float), not complex"),
    (math.nan, "ValueError", "deadline must not be NaN"),
    (FloatSub("nan"), "ValueError", "deadline must not be NaN"),
    (Real(math.nan), "ValueError", "deadline must not be NaN"),
    (10**400, "OverflowError", "int too large to convert to float"),
    (IntSub(10**400), "OverflowError", "int too large to convert to float"),
]


@twins
@pytest.mark.parametrize(("given", "kind", "message"), DEADLINES_BAD, ids=repr)
def test_bad_deadlines_are_refused_and_change_nothing(
    Heap: Any, given: object, kind: str, message: str
) -> None:
    heap = Heap()
    h = heap.push(1.0, "p")
    assert call(heap.push, given, "q")[:2] == (kind, message)
    assert call(heap.update, h, given)[:2] == (kind, message)
    # The deadline is checked before the handle.
    assert call(heap.update, 0, given)[:2] == (kind, message)
    now = message.replace("deadline", "now", 1)
    assert call(heap.pop_expired, given)[:2] == (kind, now)
    assert len(heap) == 1 and heap.deadline_of(h) == 1.0
    assert heap.push(2.0, "r") == H0 + 1  # the failed push took no slot
    heap._check_invariants()


@twins
def test_failed_push_takes_no_sequence_number(Heap: Any) -> None:
    heap = Heap()
    heap.push(1.0, "a")
    call(heap.push, math.nan, "x")
    heap.push(1.0, "b")
    h = heap.push(0.0, "c")
    call(heap.update, h, "late")
    assert drain(heap) == ["c", "a", "b"]


@twins
def test_empty_heap(Heap: Any) -> None:
    heap = Heap()
    assert call(heap.peek)[:2] == ("IndexError", "peek from an empty DeadlineHeap")
    assert call(heap.pop)[:2] == ("IndexError", "pop from an empty DeadlineHeap")
    assert heap.peek_deadline() == math.inf
    assert heap.pop_expired(math.inf) == []
    assert len(heap) == 0 and not heap
    assert repr(heap) == "<DeadlineHeap with 0 entries>"
    heap.clear()
    heap._check_invariants()
    assert heap.push(1, None) == H0


@twins
def test_peek_pop_remove_return_the_payload_object(Heap: Any) -> None:
    heap = Heap()
    first, second = object(), object()
    h1 = heap.push(1, first)
    heap.push(2, second)
    assert heap.peek() is first and len(heap) == 2
    assert heap.remove(h1) is first
    assert heap.peek() is second
    assert heap.pop() is second
    assert repr(heap) == "<DeadlineHeap with 0 entries>"


@twins
def test_no_iteration_or_indexing(Heap: Any) -> None:
    heap = Heap()
    heap.push(1.0, "x")
    assert call(iter, heap)[:2] == ("TypeError", "'DeadlineHeap' object is not iterable")
    assert call(lambda: heap[0])[:2] == ("TypeError", "'DeadlineHeap' object is not subscriptable")
    assert call(list, heap)[:2] == ("TypeError", "'DeadlineHeap' object is not iterable")


@twins
def test_heap_cannot_be_copied_or_pickled(Heap: Any) -> None:
    # A copy would share (reference) or duplicate (compiled) entries whose handles and
    # payload references belong to the original: both twins refuse.
    heap = Heap()
    heap.push(1.0, "x")
    expected = ("TypeError", "DeadlineHeap objects cannot be pickled or copied")
    for op in (copy.copy, copy.deepcopy, pickle.dumps):
        assert call(op, heap)[:2] == expected
    assert len(heap) == 1


@twins
def test_heap_cannot_be_subclassed(Heap: Any) -> None:
    def subclass() -> type:
        return type("Sub", (Heap,), {})

    assert call(subclass)[:2] == (
        "TypeError",
        "type 'DeadlineHeap' is not an acceptable base type",
    )


@twins
def test_constructor_takes_no_arguments(Heap: Any) -> None:
    # Argument binding is worded by CPython or by Cython: the type is compared.
    assert call(Heap, 1)[0] == "TypeError"
    assert call(lambda: Heap(size=1))[0] == "TypeError"
    assert call(lambda: Heap().push(1.0))[0] == "TypeError"


@twins
def test_class_is_subscriptable_for_annotations(Heap: Any) -> None:
    alias = Heap[int]
    assert alias.__origin__ is Heap
    assert len(alias()) == 0


# --------------------------------------------------------------- ownership and re-entry


class Tracked:
    def __init__(self, name: str) -> None:
        self.name = name


@twins
def test_every_exit_path_releases_the_payload(Heap: Any) -> None:
    heap = Heap()
    refs = []

    def push(d: float) -> int:
        obj = Tracked(str(d))
        refs.append(weakref.ref(obj))
        return heap.push(d, obj)

    h1, h2, h3 = push(1.0), push(2.0), push(3.0)
    push(4.0)
    push(5.0)
    heap.update(h3, 0.5)  # re-keying neither leaks nor drops it
    gc.collect()
    assert all(r() is not None for r in refs)
    heap.remove(h1)
    assert heap.discard(h2) is True
    heap.pop()  # h3 (0.5)
    heap.pop_expired(4.0)
    assert [r() is None for r in refs] == [True, True, True, True, False]
    heap.clear()
    assert refs[4]() is None


class Reenter:
    """A payload whose finalizer pushes onto (and reads) the heap that released it."""

    def __init__(self, heap: Any, log: list[Any], name: str) -> None:
        self.heap, self.log, self.name = heap, log, name

    def __del__(self) -> None:
        heap = self.heap
        self.log.append((self.name, len(heap), heap.peek_deadline()))
        self.log.append(heap.push(100.0, f"from {self.name}"))


def _reentry_trace(Heap: Any) -> list[Any]:
    heap = Heap()
    log: list[Any] = []
    h = heap.push(1.0, Reenter(heap, log, "discarded"))
    heap.push(2.0, "plain")
    heap.discard(h)
    heap.push(3.0, Reenter(heap, log, "cleared"))
    heap.clear()
    log.append(("after clear", len(heap)))
    heap.push(0.0, Reenter(heap, log, "expired"))
    log.append([p if isinstance(p, str) else p.name for p in heap.pop_expired(50.0)])
    gc.collect()
    log.append(drain(heap))
    heap._check_invariants()
    return log


@twins
def test_finalizers_may_reenter_the_heap(Heap: Any) -> None:
    # Each finalizer runs once the heap is consistent again, and its push reuses the
    # slot just freed (with the next generation).
    assert _reentry_trace(Heap) == [
        ("discarded", 1, 2.0),
        2 * GEN + 0,
        ("cleared", 0, math.inf),
        3 * GEN + 0,
        ("after clear", 1),
        ("expired", 1, 100.0),
        3 * GEN + 1,
        ["expired"],
        ["from cleared", "from expired"],
    ]


# ------------------------------------------------------------------ random sequences

_GARBAGE = [0, -1, 2**64, 2**64 + H0, 1.5, "h", None, True]
_DEADLINE_POOL: list[Any] = [0, 1, 2, 2.5, -3.25, 7, 1e9, -0.0, math.inf, -math.inf, True]
_DEADLINE_POOL.append(Fraction(7, 2))
_BAD_DEADLINES: list[Any] = [math.nan, "soon", None, 10**400, Decimal("1.5")]


class Model:
    """Live entries by handle -> [deadline, key order, payload]; the heap's promise."""

    def __init__(self) -> None:
        self.live: dict[int, list[Any]] = {}
        self.order = 0

    def key(self) -> int:
        self.order += 1
        return self.order

    def first(self) -> tuple[int, list[Any]]:
        return min(self.live.items(), key=lambda item: (item[1][0], item[1][1]))


def _pick_deadline(rng: random.Random, narrow: bool) -> Any:
    r = rng.random()
    if r < 0.03:
        return rng.choice(_BAD_DEADLINES)
    if narrow or r < 0.4:
        return rng.choice(_DEADLINE_POOL)
    return rng.uniform(-100.0, 100.0)


def _pick_handle(rng: random.Random, issued: list[int], heap: Any) -> Any:
    r = rng.random()
    if r < 0.1:
        return rng.choice(_GARBAGE)
    if r < 0.25 and issued:
        return rng.choice(issued)  # possibly stale
    live = [h for h in issued[-64:] if h in heap]
    return rng.choice(live) if live else (issued[-1] if issued else 0)


def run_random(Heap: Any, seed: int, steps: int, narrow: bool = False) -> list[Any]:
    """Apply a seeded random sequence; return the trace and check it against Model."""
    rng = random.Random(seed)
    heap = Heap()
    model = Model()
    issued: list[int] = []
    trace: list[Any] = []
    for step in range(steps):
        r = rng.random()
        if r < 0.30:
            d = _pick_deadline(rng, narrow)
            out = call(heap.push, d, step)
            if out[0] == "ok":
                h = out[1]
                assert h not in model.live
                issued.append(h)
                model.live[h] = [float(d), model.key(), step]
            op: tuple[Any, ...] = ("push", d)
        elif r < 0.40:
            h = _pick_handle(rng, issued, heap)
            out = call(heap.remove, h)
            if out[0] == "ok":
                assert model.live.pop(h)[2] == out[1]
            else:
                assert h not in model.live
            op = ("remove", h)
        elif r < 0.45:
            h = _pick_handle(rng, issued, heap)
            out = call(heap.discard, h)
            assert out == ("ok", model.live.pop(h, None) is not None)
            op = ("discard", h)
        elif r < 0.63:
            h, d = _pick_handle(rng, issued, heap), _pick_deadline(rng, narrow)
            out = call(heap.update, h, d)
            if out[0] == "ok":
                model.live[h][:2] = [float(d), model.key()]
            op = ("update", h, d)
        elif r < 0.70:
            out = call(heap.pop)
            if model.live:
                h, entry = model.first()
                del model.live[h]
                assert out == ("ok", entry[2])
            op = ("pop",)
        elif r < 0.74:
            now = _pick_deadline(rng, narrow)
            out = call(heap.pop_expired, now)
            if out[0] == "ok":
                due = sorted((e[0], e[1], h) for h, e in model.live.items() if e[0] <= now)
                assert out[1] == [model.live.pop(h)[2] for _, _, h in due]
            op = ("pop_expired", now)
        elif r < 0.78:
            out = call(heap.peek)
            assert out[0] != "ok" or out[1] == model.first()[1][2]
            op = ("peek",)
        elif r < 0.82:
            out = call(heap.peek_deadline)
            assert out == ("ok", model.first()[1][0] if model.live else math.inf)
            op = ("peek_deadline",)
        elif r < 0.88:
            h = _pick_handle(rng, issued, heap)
            out = call(heap.deadline_of, h)
            assert out[0] != "ok" or out[1] == model.live[h][0]
            op = ("deadline_of", h)
        elif r < 0.93:
            h = _pick_handle(rng, issued, heap)
            out = call(heap.__contains__, h)
            assert out == ("ok", isinstance(h, int) and h in model.live)
            op = ("contains", h)
        elif r < 0.96:
            out = call(len, heap)
            assert out == ("ok", len(model.live))
            op = ("len",)
        elif r < 0.975:
            out = call(iter, heap)
            op = ("iter",)
        elif r < 0.985:
            out = call(repr, heap)
            op = ("repr",)
        elif r < 0.99:
            out = call(heap.clear)
            model.live.clear()
            op = ("clear",)
        else:
            out = call(heap._check_invariants)
            assert out == ("ok", None)
            op = ("check",)
        trace.append((step, op, out))
    heap._check_invariants()
    assert drain(heap) == [e[2] for _, e in sorted(model.live.items(), key=lambda i: i[1][:2])]
    return trace


_RANDOM_RUNS = [
    pytest.param(1, 3000, False, id="seed1-wide"),
    pytest.param(2, 3000, True, id="seed2-narrow"),
    pytest.param(12, 4000, True, id="seed12-narrow"),
]


@twins
@pytest.mark.parametrize(("seed", "steps", "narrow"), _RANDOM_RUNS)
def test_random_sequences_match_the_reference_and_the_model(
    Heap: Any, seed: int, steps: int, narrow: bool
) -> None:
    actual = run_random(Heap, seed, steps, narrow)
    expected = actual if Heap is REFERENCE else run_random(REFERENCE, seed, steps, narrow)
    for got, want in zip(actual, expected):
        assert got == want
    assert len(actual) == len(expected) == steps
    kinds = {(op[0], out[0]) for _, op, out in actual}
    # The sequences reach every operation and its error branches.
    needed = """push:ok push:TypeError push:ValueError push:OverflowError remove:ok
        remove:KeyError update:ok update:KeyError update:ValueError pop:ok pop_expired:ok
        deadline_of:KeyError iter:TypeError clear:ok check:ok"""
    for pair in needed.split():
        assert tuple(pair.split(":")) in kinds
