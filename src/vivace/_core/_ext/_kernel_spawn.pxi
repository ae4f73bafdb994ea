# Included by _kernel.pyx: the common paths of spawning and exiting, compiled twin of
# KernelBase.spawn_child / KernelBase._exit_fast in _kernel_py.py (read the design
# notes there). Same checks, same side effects in the same order; every rare case
# goes to the Python layer (self.spawn_impl / self.task_exited) before anything
# observable has happened.

# Untracked live tasks. A task that the kernel spawns is referenced from
# ``self.tasks`` until it exits, and so is everything it references: the cyclic
# collector could never free any of it. Traversing the task, its coroutine and its
# fresh context in every collection is pure cost -- with 100k live tasks it was most
# of spawn's time -- so the fast path takes the three out of the collector's lists,
# and they go back (``_gc_retrack``) when the task finishes, when its coroutine or
# context is replaced, when the Python layer asks (run teardown, for tasks that never
# finished), and in ``__dealloc__``. Objects they reference stay tracked; to the
# collector they simply look referenced from outside, which they are.
# Invariant: while untracked, the coroutine and the context are owned by the task,
# so neither can be freed untracked -- CPython's coroutine and Context deallocs unlink
# the object from the GC list without checking that it is linked.
cdef inline void _gc_untrack(TaskBase task) noexcept:
    # noexcept: only unlinks list nodes; cannot fail.
    task._gc_untracked = True
    PyObject_GC_UnTrack(<PyObject *>task)
    PyObject_GC_UnTrack(<PyObject *>task._coro)
    PyObject_GC_UnTrack(<PyObject *>task._context)


cdef inline void _gc_track_again(object obj) noexcept:
    if obj is not None and not PyObject_GC_IsTracked(<PyObject *>obj):
        PyObject_GC_Track(<PyObject *>obj)


cdef inline void _gc_retrack_fields(TaskBase task) noexcept:
    # The coroutine and the context go back. Alone, for __dealloc__: the dying task
    # stays untracked (Cython unlinked it for the dealloc) and drops them next.
    # noexcept: only links list nodes; cannot fail.
    if not task._gc_untracked:
        return
    task._gc_untracked = False
    _gc_track_again(task._coro)
    _gc_track_again(task._context)


cdef inline void _gc_retrack(TaskBase task) noexcept:
    # The task and its fields go back.
    if task._gc_untracked:
        _gc_track_again(task)
        _gc_retrack_fields(task)


cdef inline int _set_remove(object s, object item) except -1:
    # set.remove: the C call for a plain set, the method otherwise (a subclass).
    if type(s) is set:
        if PySet_Discard(s, item) == 0:
            raise KeyError(item)  # what set.remove raises
    else:
        s.remove(item)
    return 0


# -- the task tree: one owner each (see vivace._core._tree_contract) --------------------

cdef int activate_status(object task, object status) except -1:
    # activate_cancel_status: leave the old status, join the new one, deliver its cancel.
    # TaskBase's and CancelStatusBase's fields are read in C; anything else (the other
    # engine's objects, in the twin tests) by name.
    cdef bint c_task = isinstance(task, TaskBase)
    old = (<TaskBase>task)._cancel_status if c_task else task._cancel_status
    if old is not None:
        vv_set_discard(
            (<CancelStatusBase>old)._tasks if isinstance(old, CancelStatusBase) else old._tasks,
            task,
        )
    if c_task:
        (<TaskBase>task)._cancel_status = status
    else:
        task._cancel_status = status
    if status is None:
        return 0
    if isinstance(status, CancelStatusBase):
        vv_set_add((<CancelStatusBase>status)._tasks, task)
        if (<CancelStatusBase>status).effectively_cancelled:
            task._attempt_delivery_of_any_pending_cancel()
    else:
        vv_set_add(status._tasks, task)
        if status.effectively_cancelled:
            task._attempt_delivery_of_any_pending_cancel()
    return 0


cdef int check_closed(object nursery) except -1:
    # check_nursery_closed: nothing left in it -> closed, and the parent waiting in
    # __aexit__ is woken (through the Python-level reschedule, as the reference does).
    if not (nursery._nested_child_running or nursery._children or nursery._pending_starts):
        nursery._closed = True
        if nursery._parent_waiting_in_aexit:
            nursery._parent_waiting_in_aexit = False
            parent = nursery._parent_task
            parent._runner.reschedule(parent)
    return 0


def activate_cancel_status(task, status):
    """Move *task* from its cancel status to *status* (None: to no status); a cancel
    that *status* already carries is delivered at once."""
    activate_status(task, status)


def check_nursery_closed(nursery):
    """Close *nursery* if nothing is left in it, waking its parent if that waits in
    ``__aexit__``."""
    check_closed(nursery)


cdef object _spawn_child(KernelBase self, object async_fn, object args, object nursery,
                         object name):
    cdef TaskBase task
    if nursery._closed:
        raise RuntimeError("Nursery is closed to new arrivals")
    if not self._fast_paths or self._instr_spawned or not vv_is_async_def(async_fn):
        return self.spawn_impl(async_fn, args, nursery, name)
    context = vv_steal(PyContext_CopyCurrent())  # new reference, owned by `context`
    # A plain async def: the call only binds arguments and makes the coroutine.
    coro = async_fn(*args)
    # tp_new of the Python-layer subclass (Task's metaclass refuses __call__): every
    # field starts as None/0. The new reference is handed over to `task`.
    task = <TaskBase>vv_new_instance(self._task_class, TaskBase)
    task._coro = coro
    task._context = context
    task._runner = self
    task._counter = next(self._task_counter)
    task._ki_protected = False
    task._send_mode = _IDLE
    task._parent_nursery = nursery
    task._name = async_fn if name is None else name
    task._child_nurseries = NO_CHILD_NURSERIES  # a nursery opened in it makes a list
    # (_next_send, _abort_func, _cancel_status, custom_sleep_data, the counters and
    # the boxes start as None/0 from tp_new, as TaskBase.__init__ would set them.)
    vv_set_add(self.tasks, task)
    vv_set_add(nursery._children, task)
    activate_status(task, nursery._cancel_status)
    _gc_untrack(task)
    # The first step sends None into the fresh coroutine.
    self._reschedule(task, None)
    return task


cdef int _exit_fast(KernelBase self, TaskBase task) except -1:
    # 1: finished here; 0: something rare is involved, the caller uses task_exited.
    status = task._cancel_status
    if (
        task._child_nurseries
        or self._lot_breakers
        or self._instr_exited
        or status is None
        or status.abandoned_by_misnesting
        or task is self.init_task
        or task is self.main_task
    ):
        return 0
    activate_status(task, None)
    _set_remove(self.tasks, task)
    nursery = task._parent_nursery
    # Nursery._child_finished with a Value result.
    _set_remove(nursery._children, task)
    if not nursery._closed or hasattr(nursery, "_pending_excs"):
        check_closed(nursery)
    return 1
