# Included by _kernel.pyx: CancelStatusBase, the hot half of a cancel-status node
# (vivace._core._cancel.CancelStatus subclasses it; the reference twin is in
# _scope_py.py). It lives with the kernel so that the kernel's task-tree logic
# (activate_status in _kernel_spawn.pxi) reaches its fields in C; _kernel.pxd declares
# it for _scope.pyx.

cdef class CancelStatusBase:
    # Fields: declared in _kernel.pxd.

    def __init__(self, scope, parent):
        self._init(scope, parent)

    @property
    def parent_cancellation_is_visible_to_us(self):
        return self.parent_visible()

    def close(self):
        parent = self._parent
        if parent is not None:
            siblings = (<CancelStatusBase?>parent)._children
            if siblings:
                vv_set_discard(siblings, self)
            self._parent = None
        if self._tasks or self._children:
            self._close_abandoned()

    cdef int _init(self, object scope, object parent) except -1:
        cdef CancelStatusBase p
        self._scope = scope
        self._tasks = set()
        self.effectively_cancelled = self.abandoned_by_misnesting = False
        # _children is created on first use: most statuses never get a child (see the
        # reference).
        self._parent = self._children = None
        if parent is not None:
            p = <CancelStatusBase?>parent
            self._parent = p
            if p._children is None:
                p._children = set()
            vv_set_add(p._children, self)
            if scope._cancel_called or (p.effectively_cancelled and not scope._shield):
                self.recalculate()
        return 0

    cdef bint parent_visible(self) except -1:
        parent = self._parent
        if parent is None:
            return False
        if self._scope._shield:
            return False
        return (<CancelStatusBase?>parent).effectively_cancelled
