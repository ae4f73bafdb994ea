# Declarations only: the engine's own C helpers (csrc/*.h), declared once for every
# engine module. The C is in the headers; see each one for the why.

from cpython.object cimport PyObject

from vivace._core._ext._capi cimport PyCFunction, sendfunc

cdef extern from "vv_pyutil.h":
    PyObject *vv_fetch_exception() noexcept
    # Returns `object`: Cython takes over the new reference the pointer carries.
    object vv_steal(PyObject *)
    int vv_error_set() except -1
    object vv_new_instance(object cls, object base)
    bint vv_is_async_def(object) noexcept
    int vv_set_add(object, object) except -1
    int vv_set_discard(object, object) except -1
    double vv_monotonic() noexcept nogil

cdef extern from "vv_sendproto.h":
    ctypedef int (*vv_sp_end_fn)(PyObject *, int) noexcept
    void vv_sp_raise(PyObject *) noexcept
    void vv_sp_set_stop_iteration(PyObject *) noexcept
    PyObject *vv_sp_send(sendfunc, PyObject *, PyObject *) noexcept
    PyObject *vv_sp_throw(PyObject *, PyObject *, vv_sp_end_fn) noexcept
    int vv_sp_install(object, sendfunc, PyCFunction, PyCFunction) except -1

cdef extern from "vv_debug.h":
    const bint VV_DEBUG_BUILD
