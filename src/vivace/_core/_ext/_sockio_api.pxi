# Included by _sockio.pyx (same module): the public constructors of the socket
# operations. Split out only to keep each file readable; see the module's design notes.

cdef inline _SockOp _new_op(object sock, int kind, int flags):
    cdef _SockOp op = _SockOp.__new__(_SockOp)
    op.sock = sock
    op.kind = kind
    op.flags = flags
    op.bit = IO_READ if kind == _RECV else IO_WRITE
    return op


def sock_call(sock, bint readable, str name not None, tuple args not None):
    """``await sock_call(s, readable, name, args)``: ``getattr(s, name)(*args)`` on the
    non-blocking stdlib socket *s* as a checkpoint; on BlockingIOError it waits until
    *s* is readable (else writable) and calls again."""
    cdef _SockOp op = _new_op(sock, _CALL, 0)
    op.bit = IO_READ if readable else IO_WRITE
    op.name = name
    op.args = args
    return op


def sock_recv(sock, Py_ssize_t nbytes, int flags=0):
    """``await sock_recv(s, n, flags)``: ``s.recv(n, flags)`` on the non-blocking stdlib
    socket *s* as a checkpoint, waiting for readability on EAGAIN. *n* must be >= 0."""
    if nbytes < 0:
        raise ValueError("negative buffersize in recv")
    cdef _SockOp op = _new_op(sock, _RECV, flags)
    op.nbytes = nbytes
    return op


def sock_send(sock, data, int flags=0):
    """``await sock_send(s, data, flags)``: ``s.send(data, flags)`` as a checkpoint,
    waiting for writability on EAGAIN; returns the count sent."""
    cdef _SockOp op = _new_op(sock, _SEND, flags)
    op.data = data
    return op


def stream_recv(sock, Py_ssize_t nbytes):
    """``sock_recv(sock, nbytes)`` with SocketStream's errors: an OSError comes out as
    ClosedResourceError (EBADF, ENOTSOCK) or BrokenResourceError (caused by it)."""
    if nbytes < 0:
        raise ValueError("negative buffersize in recv")
    cdef _SockOp op = _new_op(sock, _RECV, 0)
    op.nbytes = nbytes
    op.stream_errors = True
    return op


def stream_send_all(sock, data, BusyGuard guard not None):
    """``sock_send_all(sock, data)`` with SocketStream's errors (as ``stream_recv``),
    inside *guard*: taken when the call starts (BusyResourceError if another task
    holds it), released when it ends, however it ends."""
    cdef _SockOp op = sock_send_all(sock, data)
    op.stream_errors = True
    op.guard = guard
    return op


def wait_fd(poller, int fd, owner, task, bint readable):
    """``await wait_fd(poller, fd, owner, task, readable)``: park *task* until *poller*
    reports *fd* readable (else writable), as ``wait_readable``/``wait_writable``; the
    wait is the checkpoint. *owner* is the stdlib socket *fd* came from, or None."""
    cdef _SockOp op = _new_op(owner, _WAIT, 0)
    op.bit = IO_READ if readable else IO_WRITE
    op.poller = poller
    op.task = task
    op.fd = fd
    return op


def sock_send_all(sock, data):
    """``await sock_send_all(s, data)``: ``sock_send`` in a loop until every byte of
    *data* (a C-contiguous buffer, held until the end) is sent. Each send is a
    checkpoint; if one fails or is cancelled, part of *data* may have been sent."""
    cdef _SockOp op = _new_op(sock, _SEND_ALL, 0)
    op.data = data  # its buffer is taken on the first step (see _step)
    return op
