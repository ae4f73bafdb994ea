"""An emulation of the stdlib's ``select.kqueue``/``select.kevent`` for Linux, where
there is no kqueue: enough of kevent(2) as macOS and FreeBSD document it to run the
kqueue backend (and the whole suite, through ``fake_kqueue_site/sitecustomize.py``)
here.

Emulated: ``kqueue()`` (``fileno``, ``closed``, ``close``, ``fromfd``, ``control``),
``kevent`` (its six fields, ``==`` and ordering, unhashable), the ``KQ_*`` constants
with the BSD values, EVFILT_READ/EVFILT_WRITE on any fd poll(2) accepts, and the flags
EV_ADD, EV_DELETE, EV_ENABLE, EV_DISABLE, EV_ONESHOT, EV_CLEAR, EV_RECEIPT, EV_ERROR and
EV_EOF. Errors: EBADF for a change on a closed fd, ENOENT for deleting, enabling or
disabling an unknown registration, EINVAL for another filter. As kevent(2) says, a
failed change is reported as an EV_ERROR event if the event list has room (always,
with EV_RECEIPT, whose successful changes report data 0) and then no events are
collected; without room, ``control`` raises it and stops at that change. Closing an fd
removes its registrations (detected here as the fd number being closed, or naming
another file: its (st_dev, st_ino) changed).

Not emulated: other filters (EVFILT_PROC, EVFILT_SIGNAL, EVFILT_TIMER, EVFILT_USER,
EVFILT_VNODE...), fflags/NOTE_*, low-water marks; ``data`` is FIONREAD's byte count for
readable fds where it answers, else 0. Waiting is a poll(2) over the enabled
registrations, rebuilt each call; the kqueue's own fd is an epoll fd that never becomes
ready (a real kqueue fd is readable while events are pending).
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import select
import termios
from dataclasses import dataclass
from typing import Any

KQ_FILTER_READ = -1
KQ_FILTER_WRITE = -2
KQ_FILTER_AIO = -3
KQ_FILTER_VNODE = -4
KQ_FILTER_PROC = -5
KQ_FILTER_SIGNAL = -6
KQ_FILTER_TIMER = -7

KQ_EV_ADD = 0x0001
KQ_EV_DELETE = 0x0002
KQ_EV_ENABLE = 0x0004
KQ_EV_DISABLE = 0x0008
KQ_EV_ONESHOT = 0x0010
KQ_EV_CLEAR = 0x0020
KQ_EV_RECEIPT = 0x0040
KQ_EV_SYSFLAGS = 0xF000
KQ_EV_FLAG1 = 0x2000
KQ_EV_ERROR = 0x4000
KQ_EV_EOF = 0x8000

CONSTANTS = {name: value for name, value in globals().items() if name.startswith("KQ_")}

_SUPPORTED = (KQ_FILTER_READ, KQ_FILTER_WRITE)
# Flags a registration remembers and reports back with its events.
_KEPT = KQ_EV_ADD | KQ_EV_ENABLE | KQ_EV_ONESHOT | KQ_EV_CLEAR | KQ_EV_RECEIPT


def _fd_of(obj: Any) -> int:
    if isinstance(obj, int):
        return obj
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        raise TypeError(
            f"argument must be an int, or have a fileno() method, not {type(obj).__name__}"
        )
    return int(fileno())


class kevent:  # noqa: N801 -- the stdlib's name
    """One change or event: the six fields of struct kevent."""

    __slots__ = ("data", "fflags", "filter", "flags", "ident", "udata")
    __hash__ = None  # type: ignore[assignment]  # as the stdlib's: == without hash

    def __init__(
        self,
        ident: Any,
        filter: int = KQ_FILTER_READ,  # noqa: A002 -- the stdlib's keyword
        flags: int = KQ_EV_ADD,
        fflags: int = 0,
        data: int = 0,
        udata: int = 0,
    ) -> None:
        self.ident = _fd_of(ident)
        self.filter = int(filter)
        self.flags = int(flags)
        self.fflags = int(fflags)
        self.data = int(data)
        self.udata = int(udata)

    def _key(self) -> tuple[int, ...]:
        return (self.ident, self.filter, self.flags, self.fflags, self.data, self.udata)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, kevent):
            return NotImplemented
        return self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, kevent):
            return NotImplemented
        return self._key() != other._key()

    def __lt__(self, other: kevent) -> bool:
        return self._key() < other._key()

    def __le__(self, other: kevent) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: kevent) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: kevent) -> bool:
        return self._key() >= other._key()

    def __repr__(self) -> str:
        return (
            f"<select.kevent ident={self.ident} filter={self.filter} flags=0x{self.flags:x} "
            f"fflags=0x{self.fflags:x} data=0x{self.data:x} udata=0x{self.udata:x}>"
        )


@dataclass
class _Knote:
    flags: int
    fflags: int
    data: int
    udata: int
    identity: tuple[int, int]
    enabled: bool = True
    # EV_CLEAR: the state last reported; the knote fires again only when it changes.
    reported: tuple[int, int] | None = None


def _identity(fd: int) -> tuple[int, int] | None:
    """The file *fd* names now, or None if it is not open."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _readable_bytes(fd: int) -> int:
    try:
        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(buf, "little", signed=True)


class kqueue:  # noqa: N801 -- the stdlib's name
    """A kernel event queue, emulated over poll(2)."""

    def __init__(self) -> None:
        self._owner: Any = select.epoll()  # only for a real, private fd
        self._knotes: dict[tuple[int, int], _Knote] = {}

    @classmethod
    def fromfd(cls, fd: int) -> kqueue:
        raise OSError(errno.EOPNOTSUPP, "the fake kqueue cannot adopt an fd")

    @property
    def closed(self) -> bool:
        return bool(self._owner.closed)

    def close(self) -> None:
        self._owner.close()
        self._knotes.clear()

    def fileno(self) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed kqueue object")
        return int(self._owner.fileno())

    def __repr__(self) -> str:
        return f"<fake select.kqueue fd={-1 if self.closed else self.fileno()}>"

    # -- changes ---------------------------------------------------------------------
    def _change(self, ch: kevent) -> int:
        """Apply one change; 0 or an errno."""
        if ch.filter not in _SUPPORTED:
            return errno.EINVAL
        identity = _identity(ch.ident)
        if identity is None:
            return errno.EBADF
        key = (ch.ident, ch.filter)
        kn = self._knotes.get(key)
        if kn is not None and kn.identity != identity:
            del self._knotes[key]  # the fd was closed and reused: that removed it
            kn = None
        if ch.flags & KQ_EV_ADD:
            if kn is None:
                kn = _Knote(ch.flags & _KEPT, ch.fflags, ch.data, ch.udata, identity)
                self._knotes[key] = kn
            else:
                kn.flags = (kn.flags & ~(KQ_EV_ONESHOT | KQ_EV_CLEAR)) | (ch.flags & _KEPT)
                kn.fflags, kn.data, kn.udata = ch.fflags, ch.data, ch.udata
            kn.enabled = not ch.flags & KQ_EV_DISABLE
            kn.reported = None
            return 0
        if kn is None:
            return errno.ENOENT if ch.flags & (KQ_EV_DELETE | KQ_EV_ENABLE | KQ_EV_DISABLE) else 0
        if ch.flags & KQ_EV_DELETE:
            del self._knotes[key]
        elif ch.flags & KQ_EV_DISABLE:
            kn.enabled = False
        elif ch.flags & KQ_EV_ENABLE:
            kn.enabled = True
        return 0

    def _drop_closed(self) -> None:
        # Closing an fd removes the registrations made through it.
        for key, kn in list(self._knotes.items()):
            if _identity(key[0]) != kn.identity:
                del self._knotes[key]

    # -- kevent(2) -------------------------------------------------------------------
    def control(
        self, changelist: Any, maxevents: int, timeout: float | None = None
    ) -> list[kevent]:
        if self.closed:
            raise ValueError("I/O operation on closed kqueue object")
        if maxevents < 0:
            raise ValueError(f"Length of eventlist must be 0 or positive, got {maxevents}")
        if timeout is not None:
            timeout = float(timeout)
            if math.isnan(timeout) or timeout < 0:
                raise ValueError(f"timeout must be positive or None, got {timeout!r}")
        changes = list(changelist) if changelist is not None else []
        for ch in changes:
            if not isinstance(ch, kevent):
                raise TypeError("changelist must be an iterable of select.kevent objects")
        self._drop_closed()
        out: list[kevent] = []
        for ch in changes:
            err = self._change(ch)
            if err or ch.flags & KQ_EV_RECEIPT:
                if len(out) >= maxevents:
                    if err:
                        raise OSError(err, os.strerror(err))
                    continue
                out.append(
                    kevent(ch.ident, ch.filter, ch.flags | KQ_EV_ERROR, ch.fflags, err, ch.udata)
                )
        if out or maxevents == 0:
            return out
        return self._collect(maxevents, timeout)

    def _ready(self, key: tuple[int, int], kn: _Knote, revents: int) -> kevent | None:
        fd, filt = key
        if filt == KQ_FILTER_READ:
            fired = revents & (select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLRDHUP)
            data = _readable_bytes(fd) if fired else 0
            eof = revents & (select.POLLHUP | select.POLLRDHUP)
        else:
            fired = revents & (select.POLLOUT | select.POLLHUP | select.POLLERR)
            data = 0
            eof = revents & (select.POLLHUP | select.POLLERR)
        if not fired:
            kn.reported = None
            return None
        if kn.flags & KQ_EV_CLEAR:
            state = (data, revents)
            if kn.reported == state:
                return None
            kn.reported = state
        flags = kn.flags | (KQ_EV_EOF if eof else 0)
        return kevent(fd, filt, flags, kn.fflags, data, kn.udata)

    def _collect(self, maxevents: int, timeout: float | None) -> list[kevent]:
        masks: dict[int, int] = {}
        for (fd, filt), kn in self._knotes.items():
            if kn.enabled:
                bit = select.POLLIN | select.POLLRDHUP if filt == KQ_FILTER_READ else select.POLLOUT
                masks[fd] = masks.get(fd, 0) | bit
        poller = select.poll()
        for fd, mask in masks.items():
            poller.register(fd, mask)
        # EV_CLEAR knotes that already reported their state must not make this spin:
        # poll again (bounded by the caller's timeout) until something new is reported.
        deadline = None if timeout is None else _monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - _monotonic())
            ms = None if remaining is None else math.ceil(remaining * 1000)
            ready = dict(poller.poll(ms))
            out: list[kevent] = []
            for key, kn in list(self._knotes.items()):
                revents = ready.get(key[0], 0)
                if revents & select.POLLNVAL:
                    del self._knotes[key]  # closed behind our back: gone
                    continue
                if not kn.enabled or not revents:
                    continue
                ev = self._ready(key, kn, revents)
                if ev is None:
                    continue
                out.append(ev)
                if kn.flags & KQ_EV_ONESHOT:
                    del self._knotes[key]
                if len(out) == maxevents:
                    break
            if out or remaining == 0.0 or not ready:
                return out
            if self.closed:
                return []


def _monotonic() -> float:
    import time

    return time.monotonic()


def install(module: Any = select) -> None:
    """Give *module* (``select``) this emulation's kqueue, kevent and constants."""
    module.kqueue = kqueue
    module.kevent = kevent
    for name, value in CONSTANTS.items():
        setattr(module, name, value)
