# cython: language_level=3
#
# C-level interface of the compiled deadline heap, for the kernel to cimport:
#
#     from vivace._core._ext._heap cimport DeadlineHeap
#
# The c_* methods are `cdef inline` and live here, in the .pxd, on purpose:
# every module that cimports this file compiles its own copy of them together
# with the static inline functions of vv_heap.h, so a kernel-side
# `heap.c_push(...)` is plain inlined C -- no vtable, no Python call, no
# argument boxing.  (csrc/ must be on the include path of the cimporting
# extension; setup.py does that for every vivace extension.)
#
# Contract of the c_* methods, shared with the Python-level methods:
#   - deadlines are C doubles the caller has already made real; NaN still
#     raises ValueError (it would corrupt the heap order);
#   - the heap owns one reference to each payload from c_push until the entry
#     leaves (c_remove / c_discard / c_pop_expired / clear / dealloc);
#   - handles are uint64 (generation << 32 | slot); 0 (VV_HEAP_NO_HANDLE) is
#     never a valid handle, so a struct field can use it as "not in the heap".
#   - every Py_DECREF of a payload happens after the heap is consistent again,
#     so a payload's __del__ may safely re-enter the heap.

cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.math cimport INFINITY
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "vv_heap.h" nogil:
    int VV_HEAP_OK
    int VV_HEAP_ENOMEM
    int VV_HEAP_ESTALE
    int VV_HEAP_EEMPTY
    int VV_HEAP_ENAN
    int VV_HEAP_EFULL
    int VV_HEAP_ECORRUPT
    uint64_t VV_HEAP_NO_HANDLE

    ctypedef struct vv_heap_node:
        double deadline
        uint64_t seq
        uint32_t slot

    ctypedef struct vv_heap:
        vv_heap_node *nodes
        uint32_t len
        uint32_t nslots

    void vv_heap_init(vv_heap *h)
    void vv_heap_free(vv_heap *h)
    size_t vv_heap_len(const vv_heap *h)
    int vv_heap_push(vv_heap *h, double deadline, void *payload, uint64_t *out_handle)
    int vv_heap_contains(const vv_heap *h, uint64_t handle)
    int vv_heap_lookup(const vv_heap *h, uint64_t handle, double *out_deadline, void **out_payload)
    int vv_heap_remove(vv_heap *h, uint64_t handle, void **out_payload)
    int vv_heap_update(vv_heap *h, uint64_t handle, double deadline)
    int vv_heap_peek(const vv_heap *h, double *out_deadline, void **out_payload)
    int vv_heap_pop(vv_heap *h, void **out_payload)
    int vv_heap_pop_if_expired(vv_heap *h, double now, void **out_payload)
    void *vv_heap_payload_at(const vv_heap *h, size_t i)
    void vv_heap_clear(vv_heap *h, void **out_payloads)
    int vv_heap_check(const vv_heap *h)


@cython.final
cdef class DeadlineHeap:
    cdef vv_heap _h
    # Never set.  Its only job is to make Cython emit a GC-enabled type,
    # whose tp_traverse/tp_clear _heap.pyx then extends to cover the payloads
    # held as raw pointers in _h (see the design notes there).
    cdef object _gc_anchor

    cdef void _release_all(self) noexcept

    cdef inline size_t c_len(self) noexcept:
        return self._h.len

    cdef inline bint c_contains(self, uint64_t handle) noexcept:
        return vv_heap_contains(&self._h, handle)

    cdef inline double c_peek_deadline(self) noexcept:
        # +inf when empty: "sleep until the next deadline" then means forever.
        if self._h.len == 0:
            return INFINITY
        return self._h.nodes[0].deadline

    cdef inline uint64_t c_push(self, double deadline, object payload) except 0:
        cdef uint64_t handle = 0
        cdef int rc = vv_heap_push(&self._h, deadline, <void *>payload, &handle)
        if rc != VV_HEAP_OK:
            _raise_heap_error(rc)
        # The heap's own reference; taken only once the push has succeeded.
        Py_INCREF(payload)
        return handle

    cdef inline object c_remove(self, uint64_t handle):
        cdef void *p = NULL
        if vv_heap_remove(&self._h, handle, &p) != VV_HEAP_OK:
            raise KeyError(handle)
        result = <object>p      # caller's reference (Cython INCREFs)
        Py_DECREF(result)       # the heap's reference; cannot hit 0, result holds one
        return result

    cdef inline bint c_discard(self, uint64_t handle) noexcept:
        # remove() for callers that do not need the payload and for whom a
        # stale handle is normal (e.g. a scope whose deadline already fired).
        cdef void *p = NULL
        if vv_heap_remove(&self._h, handle, &p) != VV_HEAP_OK:
            return False
        # May run arbitrary __del__ code; the heap is already consistent.
        Py_DECREF(<object>p)
        return True

    cdef inline int c_update(self, uint64_t handle, double deadline) except -1:
        cdef int rc = vv_heap_update(&self._h, handle, deadline)
        if rc == VV_HEAP_ESTALE:
            raise KeyError(handle)
        if rc != VV_HEAP_OK:
            _raise_heap_error(rc)
        return 0

    cdef inline list c_pop_expired(self, double now):
        # Hot callers should test `c_peek_deadline() <= now` first and skip
        # the call (and the empty list) when nothing is due.
        cdef list out = []
        cdef void *p = NULL
        cdef double d
        while vv_heap_peek(&self._h, &d, &p) == VV_HEAP_OK and d <= now:
            # Append before popping: if the append fails (MemoryError) the
            # entry is still in the heap rather than lost.
            out.append(<object>p)
            vv_heap_pop(&self._h, NULL)
            Py_DECREF(<object>p)  # the heap's reference; `out` holds one
        return out


cdef inline int _raise_heap_error(int rc) except -1:
    if rc == VV_HEAP_ENAN:
        raise ValueError("deadline must not be NaN")
    if rc == VV_HEAP_ENOMEM:
        raise MemoryError("DeadlineHeap: cannot grow the heap arrays")
    if rc == VV_HEAP_EFULL:
        raise OverflowError("DeadlineHeap is full (2**32 - 2 entries)")
    raise SystemError(f"DeadlineHeap: unexpected vv_heap error code {rc}")
