/* vv_sendproto.h -- the generator-style send protocol for Cython extension types.
 *
 * Cython cannot define the am_send slot, and without it every resume of an
 * awaitable with a non-None value goes through a `send` method that reports its
 * result by raising StopIteration (an allocation and an exception per resume).
 * vv_sp_install() gives a type, once and before any instance exists, a C am_send
 * plus `send`/`throw`/`close` methods, all built on the including module's
 * advance/finish functions. Errors are reported C-style (indicator set + PYGEN_ERROR
 * or NULL), so nothing here adds a traceback entry to exceptions passing through.
 */
#ifndef VV_SENDPROTO_H
#define VV_SENDPROTO_H

#include <Python.h>

/* StopIteration carrying `value` the way a returning generator raises it: tuples
 * and exceptions are wrapped so that StopIteration(value).value is `value`. */
static void vv_sp_set_stop_iteration(PyObject *value) {
    PyObject *exc;
    if (value == Py_None) {
        PyErr_SetNone(PyExc_StopIteration);
        return;
    }
    if (!PyTuple_Check(value) && !PyExceptionInstance_Check(value)) {
        PyErr_SetObject(PyExc_StopIteration, value);
        return;
    }
    exc = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
}

/* Turn the arguments of throw(typ[, val[, tb]]) into an exception instance (new
 * reference) with its traceback attached, or NULL with an error set (TypeError for
 * arguments a coroutine's throw() would refuse). */
static PyObject *vv_sp_exception_from_throw(PyObject *args) {
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *typ, *val = NULL, *tb = NULL, *exc;
    if (n < 1 || n > 3) {
        PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", n);
        return NULL;
    }
    typ = PyTuple_GET_ITEM(args, 0);
    if (n > 1 && PyTuple_GET_ITEM(args, 1) != Py_None) val = PyTuple_GET_ITEM(args, 1);
    if (n > 2 && PyTuple_GET_ITEM(args, 2) != Py_None) tb = PyTuple_GET_ITEM(args, 2);
    if (tb != NULL && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback object");
        return NULL;
    }
    if (PyExceptionInstance_Check(typ)) {
        if (val != NULL) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        exc = typ;
        Py_INCREF(exc);
    } else if (PyExceptionClass_Check(typ)) {
        if (val != NULL && PyObject_TypeCheck(val, (PyTypeObject *)typ)) {
            exc = val;
            Py_INCREF(exc);
        } else if (val == NULL) {
            exc = PyObject_CallNoArgs(typ);
        } else if (PyTuple_Check(val)) {
            exc = PyObject_Call(typ, val, NULL);
        } else {
            exc = PyObject_CallOneArg(typ, val);
        }
        if (exc == NULL) return NULL;
        if (!PyExceptionInstance_Check(exc)) {
            PyErr_Format(PyExc_TypeError,
                         "calling %R should have returned an instance of BaseException, "
                         "not %s", typ, Py_TYPE(exc)->tp_name);
            Py_DECREF(exc);
            return NULL;
        }
    } else {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving from "
                     "BaseException, not %s", Py_TYPE(typ)->tp_name);
        return NULL;
    }
    if (tb != NULL && PyException_SetTraceback(exc, tb) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
}

/* The including module's awaitable type is driven by two functions it provides:
 *   advance(op, arg, &out): one resumption with `arg` -> 0 yielded *out, 1 returned
 *       *out (new references), -1 raised (error set; the op is finished);
 *   finish(op): abandon the op (release what it holds); cannot fail.
 * Each including module has its own copy of these statics. */
typedef int (*vv_sp_advance_fn)(PyObject *, PyObject *, PyObject **);
typedef int (*vv_sp_finish_fn)(PyObject *);
static vv_sp_advance_fn vv_sp_advance = NULL;
static vv_sp_finish_fn vv_sp_finish = NULL;

static PySendResult vv_sp_am_send(PyObject *op, PyObject *arg, PyObject **presult) {
    int r = vv_sp_advance(op, arg, presult);
    if (r < 0) {
        *presult = NULL;
        return PYGEN_ERROR;
    }
    return r == 0 ? PYGEN_NEXT : PYGEN_RETURN;
}

static PyObject *vv_sp_send_meth(PyObject *op, PyObject *arg) {
    PyObject *out = NULL;
    int r = vv_sp_advance(op, arg, &out);
    if (r < 0) return NULL;
    if (r == 0) return out;
    vv_sp_set_stop_iteration(out);
    Py_DECREF(out);
    return NULL;
}

/* throw(): the op ends and the exception comes out of the await unchanged. */
static PyObject *vv_sp_throw_meth(PyObject *op, PyObject *args) {
    PyObject *exc = vv_sp_exception_from_throw(args);
    PyObject *tb;
    if (exc == NULL) return NULL;
    vv_sp_finish(op);
    tb = PyException_GetTraceback(exc);
    Py_INCREF(Py_TYPE(exc));
    PyErr_Restore((PyObject *)Py_TYPE(exc), exc, tb); /* steals all three */
    return NULL;
}

static PyObject *vv_sp_close_meth(PyObject *op, PyObject *unused) {
    (void)unused;
    vv_sp_finish(op);
    Py_RETURN_NONE;
}

static PyMethodDef vv_sp_methods[] = {
    {"send", (PyCFunction)vv_sp_send_meth, METH_O,
     "send(value) -> the next trap message, or StopIteration(result)."},
    {"throw", (PyCFunction)vv_sp_throw_meth, METH_VARARGS,
     "throw(exc) -> end the operation, raising exc out of the await."},
    {"close", (PyCFunction)vv_sp_close_meth, METH_NOARGS, "close() -> abandon the operation."},
};

/* Install am_send and the three methods on a ready type that has __await__. Runs
 * once, after advance/finish are set and before any instance exists. */
static int vv_sp_install(PyObject *type) {
    PyTypeObject *tp = (PyTypeObject *)type;
    int i;
    if (vv_sp_advance == NULL || vv_sp_finish == NULL) {
        PyErr_SetString(PyExc_SystemError, "vv_sp_install: advance/finish not set");
        return -1;
    }
    if (tp->tp_as_async == NULL || tp->tp_as_async->am_await == NULL) {
        PyErr_SetString(PyExc_SystemError, "vv_sp_install: type has no __await__");
        return -1;
    }
    tp->tp_as_async->am_send = vv_sp_am_send;
#ifdef Py_TPFLAGS_HAVE_AM_SEND
    tp->tp_flags |= Py_TPFLAGS_HAVE_AM_SEND;
#endif
    for (i = 0; i < 3; i++) {
        PyObject *descr = PyDescr_NewMethod(tp, &vv_sp_methods[i]);
        if (descr == NULL) return -1;
        if (PyDict_SetItemString(tp->tp_dict, vv_sp_methods[i].ml_name, descr) < 0) {
            Py_DECREF(descr);
            return -1;
        }
        Py_DECREF(descr);
    }
    PyType_Modified(tp);
    return 0;
}

#endif /* VV_SENDPROTO_H */
