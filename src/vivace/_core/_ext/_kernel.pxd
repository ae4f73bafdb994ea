# The compiled kernel's C-level interface (see _kernel.pyx for the design notes).
# Other engine modules may `cimport` these types to read task state and to
# reschedule without a Python-level call.

cdef class TaskBase:
    cdef object __weakref__
    cdef object _coro  # the `coro` property
    cdef object _context
    cdef public object _runner
    cdef public object _next_send
    cdef public object _abort_func
    cdef public object _cancel_status
    cdef public object custom_sleep_data
    cdef public object _counter
    # Task-tree fields of the Python layer's Task, here so spawning sets them in C.
    cdef public object _parent_nursery
    cdef public object _name
    cdef public object _child_nurseries
    cdef public object _eventual_parent_nursery
    # _schedule_points / _cancel_points (properties): a C count, unless a Python
    # caller stored something that is not a machine-size int, kept boxed in a 1-tuple.
    cdef Py_ssize_t _sp_n
    cdef Py_ssize_t _cp_n
    cdef object _sp_box
    cdef object _cp_box
    cdef public int _send_mode
    cdef public bint _ki_protected
    # Set while the kernel keeps this task and its context out of the cyclic GC's
    # lists (see _kernel_spawn.pxi); cleared when they go back.
    cdef bint _gc_untracked

    # The cancel-point bookkeeping other engine modules share (one owner: _kernel.pyx).
    cdef int count_cancel_point(self) except -1
    # checkpoint_if_cancelled()'s test: a cancel, or a KeyboardInterrupt for the main task.
    cdef bint cancel_pending(self) except -1


cdef class KernelBase:
    cdef dict __dict__
    cdef object __weakref__
    cdef public list runq
    cdef public object current_task
    cdef public object main_task
    cdef public bint ki_pending
    cdef public bint is_guest
    cdef public bint _instr_before_step
    cdef public bint _instr_after_step
    cdef public bint _instr_scheduled
    # Spawn/exit state owned by the Python layer (see KernelBase.__init__).
    cdef public bint _fast_paths
    cdef public bint _instr_spawned
    cdef public bint _instr_exited
    cdef public object tasks
    cdef public object init_task
    cdef public object _task_class
    cdef public object _task_counter
    cdef public object _lot_breakers
    # The thread the run belongs to: only it may wake the run's tasks.
    cdef public unsigned long _thread_ident

    cdef int _reschedule(self, TaskBase task, object next_send) except -1
    cdef int _run_batch_c(self, list batch) except -1
    cdef int _step_c(self, TaskBase task) except -1
    cdef int _deliver_later_c(self, TaskBase task, object exc) except -1
    cdef int _dispatch_c(self, TaskBase task, object msg) except -1
    cdef int _exit_fast_c(self, TaskBase task) except -1


cdef class CancelStatusBase:
    # The fields the engine reads and writes (see vivace._core._tree_contract).
    cdef public object _scope
    cdef public object _parent
    cdef public object _children
    cdef public object _tasks
    cdef public bint effectively_cancelled
    cdef public bint abandoned_by_misnesting

    cdef int _init(self, object scope, object parent) except -1
    cdef bint parent_visible(self) except -1


# The task tree's logic owned by the kernel (see vivace._core._tree_contract):
# move a task to another cancel status; close a nursery that has nothing left.
cdef int activate_status(object task, object status) except -1
cdef int check_closed(object nursery) except -1
