"""Shared helpers and fixtures of ``test_kqueue_compiled``: building the compiled
kqueue poller outside setup.py (cythonized once per session into a temporary
directory, compiled by the system compiler, against ``tests/kqueue_shim`` on Linux and
linked with its kqueue emulation), the emulated kernel's test functions (through
ctypes), harnesses over either twin, and a KqueueIOManager over either twin.

The test module imports the fixtures by name so pytest finds them.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pathlib
import select
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import _fake_kqueue as fk
import vivace
from _io_epoll_support import Harness
from vivace import lowlevel
from vivace._core import _impl, _kqueue_py
from vivace.testing import wait_all_tasks_blocked

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYX = ROOT / "src" / "vivace" / "_core" / "_ext" / "_kqueue.pyx"
SHIM = ROOT / "tests" / "kqueue_shim"
CSRC = ROOT / "csrc"
MODULE = "vivace._core._ext._kqueue"
LINUX = sys.platform.startswith("linux")
# Where <sys/event.h> is the system's (setup.py builds the module there).
NATIVE = sys.platform.startswith(("darwin", "freebsd", "openbsd", "netbsd", "dragonfly"))

# A hang guard below pytest-timeout's 60 s, so that a hang shows the compiler's output.
COMPILE_TIMEOUT = 45
# Warnings that mean the module disagrees with <sys/event.h> (a field's or a call's
# type, a missing declaration): errors, whatever else the compiler (or a newer Cython's
# C) says.
FATAL_WARNINGS = [
    "-Werror=implicit-function-declaration",
    "-Werror=incompatible-pointer-types",
    "-Werror=int-conversion",
    "-Werror=pointer-sign",
    "-Werror=discarded-qualifiers",
    "-Werror=overflow",
    "-Werror=int-to-pointer-cast",
    "-Werror=pointer-to-int-cast",
    "-Werror=return-type",
    "-Werror=uninitialized",
]
READ, WRITE = fk.KQ_FILTER_READ, fk.KQ_FILTER_WRITE


# ------------------------------------------------------------------ building the module


def compiler() -> list[str] | None:
    """The C compiler Python was built with (what setuptools uses), else cc."""
    argv = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if argv and shutil.which(argv[0]):
        return argv
    found = shutil.which("cc")
    return [found] if found else None


def cythonize(out_dir: pathlib.Path) -> pathlib.Path:
    """_kqueue.pyx as C in *out_dir*, with setup.py's directives."""
    pytest.importorskip("Cython", reason="needs Cython (the test extra has it)")
    from Cython.Compiler import Main

    c_file = out_dir / "_kqueue.c"
    options = Main.CompilationOptions(
        Main.default_options,
        language_level=3,
        include_path=[str(ROOT / "src"), str(CSRC)],
        output_file=str(c_file),
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
    result = Main.compile_single(str(PYX), options, full_module_name=MODULE)
    assert result.num_errors == 0, f"Cython reported errors in {PYX}"
    return c_file


def cc(args: list[str]) -> str:
    """Run the compiler with *args*; its diagnostics (AssertionError with them if it
    failed)."""
    cc = compiler()
    if cc is None:
        pytest.skip("needs a C compiler")
    includes = [f"-I{SHIM}"] if LINUX else []
    includes += [f"-I{CSRC}", f"-I{sysconfig.get_paths()['include']}"]
    flags = [
        "-fPIC",
        "-O0",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-Wno-unused-function",
        "-Wno-missing-field-initializers",
        *FATAL_WARNINGS,
    ]
    argv = [*cc, *flags, *includes, *args]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=COMPILE_TIMEOUT, check=False
    )
    diagnostics = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{shlex.join(argv)}\n{diagnostics}"
    return diagnostics


@pytest.fixture(scope="session", name="kqueue_c")
def kqueue_c_fixture(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The module's generated C, cythonized once per session."""
    return cythonize(tmp_path_factory.mktemp("kqueue_c"))


def header_warnings(diagnostics: str) -> list[str]:
    # Any warning about the kevent declarations, fatal or not.
    return [
        line
        for line in diagnostics.splitlines()
        if "warning" in line and ("event.h" in line or "vv_kqueue.h" in line or "kevent" in line)
    ]


@pytest.fixture(scope="session", name="compiled_module")
def compiled_module_fixture(
    kqueue_c: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """The compiled module: on Linux built here over the emulation, elsewhere the one
    setup.py built. Needs the compiled engine's other modules (its base class)."""
    try:
        import vivace._core._ext._io_readiness  # noqa: F401
    except ImportError:
        if _impl.ENGINE == "compiled":  # pragma: no cover
            raise
        pytest.skip("the compiled engine is not built")
    if NATIVE:
        from vivace._core._ext import _kqueue  # type: ignore[attr-defined]

        return _kqueue
    out = tmp_path_factory.mktemp("kqueue_so") / f"_kqueue{sysconfig.get_config_var('EXT_SUFFIX')}"
    cc(["-shared", str(kqueue_c), str(SHIM / "kqueue_emulation.c"), "-o", str(out)])
    spec = importlib.util.spec_from_file_location(MODULE, out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not put in sys.modules: the engine never sees it
    return module


@pytest.fixture(name="compiled_class")
def compiled_class_fixture(compiled_module: Any) -> Any:
    return compiled_module.KqueuePoller


@pytest.fixture(autouse=True)
def fake_select(monkeypatch: pytest.MonkeyPatch) -> None:
    """``select`` with the emulation where it has no kqueue (for the reference twin,
    and for the ``select.kevent`` objects that the compiled one hands to routes)."""
    if not hasattr(select, "kqueue"):
        monkeypatch.setattr(select, "kqueue", fk.kqueue, raising=False)
        monkeypatch.setattr(select, "kevent", fk.kevent, raising=False)
        for name, value in fk.CONSTANTS.items():
            monkeypatch.setattr(select, name, value, raising=False)


# -------------------------------------------------------------------- harnesses


def closed_fd() -> int:
    s = socket.socket()
    fd = s.fileno()
    s.close()
    return fd


class ReadGuard:
    """The reference's fake kqueue, counting event reads: a wait that keeps reading
    fails the test instead of hanging it."""

    LIMIT = 1000  # far more reads than any test here makes

    def __init__(self, kq: Any) -> None:
        self._kq = kq
        self.reads = 0

    def control(self, changes: Any, maxevents: int, timeout: float | None = None) -> Any:
        if not changes and maxevents:
            self.reads += 1
            assert self.reads <= self.LIMIT, "kevent(2) read again and again: a re-read loop"
        return self._kq.control(changes, maxevents, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kq, name)


def guarded_harness(cls: Any) -> Harness:
    harness = Harness(cls)
    if isinstance(getattr(harness.poller, "_kq", None), fk.kqueue):
        harness.poller._kq = ReadGuard(harness.poller._kq)
    return harness


def batch_size(batch: Any) -> int:
    # The reference's batch is its list of kevents, the compiled one's their count.
    return len(batch) if isinstance(batch, list) else int(batch)


@pytest.fixture(name="h", params=["reference", "compiled"])
def h_fixture(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "reference":
        cls = _kqueue_py.KqueuePoller
    else:
        cls = request.getfixturevalue("compiled_class")
    harness = guarded_harness(cls)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(name="emulation")
def emulation_fixture(compiled_module: Any) -> Any:
    """The emulated kernel's test functions (Linux only)."""
    if not LINUX:
        pytest.skip("the emulated kernel is Linux's stand-in for kqueue")
    return ctypes.CDLL(compiled_module.__file__, use_errno=True)


@pytest.fixture(name="ch")
def compiled_harness_fixture(compiled_class: Any) -> Iterator[Harness]:
    harness = Harness(compiled_class)
    try:
        yield harness
    finally:
        harness.close()


class EmulatedKevent(ctypes.Structure):
    # tests/kqueue_shim/sys/event.h's struct kevent (macOS's layout).
    _fields_ = [
        ("ident", ctypes.c_size_t),
        ("filter", ctypes.c_int16),
        ("flags", ctypes.c_uint16),
        ("fflags", ctypes.c_uint32),
        ("data", ctypes.c_ssize_t),
        ("udata", ctypes.c_void_p),
    ]


def adopting_kqueue(emulation: Any) -> type:
    """A stand-in for ``select.kqueue`` with what the compiled twin uses of it on a
    real system: ``fromfd`` (the object then owns the fd) and ``control``, here
    kevent(2) of the emulated kernel. ``select.kqueue()`` itself still makes the
    emulation's kqueue (the run's own manager may be on the kqueue backend)."""
    fresh = select.kqueue  # type: ignore[attr-defined]

    class Adopted:
        def __new__(cls, *args: Any) -> Any:
            return fresh() if not args else super().__new__(cls)

        def __init__(self, fd: int) -> None:
            self.fd = fd
            self.closed = False

        @classmethod
        def fromfd(cls, fd: int) -> Adopted:
            return cls(fd)

        def fileno(self) -> int:
            return self.fd

        def close(self) -> None:
            if not self.closed:
                self.closed = True
                os.close(self.fd)

        def control(self, changes: Any, maxevents: int, timeout: float | None = None) -> list[Any]:
            changes = list(changes or ())
            changelist = (EmulatedKevent * max(1, len(changes)))()
            for slot, ch in zip(changelist, changes, strict=False):
                slot.ident, slot.filter, slot.flags = ch.ident, ch.filter, ch.flags
            events = (EmulatedKevent * max(1, maxevents))()
            ts = None
            if timeout is not None:
                ts = (ctypes.c_long * 2)(int(timeout), int((timeout % 1) * 1e9))
            n = emulation.vv_emu_kevent(self.fd, changelist, len(changes), events, maxevents, ts)
            if n < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            return [
                select.kevent(ev.ident, ev.filter, ev.flags, ev.fflags, ev.data)  # type: ignore[attr-defined]
                for ev in events[:n]
            ]

    return Adopted


@pytest.fixture(name="adopting")
def adopting_fixture(emulation: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """select.kqueue.fromfd over the emulated kernel (Linux)."""
    monkeypatch.setattr(select, "kqueue", adopting_kqueue(emulation), raising=False)


# ------------------------------------------------------------------ the manager


def manager_class(poller_class: Any) -> Any:
    from vivace._core import _sockio_py
    from vivace._core._io_kqueue import KqueueIOManager

    class Manager(KqueueIOManager):
        # The reference fd wait drives any poller (the compiled engine's own is
        # epoll's on Linux).
        __slots__ = ()
        _poller_class = poller_class
        _wait_fd = staticmethod(_sockio_py.wait_fd)

    return Manager


@pytest.fixture(name="manager_class", params=["reference", "compiled"])
def manager_class_fixture(request: pytest.FixtureRequest) -> Any:
    if request.param == "reference":
        return manager_class(_kqueue_py.KqueuePoller)
    if LINUX:
        request.getfixturevalue("adopting")
    return manager_class(request.getfixturevalue("compiled_class"))


def run(manager_class: Any, body: Callable[[Any], Any]) -> Any:
    async def main() -> Any:
        # No injected reschedule: the poller wakes each task through its own runner
        # (in C for the compiled twin on the compiled engine).
        mgr = manager_class(_current_task=lowlevel.current_task)
        try:
            return await body(mgr)
        finally:
            mgr.close()

    return vivace.run(main)


async def pump(mgr: Any) -> None:
    mgr.process_events(mgr.get_events(0))
    await wait_all_tasks_blocked()
