/* vv_sendproto.h -- the generator-style send protocol for a Cython extension type whose
 * instances are awaitables (the sync module's operation objects).
 *
 * Cython gives such a type __await__ and __next__, but neither the am_send slot (what
 * PyIter_Send, hence `await`, uses on 3.10/3.11) nor C-level `send`/`throw` methods (what
 * the SEND opcode and gen_throw call on 3.12+). These are installed here, once, before the
 * first instance exists. The methods report errors C-style, so an exception passing
 * through an await on one of these objects (Cancelled, KeyboardInterrupt) gets no frame
 * of ours added to its traceback.
 */
#ifndef VV_SENDPROTO_H
#define VV_SENDPROTO_H

#include <Python.h>

/* The exception throw(typ[, val[, tb]]) should raise, as a new reference with its
 * traceback set, or NULL with an error set (bad arguments). */
static PyObject *vv_sp_exception_from_args(PyObject *args)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *typ, *val, *tb, *exc;

    if (n < 1 || n > 3) {
        PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", n);
        return NULL;
    }
    typ = PyTuple_GET_ITEM(args, 0);
    val = n > 1 ? PyTuple_GET_ITEM(args, 1) : Py_None;
    tb = n > 2 ? PyTuple_GET_ITEM(args, 2) : Py_None;
    if (tb != Py_None && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback object");
        return NULL;
    }
    if (PyExceptionInstance_Check(typ)) {
        if (val != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        exc = typ;
        Py_INCREF(exc);
    }
    else if (PyExceptionClass_Check(typ)) {
        if (PyObject_TypeCheck(val, (PyTypeObject *)typ)) {
            exc = val;
            Py_INCREF(exc);
        }
        else if (val == Py_None) {
            exc = PyObject_CallNoArgs(typ);
        }
        else if (PyTuple_Check(val)) {
            exc = PyObject_Call(typ, val, NULL);
        }
        else {
            exc = PyObject_CallOneArg(typ, val);
        }
        if (exc == NULL)
            return NULL;
        if (!PyExceptionInstance_Check(exc)) {
            PyErr_Format(PyExc_TypeError, "calling %R should have returned an instance of "
                         "BaseException, not %s", typ, Py_TYPE(exc)->tp_name);
            Py_DECREF(exc);
            return NULL;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving from BaseException, not %s",
                     Py_TYPE(typ)->tp_name);
        return NULL;
    }
    if (tb != Py_None && PyException_SetTraceback(exc, tb) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
}

/* Raise `exc` (stolen) as is: no implicit __context__, traceback as it stands. */
static void vv_sp_raise(PyObject *exc)
{
    PyObject *type = (PyObject *)Py_TYPE(exc);
    Py_INCREF(type);
    PyErr_Restore(type, exc, PyException_GetTraceback(exc));
}

/* What a generator's send() does with the value it returns: StopIteration carrying it
 * (a tuple or an exception is wrapped, so that .value is the object itself). */
static void vv_sp_set_stop_iteration(PyObject *value)
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

static PyMethodDef vv_sp_methods[] = {
    {"send", NULL, METH_O, "send(value) -> the next trap message; StopIteration when done."},
    {"throw", NULL, METH_VARARGS, "throw(exc) -> raise exc out of the await."},
};

/* Install am_send and the `send`/`throw` methods on a ready extension type. */
static int vv_sp_install(PyObject *type, sendfunc am_send, PyCFunction send_meth,
                         PyCFunction throw_meth)
{
    PyTypeObject *tp = (PyTypeObject *)type;
    int i;
    if (tp->tp_as_async == NULL || tp->tp_as_async->am_await == NULL) {
        PyErr_SetString(PyExc_SystemError, "vv_sp_install: the type has no __await__");
        return -1;
    }
    tp->tp_as_async->am_send = am_send;
#ifdef Py_TPFLAGS_HAVE_AM_SEND
    tp->tp_flags |= Py_TPFLAGS_HAVE_AM_SEND;
#endif
    vv_sp_methods[0].ml_meth = send_meth;
    vv_sp_methods[1].ml_meth = throw_meth;
    for (i = 0; i < 2; i++) {
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
