/* vv_pyutil.h -- small C-API helpers shared by the engine modules, each written once.
 *
 * They exist because Cython either cannot express them (error reporting that adds no
 * traceback entry, raw tp_new calls) or would add a Python-level call to a hot path.
 */
#ifndef VV_PYUTIL_H
#define VV_PYUTIL_H

#include <Python.h>
#include <time.h>

/* The raised exception (new reference), normalized, with __traceback__ set as an
 * `except` clause would see it; clears the error indicator. NULL if none is set. */
static inline PyObject *vv_fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    PyException_SetTraceback(value, tb != NULL ? tb : Py_None);
    Py_DECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Hand a new reference to Cython, which declares this as returning `object` and so
 * takes ownership without an extra INCREF/DECREF pair. */
static inline PyObject *vv_steal(PyObject *p)
{
    return p;
}

/* For a Cython function declared `except -1` whose error indicator a C-style helper
 * already set: report the failure without adding a traceback entry. */
static inline int vv_error_set(void)
{
    return -1;
}

/* cls.__new__(cls) for a subclass of `base`, straight through its tp_new slot (new
 * reference; NULL with an error set). The Python-level call would go through
 * tp_new_wrapper and the metaclass; subclasses that need __init__ are not made here. */
static inline PyObject *vv_new_instance(PyObject *cls, PyObject *base)
{
    PyObject *empty, *obj;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)base)) {
        PyErr_Format(PyExc_TypeError, "expected a subclass of %s, got %R",
                     ((PyTypeObject *)base)->tp_name, cls);
        return NULL;
    }
    empty = PyTuple_New(0);
    if (empty == NULL)
        return NULL;
    obj = ((PyTypeObject *)cls)->tp_new((PyTypeObject *)cls, empty, NULL);
    Py_DECREF(empty);
    return obj;
}

/* Whether calling `fn` can only bind arguments and build a native coroutine, with no
 * user code run: a plain `async def` function, or a bound method of one. */
static inline int vv_is_async_def(PyObject *fn)
{
    PyObject *code;
    if (PyMethod_Check(fn))
        fn = PyMethod_GET_FUNCTION(fn);
    if (!PyFunction_Check(fn))
        return 0;  /* exact type, like `type(fn) is FunctionType` */
    code = PyFunction_GET_CODE(fn);
    return (((PyCodeObject *)code)->co_flags & CO_COROUTINE) != 0;
}

/* set.add / set.discard: the C call for a plain set, the method otherwise (a subclass
 * may override it). 0, or -1 with an error set. */
static inline int vv_set_add(PyObject *s, PyObject *item)
{
    PyObject *r;
    if (PySet_CheckExact(s))
        return PySet_Add(s, item);
    r = PyObject_CallMethod(s, "add", "O", item);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static inline int vv_set_discard(PyObject *s, PyObject *item)
{
    PyObject *r;
    if (PySet_CheckExact(s))
        return PySet_Discard(s, item) < 0 ? -1 : 0;
    r = PyObject_CallMethod(s, "discard", "O", item);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

#if !defined(_WIN32)
/* CLOCK_MONOTONIC in seconds: what time.perf_counter reads on Linux, without a call. */
static inline double vv_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* cannot fail with this clock */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#endif

#endif /* VV_PYUTIL_H */
