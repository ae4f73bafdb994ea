"""``lowlevel.start_thread_soon``: run blocking work on reusable daemon worker threads.

Design notes
------------
One cache per process (all runs share it). Each worker blocks on its own lock, which
the dispatcher releases after handing it a job; the lock starts out held, so "released"
means "a job is waiting for you".

* Idle workers sit in a dict used as a LIFO stack (``popitem`` takes the most recently
  idled one, and dict operations are atomic under the GIL, so any thread may dispatch).
  LIFO keeps a few hot threads busy and lets the rest reach IDLE_TIMEOUT and exit.
* A worker marks itself idle *before* calling ``deliver``, so a job that ``deliver``
  triggers can reuse the same thread instead of spawning a new one.
* A worker drops its references to the job (``fn`` and everything ``fn`` closes over,
  such as a copied ``contextvars.Context``) before ``deliver`` runs: once the result is
  delivered, the submitter may assume the job's objects are collectable.
* Idle exit races with dispatch: a worker whose lock wait timed out removes itself from
  the idle dict; if it is no longer there, a dispatcher has just picked it and is about
  to release its lock, so it goes back to waiting instead of exiting.
* Workers are named ``Trio thread N`` (the name trio gives its workers, which tools and
  trio's tests look for); a job may carry a name, shown by ``threading`` and, where
  ``pthread_setname_np`` exists, by the OS (``ps -eT``, ``/proc/<pid>/task/*/comm``)
  while the job runs. The OS name is set from inside the worker itself, the one case
  every platform supports.
* After ``fork()`` the child has none of the parent's workers, so the idle set is
  cleared there.

``IDLE_TIMEOUT`` and ``Lock`` are read at use time so tests may replace them.
"""

from __future__ import annotations

import os
import sys
import traceback
from contextvars import Context
from itertools import count
from threading import Lock, Thread, get_ident
from typing import TYPE_CHECKING, Any

import outcome

if TYPE_CHECKING:
    from collections.abc import Callable

# Seconds an idle worker waits for a new job before it exits.
IDLE_TIMEOUT = 10.0

_worker_numbers = count()


# -- OS-level thread names -------------------------------------------------------------

_UNSET: Any = object()
_os_namer: Any = _UNSET


def _load_os_namer() -> Callable[[str], None] | None:
    """Return a function that names the *calling* thread at the OS level, or None."""
    try:
        import ctypes
        import ctypes.util

        try:
            # The symbols already loaded into the process: libc (which holds pthreads on
            # glibc >= 2.34, musl and macOS) or the libpthread Python links against.
            setname = ctypes.CDLL(None).pthread_setname_np
        except AttributeError:
            # find_library may run ldconfig, so it is only the fallback.
            path = ctypes.util.find_library("pthread") or "libc.so"
            setname = ctypes.CDLL(path).pthread_setname_np
    except Exception:
        # No pthreads (Windows), a libc without pthread_setname_np, or a sandbox that
        # forbids loading it: threads keep their Python-level names only.
        return None
    setname.restype = ctypes.c_int
    if sys.platform == "darwin":
        # macOS only lets a thread name itself, and takes no thread argument.
        setname.argtypes = [ctypes.c_char_p]

        def name_self(name: str) -> None:
            setname(_os_name(name))

    else:
        setname.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

        def name_self(name: str) -> None:
            # threading.get_ident() is pthread_self() on POSIX.
            setname(get_ident(), _os_name(name))

    return name_self


def _os_name(name: str) -> bytes:
    # Linux limits names to 16 bytes including the NUL (longer ones fail with ERANGE).
    return name.encode("ascii", errors="replace")[:15]


def _set_os_thread_name(name: str) -> None:
    global _os_namer
    if _os_namer is _UNSET:
        _os_namer = _load_os_namer()
    if _os_namer is not None:
        _os_namer(name)


# -- the cache -------------------------------------------------------------------------

_Job = tuple["Callable[[], Any]", "Callable[[outcome.Outcome[Any]], object]", "str | None"]


class _Worker:
    __slots__ = ("_cache", "_default_name", "_job", "_lock", "_thread")

    def __init__(self, cache: ThreadCache) -> None:
        self._cache = cache
        self._job: _Job | None = None
        self._lock = Lock()
        self._lock.acquire()
        self._default_name = f"Trio thread {next(_worker_numbers)}"
        if sys.version_info >= (3, 14):
            # A fresh, empty context: the worker must not keep the spawning task's
            # context (and everything in it) alive for as long as it idles.
            self._thread = Thread(
                target=self._work, name=self._default_name, daemon=True, context=Context()
            )
        else:
            self._thread = Thread(target=self._work, name=self._default_name, daemon=True)
        self._thread.start()

    def _run_job(self) -> None:
        job = self._job
        self._job = None
        assert job is not None
        fn, deliver, name = job
        del job
        if name is not None:
            self._thread.name = name
            _set_os_thread_name(name)
        result = outcome.capture(fn)
        del fn
        if name is not None:
            self._thread.name = self._default_name
            _set_os_thread_name(self._default_name)
        self._cache._idle[self] = None
        try:
            deliver(result)
        except BaseException as exc:
            print("Exception while delivering result of thread", file=sys.stderr)
            traceback.print_exception(type(exc), exc, exc.__traceback__)

    def _work(self) -> None:
        _set_os_thread_name(self._default_name)
        while True:
            if self._lock.acquire(timeout=IDLE_TIMEOUT):
                self._run_job()
            else:
                try:
                    del self._cache._idle[self]
                except KeyError:
                    # Picked for a job at the last moment: its lock release is coming.
                    continue
                return


class ThreadCache:
    __slots__ = ("_idle",)

    def __init__(self) -> None:
        # Insertion-ordered dict as a LIFO stack with O(1) removal of any worker.
        self._idle: dict[_Worker, None] = {}

    def start_thread_soon(
        self,
        fn: Callable[[], Any],
        deliver: Callable[[outcome.Outcome[Any]], object],
        name: str | None = None,
    ) -> None:
        try:
            worker, _ = self._idle.popitem()
        except KeyError:
            worker = _Worker(self)
        worker._job = (fn, deliver, name)
        worker._lock.release()


THREAD_CACHE = ThreadCache()


def start_thread_soon(
    fn: Callable[[], Any],
    deliver: Callable[[outcome.Outcome[Any]], object],
    name: str | None = None,
) -> None:
    """Run ``deliver(outcome.capture(fn))`` on a worker thread, reusing an idle one
    when there is one.

    ``fn`` may block; ``deliver`` must not, and runs on the same worker right after
    ``fn``. Workers are daemon threads: they do not keep the process alive, so wait for
    ``deliver`` if the work must finish. Because workers are reused, neither callable
    should leave thread-level state (``threading.local`` values) changed. ``name``, if
    given, names the thread (for ``threading`` and, where supported, the OS) while
    ``fn`` runs. Safe to call from any thread.
    """
    if not callable(fn) or not callable(deliver):
        raise TypeError("start_thread_soon(fn, deliver) needs two callables")
    THREAD_CACHE.start_thread_soon(fn, deliver, name)


def _clear_after_fork() -> None:
    # The child has none of the parent's worker threads.
    THREAD_CACHE._idle.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_clear_after_fork)
