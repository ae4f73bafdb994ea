/* vv_sendproto.h -- the generator-style send protocol for the engine's awaitable
 * extension types: the kernel's trap awaitable, the sync module's operations and the
 * socket operations. This is the only implementation; each type supplies its am_send
 * function and what "ending the operation" means for it.
 *
 * Cython gives such a type __await__ and __next__, but neither the am_send slot (what
 * PyIter_Send, hence `await`, uses on 3.10/3.11) nor C-level `send`/`throw` methods (what
 * the SEND opcode and gen_throw call on 3.12+). These are installed here, once, before the
 * first instance exists. Errors are reported C-style (indicator set + NULL/-1), so an
 * exception passing through an await on one of these objects (Cancelled,
 * KeyboardInterrupt) gets no frame of ours added to its traceback.
 *
 * Behaviour matches a native coroutine's: the same throw() argument checks and
 * messages (including 3.12's deprecation of the three-argument form), and an awaitable
 * that is thrown a bad exception is over, as a coroutine suspended at that await is.
 */
#ifndef VV_SENDPROTO_H
#define VV_SENDPROTO_H

#include <Python.h>
#include "vv_pyutil.h"

/* The exception throw(typ[, val[, tb]]) raises, as a new reference with its traceback
 * set, or NULL with an error set. On NULL, *bad_exception says whether the call was well
 * formed but the exception was not (1: the awaitable is over, as a coroutine would be)
 * or the call itself was refused (0: argument count, a warning turned into an error). */
static inline PyObject *vv_sp_exception_from_args(PyObject *args, int *bad_exception)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *typ, *val = NULL, *tb = NULL;

    *bad_exception = 0;
    if (n < 1 || n > 3) {
        PyErr_Format(PyExc_TypeError, n < 1 ? "throw expected at least 1 argument, got %zd"
                     : "throw expected at most 3 arguments, got %zd", n);
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030C0000
    if (n > 1 && PyErr_WarnEx(PyExc_DeprecationWarning,
            "the (type, exc, tb) signature of throw() is deprecated, "
            "use the single-arg signature instead.", 1) < 0)
        return NULL;
#endif
    *bad_exception = 1;
    typ = PyTuple_GET_ITEM(args, 0);
    if (n > 1) val = PyTuple_GET_ITEM(args, 1);
    if (n > 2) tb = PyTuple_GET_ITEM(args, 2);
    if (tb == Py_None) tb = NULL;
    else if (tb != NULL && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback object");
        return NULL;
    }
    if (PyExceptionInstance_Check(typ)) {
        if (val != NULL && val != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        val = typ;
        Py_INCREF(val);
    }
    else if (PyExceptionClass_Check(typ)) {
        /* Instantiate as raising would. A failing constructor leaves its own error in
           the triple, and that error is what gets raised, as in gen_throw. */
        PyObject *t = typ, *tb_ = NULL;
        Py_INCREF(t);
        if (val == NULL) val = Py_None;
        Py_INCREF(val);
        PyErr_NormalizeException(&t, &val, &tb_);
        Py_DECREF(t);
        if (tb_ != NULL) {
            PyException_SetTraceback(val, tb_);
            Py_DECREF(tb_);
        }
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving from BaseException, not %s",
                     Py_TYPE(typ)->tp_name);
        return NULL;
    }
    if (tb != NULL && PyException_SetTraceback(val, tb) < 0) {
        Py_DECREF(val);
        return NULL;
    }
    *bad_exception = 0;
    return val;
}

/* Raise `exc` (stolen) as is: no implicit __context__, traceback as it stands. */
static inline void vv_sp_raise(PyObject *exc)
{
    PyObject *type = (PyObject *)Py_TYPE(exc);
    Py_INCREF(type);
    PyErr_Restore(type, exc, PyException_GetTraceback(exc));
}

/* What a generator's send() does with the value it returns: StopIteration carrying it
 * (a tuple or an exception is wrapped, so that .value is the object itself). */
static inline void vv_sp_set_stop_iteration(PyObject *value)
{
    PyObject *stop;
    if (value == Py_None) {
        PyErr_SetNone(PyExc_StopIteration);
        return;
    }
    if (!PyTuple_Check(value) && !PyExceptionInstance_Check(value)) {
        PyErr_SetObject(PyExc_StopIteration, value);
        return;
    }
    stop = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
}

/* send(value) and __next__ in terms of the type's am_send: the yielded value (new
 * reference), or NULL with StopIteration (returned) or the error set. */
static inline PyObject *vv_sp_send(sendfunc am_send, PyObject *self, PyObject *arg)
{
    PyObject *res = NULL;
    PySendResult r = am_send(self, arg, &res);
    if (r == PYGEN_NEXT)
        return res;
    if (r == PYGEN_RETURN) {
        vv_sp_set_stop_iteration(res);
        Py_DECREF(res);
    }
    return NULL;
}

/* throw(...) for a type whose `end` callback ends the operation (releases what it holds;
 * may run arbitrary code, so it runs before the error indicator is set). `end` gets
 * bad_exception = 1 when throw() was called well formed but with something that is not
 * an exception: the TypeError about it comes out of the await, and the type decides
 * whether that ends it (an awaitable suspended inside a coroutine is over then, as the
 * coroutine is). `end` returns 0, or -1 with an error set that replaces the thrown one
 * (ignored for a bad exception: the TypeError is what the caller must see). */
typedef int (*vv_sp_end_fn)(PyObject *self, int bad_exception);

static inline PyObject *vv_sp_throw(PyObject *self, PyObject *args, vv_sp_end_fn end)
{
    int bad_exception;
    PyObject *exc = vv_sp_exception_from_args(args, &bad_exception);
    if (exc == NULL) {
        if (bad_exception) {
            PyObject *err = vv_fetch_exception();
            if (end(self, 1) < 0)
                PyErr_Clear();
            if (err != NULL)
                vv_sp_raise(err);
        }
        return NULL;
    }
    if (end(self, 0) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    vv_sp_raise(exc);
    return NULL;
}

/* __next__ (tp_iternext) and __iter__, the same for every awaitable type: resume with
 * None through the type's own am_send. They make `yield from aw.__await__()` work. */
static inline PyObject *vv_sp_iternext(PyObject *self)
{
    return vv_sp_send(Py_TYPE(self)->tp_as_async->am_send, self, Py_None);
}

static PyObject *vv_sp_next_meth(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return vv_sp_iternext(self);
}

static PyObject *vv_sp_iter_meth(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_INCREF(self);
    return self;
}

static PyMethodDef vv_sp_methods[] = {
    {"send", NULL, METH_O, "send(value) -> the next trap message; StopIteration when done."},
    {"throw", NULL, METH_VARARGS, "throw(exc) -> raise exc out of the await."},
    {"__next__", vv_sp_next_meth, METH_NOARGS, "Resume with None (next(aw))."},
    {"__iter__", vv_sp_iter_meth, METH_NOARGS, "Return self."},
};

/* Install am_send, tp_iter/tp_iternext and the `send`/`throw`/`__next__`/`__iter__`
 * methods on a ready extension type (whose class body defines none of them). The method
 * table is this translation unit's: one awaitable type per engine module. */
static inline int vv_sp_install(PyObject *type, sendfunc am_send, PyCFunction send_meth,
                                PyCFunction throw_meth)
{
    PyTypeObject *tp = (PyTypeObject *)type;
    size_t i;
    if (tp->tp_as_async == NULL || tp->tp_as_async->am_await == NULL) {
        PyErr_SetString(PyExc_SystemError, "vv_sp_install: the type has no __await__");
        return -1;
    }
    if (vv_sp_methods[0].ml_meth != NULL) {
        PyErr_SetString(PyExc_SystemError, "vv_sp_install: one awaitable type per module");
        return -1;
    }
    tp->tp_as_async->am_send = am_send;
#ifdef Py_TPFLAGS_HAVE_AM_SEND
    tp->tp_flags |= Py_TPFLAGS_HAVE_AM_SEND;
#endif
    tp->tp_iter = PyObject_SelfIter;
    tp->tp_iternext = vv_sp_iternext;
    vv_sp_methods[0].ml_meth = send_meth;
    vv_sp_methods[1].ml_meth = throw_meth;
    for (i = 0; i < sizeof(vv_sp_methods) / sizeof(vv_sp_methods[0]); i++) {
        PyObject *descr = PyDescr_NewMethod(tp, &vv_sp_methods[i]);
        int rc;
        if (descr == NULL)
            return -1;
        rc = PyDict_SetItemString(tp->tp_dict, vv_sp_methods[i].ml_name, descr);
        Py_DECREF(descr);
        if (rc < 0)
            return -1;
    }
    PyType_Modified(tp);
    return 0;
}

#endif /* VV_SENDPROTO_H */
