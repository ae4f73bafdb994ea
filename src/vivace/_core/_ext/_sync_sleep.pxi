# Included by _sync.pyx: ``park_until``, compiled twin of ``_sync_py.park_until``.
# The task parks with one deadline-heap entry whose payload is the task itself (the
# run loop calls ``task._deadline_expired()`` when it fires); the op is the abort
# function, which removes that entry. Exactly one of the two happens: rescheduling
# clears the abort function, and a successful abort removes the entry first.


def park_until(deadline):
    """Park the current task until the run's clock reaches *deadline*: a cancel point
    and a schedule point even if it already has. The caller checks for NaN."""
    return _new_op(_K_SLEEP, None, deadline)


cdef object _start_sleep(_Op op):
    cdef TaskBase task = _current_task()
    runner = task._runner
    if op.value <= runner.clock.current_time():
        # Already due: trio's sleep scope is cancelled on entry, so the task parks and
        # its abort succeeds at once -- ONE schedule point, after which the sleep's own
        # Cancelled is swallowed unless an enclosing cancellation is visible (checked
        # at resume by _sleep_woke). A pending cancel or KeyboardInterrupt is delivered
        # by that same park (not by CHECKPOINT, which would take a second schedule
        # point). No heap entry: op.value None tells _abort_sleep so.
        op.value = None
        op.task = task
        op.state = _S_PARKED
        if task.cancel_pending():
            return _WaitTaskRescheduled(op)
        task.count_cancel_point()  # the reference's CSC path counts it too
        return _CSC_MSG
    heap = runner.deadlines
    guest = runner.is_guest
    if not guest and type(heap) is DeadlineHeap:
        # The common case in C, as CancelScopeBase.__enter__ does it.
        handle = (<DeadlineHeap>heap).c_push(op.value, task)
    else:
        if guest:
            before = heap.peek_deadline()
        handle = heap.push(op.value, task)
        if guest and heap.peek_deadline() != before:
            runner.force_guest_tick_asap()
    op.target = heap
    op.value = handle
    op.task = task
    op.state = _S_PARKED
    return _WaitTaskRescheduled(op)


cdef int _sleep_woke(_Op op) except -1:
    # The deadline has passed (fired, or was due at once). In trio the sleep is a scope
    # that the deadline cancelled, and a scope lets Cancelled through when an enclosing
    # cancellation is visible: if an enclosing scope is cancelled by the time this task
    # resumes, the sleep raises (the reference twin does the same after its await).
    status = op.task._cancel_status
    if status.effectively_cancelled:
        raise status._make_cancelled()
    return 0


cdef object _abort_sleep(_Op op):
    handle = op.value
    op.value = None
    if handle is None:  # an already-due sleep: nothing in the heap
        return _abort_result(True)
    heap = op.target
    # discard, not remove: an enclosing scope whose deadline expired in the same pass of
    # the run loop aborts us after that pass already popped our entry.
    if type(heap) is DeadlineHeap:
        (<DeadlineHeap>heap).c_discard(<uint64_t>handle)
    else:
        heap.discard(handle)
    return _abort_result(True)
