# Included by _sync.pyx (same module): memory-channel state and the hot halves of its
# two handles. See _sync_channel_py.py (reference twin) for the invariants.

cdef object _NOTHING = object()  # _take() found no item


cdef object _closed_send():
    return ClosedResourceError("this send channel is closed")


cdef object _closed_receive():
    return ClosedResourceError("this receive channel is closed")


cdef object _broken():
    return BrokenResourceError("every receive channel of this memory channel is closed")


cdef class ChannelState:
    """What every clone of one memory channel shares."""

    cdef readonly object max_buffer_size
    cdef Py_ssize_t _capacity
    # The buffer: _data[_head:], a list consumed from the front and compacted now and
    # then (amortized O(1); a list keeps the items visible to the cycle collector).
    cdef list _data
    cdef Py_ssize_t _head
    cdef readonly Py_ssize_t open_send_channels
    cdef readonly Py_ssize_t open_receive_channels
    cdef readonly Py_ssize_t peak_buffer_used
    cdef _Queue _senders
    cdef _Queue _receivers

    def __cinit__(self, max_buffer_size):
        self.max_buffer_size = max_buffer_size
        if isinstance(max_buffer_size, float) and isinf(<double>max_buffer_size):
            self._capacity = PY_SSIZE_T_MAX
        else:
            self._capacity = min(max_buffer_size, PY_SSIZE_T_MAX)
        self._data = []
        self._senders = _Queue.__new__(_Queue)
        self._receivers = _Queue.__new__(_Queue)

    @property
    def current_buffer_used(self):
        return len(self._data) - self._head

    @property
    def tasks_waiting_send(self):
        return self._senders.count

    @property
    def tasks_waiting_receive(self):
        return self._receivers.count

    cdef bint _offer(self, object value) except -1:
        # Hand `value` to a waiting receiver or buffer it; False if neither.
        cdef _Op receiver
        cdef Py_ssize_t used
        if self._receivers.count:
            receiver = _q_popleft(self._receivers)
            receiver.value = value
            _wake(receiver.task, _RESUME_NONE)
            return True
        used = len(self._data) - self._head
        if used < self._capacity:
            self._data.append(value)
            used += 1
            if used > self.peak_buffer_used:
                self.peak_buffer_used = used
            return True
        return False

    cdef object _take(self):
        # The next item, from a waiting sender (through the buffer: FIFO) or the
        # buffer; _NOTHING if there is none.
        cdef _Op sender
        cdef object value
        if self._senders.count:
            sender = _q_popleft(self._senders)
            value = sender.value
            sender.value = None
            _wake(sender.task, _RESUME_NONE)
            if len(self._data) > self._head:
                self._data.append(value)
                value = self._pop_front()
            return value
        if len(self._data) > self._head:
            return self._pop_front()
        return _NOTHING

    cdef object _pop_front(self):
        cdef list data = self._data
        cdef Py_ssize_t head = self._head
        cdef object value = data[head]
        data[head] = None
        head += 1
        if head == len(data):
            PyList_SetSlice(data, 0, head, NULL)
            head = 0
        elif head >= 32 and 2 * head >= len(data):
            PyList_SetSlice(data, 0, head, NULL)
            head = 0
        self._head = head
        return value

    cdef void _clear_buffer(self) noexcept:
        # noexcept: a fresh empty list and two stores.
        self._data = []
        self._head = 0


cdef list _mine(_Queue queue, object handle):
    # The ops in `queue` that are blocked on `handle`.
    cdef list mine = []
    cdef PyObject *p = queue.head
    while p != NULL:
        if (<_Op>p).target is handle:
            mine.append(<object>p)
        p = (<_Op>p).next
    return mine


cdef int _refuse_foreign_close(_Queue own, list mine, bint last, _Queue other) except -1:
    # Closing wakes the tasks blocked on this handle (and, for the last handle of its
    # kind, every task blocked on the other side): from another thread that is
    # refused, as every wake-up is, before anything changes -- a half-done close
    # would strand those tasks.
    if mine:
        _q_refuse_foreign_thread(own)
    if last:
        _q_refuse_foreign_thread(other)
    return 0


cdef int _wake_mine(_Queue queue, list mine, bint sending) except -1:
    # Wake, with ClosedResourceError, the ops of `mine` (still linked in `queue`).
    cdef _Op op
    for item in mine:
        op = <_Op>item
        if op.queue == <PyObject *>queue:
            _q_detach(queue, op)
            vv_decref(<PyObject *>op)  # the queue's reference (`mine` holds another)
            _wake(op.task, _Error(_closed_send() if sending else _closed_receive()))
    return 0


cdef class SendChannelBase:
    """The engine half of ``MemorySendChannel``."""

    cdef object __weakref__
    cdef readonly ChannelState _state
    cdef readonly bint _closed

    def __cinit__(self, ChannelState state not None):
        self._state = state
        state.open_send_channels += 1

    def send_nowait(self, value):
        """Send *value* without blocking: hand it to a waiting receiver or buffer it.

        Raises WouldBlock if the buffer is full, ClosedResourceError if this handle is
        closed, BrokenResourceError if every receive handle is closed.
        """
        if self._closed:
            raise _closed_send()
        if not self._state.open_receive_channels:
            raise _broken()
        if not self._state._offer(value):
            raise WouldBlock

    def send(self, value):
        """Send *value*, waiting while the buffer is full (and, with a zero-size buffer,
        until a receiver takes it). A checkpoint; Cancelled means nothing was sent.

        Raises ClosedResourceError if this handle is (or gets) closed,
        BrokenResourceError if every receive handle is (or gets) closed.
        """
        return _new_op(_K_SEND, self, value)

    def close(self):
        """Close this handle (idempotent, not a checkpoint). Tasks blocked in ``send``
        on it get ClosedResourceError; when the last send handle closes, blocked
        receivers get EndOfChannel."""
        cdef ChannelState state = self._state
        cdef _Op op
        if self._closed:
            return
        mine = _mine(state._senders, self)
        _refuse_foreign_close(
            state._senders, mine, state.open_send_channels == 1, state._receivers
        )
        self._closed = True
        _wake_mine(state._senders, mine, True)
        state.open_send_channels -= 1
        if state.open_send_channels == 0:
            while state._receivers.count:
                op = _q_popleft(state._receivers)
                _wake(op.task, _Error(EndOfChannel()))


cdef object _start_send(_Op op, TaskBase task):
    # After the opening cancel point (see _op_start).
    cdef SendChannelBase handle
    cdef ChannelState state
    handle = <SendChannelBase>op.target
    if handle._closed:
        raise _closed_send()
    state = handle._state
    if not state.open_receive_channels:
        raise _broken()
    if state._offer(op.value):
        op.value = None
        op.state = _S_FINISH
        return _CSC_MSG
    return _park(op, state._senders, task, handle)


cdef class ReceiveChannelBase:
    """The engine half of ``MemoryReceiveChannel``."""

    cdef object __weakref__
    cdef readonly ChannelState _state
    cdef readonly bint _closed

    def __cinit__(self, ChannelState state not None):
        self._state = state
        state.open_receive_channels += 1

    def receive_nowait(self):
        """Take the next item without blocking.

        Raises WouldBlock if there is none yet, EndOfChannel if there never will be
        (every send handle closed, buffer empty), ClosedResourceError if this handle
        is closed.
        """
        if self._closed:
            raise _closed_receive()
        value = self._state._take()
        if value is not _NOTHING:
            return value
        if not self._state.open_send_channels:
            raise EndOfChannel
        raise WouldBlock

    def receive(self):
        """Take the next item, waiting for one if needed. A checkpoint; Cancelled means
        nothing was taken. Clones share the items: each item goes to one receiver.

        Raises EndOfChannel once every send handle is closed and the buffer is empty,
        ClosedResourceError if this handle is (or gets) closed.
        """
        return _new_op(_K_RECEIVE, self, None)

    def __anext__(self):
        return _new_op(_K_ANEXT, self, None)

    def close(self):
        """Close this handle (idempotent, not a checkpoint). Tasks blocked in
        ``receive`` on it get ClosedResourceError; when the last receive handle closes,
        blocked senders get BrokenResourceError and buffered items are dropped."""
        cdef ChannelState state = self._state
        cdef _Op op
        if self._closed:
            return
        mine = _mine(state._receivers, self)
        _refuse_foreign_close(
            state._receivers, mine, state.open_receive_channels == 1, state._senders
        )
        self._closed = True
        _wake_mine(state._receivers, mine, False)
        state.open_receive_channels -= 1
        if state.open_receive_channels == 0:
            while state._senders.count:
                op = _q_popleft(state._senders)
                _wake(op.task, _Error(_broken()))
            state._clear_buffer()


cdef object _start_receive(_Op op, TaskBase task):
    # After the opening cancel point (see _op_start).
    cdef ReceiveChannelBase handle
    cdef ChannelState state
    cdef object value
    handle = <ReceiveChannelBase>op.target
    if handle._closed:
        raise _closed_receive()
    state = handle._state
    value = state._take()
    if value is not _NOTHING:
        op.value = value
        op.state = _S_FINISH
        return _CSC_MSG
    if not state.open_send_channels:
        if op.kind == _K_ANEXT:
            raise StopAsyncIteration
        raise EndOfChannel
    return _park(op, state._receivers, task, handle)
