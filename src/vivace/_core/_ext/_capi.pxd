# Declarations only: the CPython C-API as the engine modules call it, declared once.
#
# Cython's own cpython.* declarations carry `except` clauses; these are raw, for the
# places that report errors C-style (the error indicator set, no traceback entry
# added) -- a task step, the send protocol's slots, the GC slots. Every engine module
# cimports what it needs from here instead of keeping its own extern block.

from cpython.object cimport PyObject

cdef extern from "Python.h":
    # The send protocol (am_send) and method slots.
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    ctypedef PySendResult (*sendfunc)(PyObject *, PyObject *, PyObject **) noexcept
    ctypedef PyObject *(*PyCFunction)(PyObject *, PyObject *) noexcept
    PySendResult PyIter_Send(PyObject *, PyObject *, PyObject **) noexcept

    # GC slots of a type (the heap installs its own traverse/clear).
    ctypedef int (*visitproc)(PyObject *, void *) noexcept
    ctypedef int (*traverseproc)(PyObject *, visitproc, void *) noexcept
    ctypedef int (*inquiry)(PyObject *) noexcept
    ctypedef struct VVTypeObject "PyTypeObject":
        unsigned long tp_flags
        traverseproc tp_traverse
        inquiry tp_clear
    unsigned long Py_TPFLAGS_HAVE_GC
    void PyObject_GC_Track(PyObject *) noexcept
    void PyObject_GC_UnTrack(PyObject *) noexcept
    int PyObject_GC_IsTracked(PyObject *) noexcept

    # Calls and contexts.
    PyObject *PyObject_CallMethodOneArg(PyObject *, PyObject *, PyObject *) noexcept
    PyObject *PyObject_CallMethodNoArgs(PyObject *, PyObject *) noexcept
    int PyContext_Enter(PyObject *) noexcept
    int PyContext_Exit(PyObject *) noexcept
    PyObject *PyContext_CopyCurrent() except NULL

    # The error indicator.
    int PyErr_ExceptionMatches(PyObject *) noexcept
    void PyErr_SetString(PyObject *, const char *) noexcept
    void PyErr_Restore(PyObject *, PyObject *, PyObject *) noexcept
    void PyErr_Clear() noexcept
    int PyErr_CheckSignals() noexcept
    void PyException_SetCause(PyObject *, PyObject *) noexcept
    void PyException_SetContext(PyObject *, PyObject *) noexcept
    PyObject *PyExc_TypeError
    PyObject *PyExc_RuntimeError
    PyObject *PyExc_StopIteration
    PyObject *PyExc_OSError

    # Reference counts on raw pointers (Cython's Py_INCREF takes `object`).
    void vv_incref "Py_INCREF"(PyObject *) noexcept
    void vv_decref "Py_DECREF"(PyObject *) noexcept
    void vv_xdecref "Py_XDECREF"(PyObject *) noexcept

    # Containers, numbers, threads.
    const Py_ssize_t PY_SSIZE_T_MAX
    int PySet_Discard(object, object) except -1
    object PyNumber_Index(object)
    unsigned long PyThread_get_thread_ident() noexcept
    int PyList_SetSlice(object, Py_ssize_t, Py_ssize_t, PyObject *) except -1
    int _PyBytes_Resize(PyObject **, Py_ssize_t) except -1
    unsigned long long PyLong_AsULL_raw "PyLong_AsUnsignedLongLong"(object) noexcept
