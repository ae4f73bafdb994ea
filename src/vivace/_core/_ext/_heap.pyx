# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled deadline heap: a thin owner of csrc/vv_heap.h.

Design notes
------------
Semantics, handles and invariants are those of ``csrc/vv_heap.h`` and of the
reference twin ``vivace._core._heap_py``; this module adds Python ownership of
the payloads and the Python-level API.  The kernel uses the ``c_*`` methods
from ``_heap.pxd`` directly.

Ownership: the heap holds exactly one strong reference per entry, stored as a
raw pointer in the C slot array (INCREF on push, DECREF when the entry leaves).
Every DECREF happens after the C heap is consistent again, because a DECREF
can run arbitrary code (``__del__``, weakref callbacks) that may re-enter this
heap.

Garbage collection: payloads are cancel scopes and sleepers, which routinely
reach back to the heap (scope -> runner -> heap), so the heap must be visible
to the cycle collector.  Two designs were considered:

* mirror every payload in a Python list indexed by slot and let Cython's
  generated tp_traverse/tp_clear see it.  That costs a list store on every
  push and remove, and -- worse -- Cython's tp_clear (or the list's own) would
  empty the mirror while the C heap still holds the pointers, leaving a
  half-cleared object whose next method call crashes.
* (chosen) keep the raw pointers as the only owner and extend the type's
  tp_traverse/tp_clear: traverse visits each payload after Cython's own
  traversal; clear empties the heap through the same consistent path as
  ``clear()``.  Zero cost on the hot path and never a torn state.  Cython has
  no ``__traverse__`` hook, so the two slots are wrapped once at import time,
  before any instance exists (the type is final, so no subclass copies the
  old slots).  ``_gc_anchor`` (an unused object attribute) is what makes
  Cython create the type with Py_TPFLAGS_HAVE_GC in the first place.  This
  needs the full (non-limited) C API, like the rest of the engine.
"""

cimport cython
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.long cimport PyLong_AsDouble, PyLong_Check, PyLong_CheckExact
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from libc.stdint cimport uint64_t

from vivace._core._ext._capi cimport (
    Py_TPFLAGS_HAVE_GC,
    PyLong_AsULL_raw,
    VVTypeObject,
    inquiry,
    traverseproc,
    visitproc,
)
from vivace._core._ext._vvc cimport VV_DEBUG_BUILD

import numbers
from types import GenericAlias

cdef object _Real = numbers.Real


cdef double _as_real(object x, str what) except? -1.0:
    # Mirrors _heap_py._as_real exactly (same accepted types, same messages).
    cdef double d
    if PyFloat_CheckExact(x):
        d = PyFloat_AS_DOUBLE(x)
    elif PyLong_CheckExact(x):
        d = PyLong_AsDouble(x)  # OverflowError for huge ints, like float()
    elif isinstance(x, (int, float)) or isinstance(x, _Real):
        d = float(x)
    else:
        raise TypeError(
            f"{what} must be a real number (int or float), "
            f"not {type(x).__name__}"
        )
    if d != d:
        raise ValueError(f"{what} must not be NaN")
    return d


cdef bint _as_handle(object h, uint64_t *out) noexcept:
    # Anything that is not an int in [0, 2**64) cannot be a live handle; the
    # callers turn False into KeyError(h), so the conversion error is dropped.
    cdef unsigned long long v
    if not PyLong_Check(h):
        return False
    v = PyLong_AsULL_raw(h)
    if v == <unsigned long long>-1 and PyErr_Occurred() != NULL:
        PyErr_Clear()
        return False
    out[0] = v
    return True



# Debug build only (see csrc/vv_debug.h): DeadlineHeap objects alive.
cdef Py_ssize_t _debug_live_heaps = 0


def debug_counters():
    """``{"deadline_heaps": n}`` in a VIVACE_DEBUG build, else None."""
    if VV_DEBUG_BUILD:
        return {"deadline_heaps": _debug_live_heaps}
    return None


cdef class DeadlineHeap:
    """Min-heap of (deadline, insertion order) -> payload with O(log n)
    removal and re-keying through integer handles."""

    def __cinit__(self):
        global _debug_live_heaps
        vv_heap_init(&self._h)
        if VV_DEBUG_BUILD:
            _debug_live_heaps += 1

    def __init__(self):
        # Present so that extra constructor arguments are refused, as by the reference.
        pass

    def __reduce__(self):
        raise TypeError("DeadlineHeap objects cannot be pickled or copied")

    def __dealloc__(self):
        global _debug_live_heaps
        if VV_DEBUG_BUILD:
            _debug_live_heaps -= 1
        # Refcount is 0 and the object is untracked: no payload's __del__ can
        # reach this heap any more, so releasing in place is safe.
        cdef size_t i
        for i in range(self._h.len):
            Py_DECREF(<object>vv_heap_payload_at(&self._h, i))
        vv_heap_free(&self._h)

    cdef void _release_all(self) noexcept:
        # noexcept: also serves tp_clear, which must not fail.
        cdef size_t i, n = self._h.len
        cdef void **snapshot
        cdef void *p = NULL
        if n == 0:
            vv_heap_clear(&self._h, NULL)  # still canonicalise the free list
            return
        snapshot = <void **>PyMem_Malloc(n * sizeof(void *))
        if snapshot == NULL:
            # Out of memory: pop one by one (each DECREF sees a consistent
            # heap), then rebuild the free list in the canonical order.
            while vv_heap_pop(&self._h, &p) == VV_HEAP_OK:
                Py_DECREF(<object>p)
            vv_heap_clear(&self._h, NULL)
            return
        vv_heap_clear(&self._h, snapshot)
        for i in range(n):
            Py_DECREF(<object>snapshot[i])
        PyMem_Free(snapshot)

    # ---- Python-level API (same behaviour and messages as _heap_py) ----

    def push(self, deadline, payload):
        """Add ``payload`` due at ``deadline``; return its handle."""
        return self.c_push(_as_real(deadline, "deadline"), payload)

    def remove(self, h):
        """Remove the entry for handle ``h`` and return its payload."""
        cdef uint64_t hh = 0
        cdef void *p = NULL
        if not _as_handle(h, &hh) or vv_heap_remove(&self._h, hh, &p) != VV_HEAP_OK:
            raise KeyError(h)
        result = <object>p
        Py_DECREF(result)  # the heap's reference; `result` holds the caller's
        return result

    def discard(self, h):
        """Remove the entry for ``h`` if present; return whether it was."""
        cdef uint64_t hh = 0
        if not _as_handle(h, &hh):
            return False
        return self.c_discard(hh)

    def update(self, h, deadline):
        """Give the entry for ``h`` a new deadline, keeping its handle."""
        cdef uint64_t hh = 0
        cdef double d = _as_real(deadline, "deadline")
        if not _as_handle(h, &hh) or vv_heap_update(&self._h, hh, d) != VV_HEAP_OK:
            raise KeyError(h)

    def peek_deadline(self):
        """Smallest deadline, or ``math.inf`` when empty."""
        return self.c_peek_deadline()

    def peek(self):
        """Payload with the smallest deadline (not removed)."""
        cdef void *p = NULL
        if vv_heap_peek(&self._h, NULL, &p) != VV_HEAP_OK:
            raise IndexError("peek from an empty DeadlineHeap")
        return <object>p

    def pop(self):
        """Remove and return the payload with the smallest deadline."""
        cdef void *p = NULL
        if vv_heap_pop(&self._h, &p) != VV_HEAP_OK:
            raise IndexError("pop from an empty DeadlineHeap")
        result = <object>p
        Py_DECREF(result)
        return result

    def pop_expired(self, now):
        """Remove and return, in order, the payloads with deadline <= now."""
        return self.c_pop_expired(_as_real(now, "now"))

    def deadline_of(self, h):
        """Deadline of the entry for handle ``h``."""
        cdef uint64_t hh = 0
        cdef double d = 0.0
        if not _as_handle(h, &hh) or vv_heap_lookup(&self._h, hh, &d, NULL) != VV_HEAP_OK:
            raise KeyError(h)
        return d

    def clear(self):
        """Remove every entry; every outstanding handle becomes stale."""
        self._release_all()

    def __len__(self):
        return self._h.len

    def __contains__(self, h):
        cdef uint64_t hh = 0
        return _as_handle(h, &hh) and vv_heap_contains(&self._h, hh)

    def __repr__(self):
        return f"<DeadlineHeap with {self._h.len} entries>"

    def __class_getitem__(cls, item):
        return GenericAlias(cls, item)

    def _check_invariants(self):
        """Raise AssertionError if the heap's internal invariants are broken."""
        if vv_heap_check(&self._h) != VV_HEAP_OK:
            raise AssertionError("DeadlineHeap invariants are broken")


# ---- GC support: extend the Cython-generated slots (see design notes) ----

cdef traverseproc _base_traverse = NULL
cdef inquiry _base_clear = NULL


cdef int _heap_traverse(PyObject *o, visitproc visit, void *arg) noexcept:
    # Through a plain struct pointer: a typed local would INCREF/DECREF `o`
    # in the middle of a GC pass.
    cdef vv_heap *h = &(<DeadlineHeap>o)._h
    cdef int r
    cdef size_t i
    if _base_traverse != NULL:
        r = _base_traverse(o, visit, arg)
        if r:
            return r
    for i in range(h.len):
        r = visit(<PyObject *>vv_heap_payload_at(h, i), arg)
        if r:
            return r
    return 0


cdef int _heap_clear(PyObject *o) noexcept:
    (<DeadlineHeap>o)._release_all()
    if _base_clear != NULL:
        return _base_clear(o)
    return 0


cdef void _install_gc_slots() except *:
    cdef VVTypeObject *tp = <VVTypeObject *>DeadlineHeap
    global _base_traverse, _base_clear
    if not (tp.tp_flags & Py_TPFLAGS_HAVE_GC):
        raise ImportError("vivace._core._ext._heap: DeadlineHeap was built without GC support")
    _base_traverse = tp.tp_traverse
    _base_clear = tp.tp_clear
    tp.tp_traverse = _heap_traverse
    tp.tp_clear = _heap_clear


_install_gc_slots()


# The engine exports, as the reference twin (vivace._core._heap_py) declares them; _impl
# binds these names, and tests/test_twins_parity.py checks the two lists are equal.
__all__ = [
    "DeadlineHeap",
]
