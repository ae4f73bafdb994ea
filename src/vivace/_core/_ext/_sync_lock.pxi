# Included by _sync.pyx (same module): the engine half of Lock / StrictFIFOLock.
# See _sync.pyx for the design notes and _sync_py.py for the reference twin.

cdef int _add_breaker(TaskBase task, object lot) except -1:
    # The owner of a lock is registered as its lot's breaker (the runner's registry,
    # also _parking_lot.GLOBAL_PARKING_LOT_BREAKER): if it exits holding the lock,
    # the lot breaks instead of leaving the waiters parked forever.
    cdef dict registry = task._runner._lot_breakers
    cdef object lots = registry.get(task)
    if lots is None:
        registry[task] = [lot]
    else:
        lots.append(lot)
    return 0


cdef int _remove_breaker(TaskBase task, object lot) except -1:
    cdef dict registry = task._runner._lot_breakers
    cdef object lots = registry.get(task)
    if type(lots) is list and len(<list>lots) == 1 and (<list>lots)[0] is lot:
        del registry[task]  # the common case: one lock held
        return 0
    try:
        if lots is None:
            raise ValueError
        lots.remove(lot)
    except ValueError:
        raise RuntimeError(
            "Attempted to remove task as breaker for a lot it is not registered for"
        ) from None
    if not lots:
        del registry[task]
    return 0


cdef class LockBase:
    """The engine half of ``Lock``/``StrictFIFOLock``: the owner and the waiters' lot.
    Releasing hands the lock to the oldest waiter, which is woken as the owner."""

    cdef object __weakref__
    cdef readonly LotBase _lot
    cdef readonly object _owner

    def __cinit__(self):
        self._lot = _lot_class()

    def __init__(self):
        # Present so that extra constructor arguments are refused, as by the reference.
        pass

    def locked(self):
        """Whether some task holds the lock."""
        return self._owner is not None

    cdef int _take(self, TaskBase task) except -1:
        self._owner = task
        _add_breaker(task, self._lot)
        return 0

    def acquire_nowait(self):
        """Take the lock without blocking.

        Raises WouldBlock if another task holds it (or is already waiting for it),
        RuntimeError if the current task holds it already.
        """
        cdef TaskBase task = _current_task()
        if self._owner is None and not self._lot.count:
            self._take(task)
        elif self._owner is task:
            raise RuntimeError("attempt to re-acquire an already held Lock")
        else:
            raise WouldBlock

    def acquire(self):
        """Take the lock, waiting for it if needed (a checkpoint).

        Raises RuntimeError if the current task holds it already, BrokenResourceError
        if the holder exits without releasing it.
        """
        return _new_op(_K_ACQUIRE, self, None)

    def release(self):
        """Release the lock; the oldest waiter, if any, becomes the owner at once.

        RuntimeError if the current task does not hold it.
        """
        self._release()

    cdef int _release(self) except -1:
        cdef TaskBase task = _current_task()
        cdef LotBase lot = self._lot
        cdef _Op op
        if task is not self._owner:
            raise RuntimeError("can't release a Lock you don't own")
        _remove_breaker(task, lot)
        if lot.count:
            op = _q_popleft(lot)
            _wake(op.task, _RESUME_NONE)
            self._take(op.task)
        else:
            self._owner = None
        return 0

    def __aenter__(self):
        return _new_op(_K_ACQUIRE, self, None)

    def __aexit__(self, exc_type, exc_value, traceback):
        return _new_op(_K_RELEASE, self, None)


cdef object _start_acquire(_Op op, TaskBase task):
    # After the opening cancel point (see _op_start).
    cdef LockBase lock
    cdef LotBase lot
    lock = <LockBase>op.target
    lot = lock._lot
    if lock._owner is None and not lot.count:
        lock._take(task)
        op.state = _S_FINISH
        return _CSC_MSG
    if lock._owner is task:
        raise RuntimeError("attempt to re-acquire an already held Lock")
    # Waiting is nothing but parking in _lot: release() makes the oldest parked task
    # the owner, whoever parked it (Condition and anyio park there directly).
    if lot.broken_by:
        raise BrokenResourceError(
            f"Owner of this lock exited without releasing: {lock._owner}"
        ) from None
    return _park(op, lot, task, lot)
