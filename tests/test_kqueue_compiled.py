"""The compiled kqueue poller (``_ext/_kqueue.pyx``), checked where there is no kqueue.

setup.py builds the module only on macOS and the BSDs. Here it is built by the tests,
once per session, into a temporary directory (never the in-place build): cythonized,
then compiled by the system compiler against ``tests/kqueue_shim/sys/event.h`` (the
documented declarations of kevent(2), in macOS's struct layout and in FreeBSD's), which
must give no error and none of the warnings that mean a type disagrees with the header.
Linked with ``tests/kqueue_shim/kqueue_emulation.c`` (kqueue over epoll), the module
is then imported and driven like the reference twin, ``_kqueue_py.KqueuePoller`` over
``tests/_fake_kqueue.py``: the same scenarios, compared step by step (woken tasks and
errors, wake-up flags, counters, kevent(2) change calls). On macOS and the BSDs the
same tests run on the real header, the module setup.py built and the real kqueue.
"""

from __future__ import annotations

import errno
import importlib.util
import math
import os
import pathlib
import select
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from typing import Any

import outcome
import pytest

import _fake_kqueue as fk
from _io_epoll_support import THREAD_TIMEOUT, Harness, drain, fill
from vivace._core import _impl, _kqueue_py

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

pytestmark = pytest.mark.skipif(
    not (LINUX or NATIVE), reason="kqueue's twins are checked on Linux, macOS and the BSDs"
)


# ------------------------------------------------------------------ building the module


def _compiler() -> list[str] | None:
    """The C compiler Python was built with (what setuptools uses), else cc."""
    argv = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if argv and shutil.which(argv[0]):
        return argv
    found = shutil.which("cc")
    return [found] if found else None


def _cythonize(out_dir: pathlib.Path) -> pathlib.Path:
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


def _cc(args: list[str]) -> str:
    """Run the compiler with *args*; its diagnostics (AssertionError with them if it
    failed)."""
    cc = _compiler()
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


@pytest.fixture(scope="session")
def kqueue_c(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The module's generated C, cythonized once per session."""
    return _cythonize(tmp_path_factory.mktemp("kqueue_c"))


def _header_warnings(diagnostics: str) -> list[str]:
    # Any warning about the kevent declarations, fatal or not.
    return [
        line
        for line in diagnostics.splitlines()
        if "warning" in line and ("event.h" in line or "vv_kqueue.h" in line or "kevent" in line)
    ]


@pytest.fixture(scope="session")
def compiled_module(kqueue_c: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
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
    _cc(["-shared", str(kqueue_c), str(SHIM / "kqueue_emulation.c"), "-o", str(out)])
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


# ------------------------------------------------------------------------- compiling


def test_compiles_against_the_documented_header(
    kqueue_c: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    diagnostics = _cc(["-c", str(kqueue_c), "-o", str(tmp_path / "kqueue.o")])
    assert _header_warnings(diagnostics) == []
    assert (tmp_path / "kqueue.o").stat().st_size > 0


@pytest.mark.skipif(not LINUX, reason="the shim's FreeBSD layout stands in for the real one")
def test_compiles_against_freebsds_struct_layout(
    kqueue_c: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # FreeBSD's struct kevent is bigger (ext[4]) and its data 64-bit: the module must
    # rely on neither.
    diagnostics = _cc(["-DVV_SHIM_FREEBSD", "-c", str(kqueue_c), "-o", str(tmp_path / "kqueue.o")])
    assert _header_warnings(diagnostics) == []


def test_setup_py_builds_the_module_only_where_kqueue_is() -> None:
    spec = importlib.util.spec_from_file_location("_vivace_setup_py_kq", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)
    assert setup_py._builds_here("_kqueue") is NATIVE
    names = {ext.name for ext in setup_py._extensions()}
    assert (MODULE in names) is NATIVE


def test_compiled_module_has_the_reference_exports(compiled_module: Any) -> None:
    assert compiled_module.__all__ == _kqueue_py.__all__
    cls = compiled_module.KqueuePoller
    with pytest.raises(TypeError, match="not an acceptable base type"):
        type("Sub", (cls,), {})


# ------------------------------------------------------------------ the twins compared


def _closed_fd() -> int:
    s = socket.socket()
    fd = s.fileno()
    s.close()
    return fd


class _ReadGuard:
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


def _harness(cls: Any) -> Harness:
    harness = Harness(cls)
    if isinstance(getattr(harness.poller, "_kq", None), fk.kqueue):
        harness.poller._kq = _ReadGuard(harness.poller._kq)
    return harness


def _count(batch: Any) -> int:
    # The reference's batch is its list of kevents, the compiled one's their count.
    return len(batch) if isinstance(batch, list) else int(batch)


def _script(cls: Any) -> list[object]:
    """Drive a twin through a fixed scenario; return everything observable. The order
    in which a kqueue reports different keys is the kernel's (here two different
    emulations), so each step's woken tasks are compared as sorted lists."""
    trace: list[object] = []
    harness = _harness(cls)
    p = harness.poller
    routed: list[tuple[int, int]] = []

    def note(label: str, value: object = None) -> None:
        counters = (p.tasks_waiting_read, p.tasks_waiting_write, p.ctl_calls)
        trace.append((label, value, *counters, p.registered_fds, p.rebuilds, p.routes))

    def step(label: str, timeout: float = 0) -> None:
        batch = p.wait(timeout)
        count = _count(batch)
        woke = p.dispatch(batch)
        if woke:
            harness.wakeup.drain()
        calls = harness.resched.calls
        tasks = sorted(str(task) for task, _ in calls)
        errors = sorted(
            (type(r.error).__name__, str(r.error)) for _, r in calls if isinstance(r, outcome.Error)
        )
        calls.clear()
        note(label, (count, tasks, woke, errors, sorted(routed)))
        routed.clear()

    def attempt(label: str, fn: Callable[[], object]) -> None:
        try:
            note(label, fn())
        except Exception as exc:  # noqa: BLE001  (the trace records it)
            note(label, (type(exc).__name__, str(exc)))

    def route(ev: Any) -> None:
        routed.append((ev.ident, ev.filter))

    socks = [s for _ in range(4) for s in socket.socketpair()]
    a, b, c, d, e, f, g, k = socks
    for s in socks:
        s.setblocking(False)
    try:
        note("new")
        attempt("add r a", lambda: p.add_reader(a.fileno(), a, "Ra"))
        attempt("busy r a", lambda: p.add_reader(a.fileno(), a, "Rx"))
        fill(a)
        attempt("add w a", lambda: p.add_writer(a.fileno(), None, "Wa"))
        step("idle")
        b.send(b"1")
        step("a readable")
        attempt("re-add r a", lambda: p.add_reader(a.fileno(), a, "Ra"))
        drain(b)
        step("a readable and writable")
        a.recv(10)
        step("nothing")
        attempt("re-add w a, no owner", lambda: p.add_writer(a.fileno(), None, "Wa"))
        attempt("remove w a", lambda: p.remove_writer(a.fileno(), "Wa"))
        step("a writable, unwanted")
        step("a quiet")
        attempt("add w c", lambda: p.add_writer(c.fileno(), c, "Wc"))
        step("c writable")
        step("c writable, unwanted")
        harness.wakeup.wakeup_thread_and_signal_safe()
        step("wakeup")
        attempt("add r c", lambda: p.add_reader(c.fileno(), c, "Rc"))
        attempt("forget c", lambda: p.forget(c.fileno()))
        attempt("forget c again", lambda: p.forget(c.fileno()))
        dead = _closed_fd()
        attempt("add r dead", lambda: p.add_reader(dead, None, "Rd"))
        attempt("add w dead", lambda: p.add_writer(dead, None, "Wd"))
        attempt("add w -1", lambda: p.add_writer(-1, None, "Wd"))
        d.close()
        attempt("add r c, peer gone", lambda: p.add_reader(c.fileno(), None, "Rc"))
        step("c at eof")
        step("c at eof, unwanted")
        fill(e)
        efd = e.fileno()
        attempt("add r e", lambda: p.add_reader(efd, e, "Re"))
        attempt("add w e", lambda: p.add_writer(efd, e, "We"))
        e.close()  # kqueue drops the registrations silently: nobody is woken
        step("e closed behind our back")
        attempt("forget e", lambda: p.forget(efd))  # deleting what is gone is fine
        # Routes: a waiter's key is taken; an armed key without a waiter is handed over.
        attempt("add r g", lambda: p.add_reader(g.fileno(), g, "Rg"))
        attempt("route g r, taken", lambda: p.add_route(g.fileno(), READ, route))
        attempt("remove r g", lambda: p.remove_reader(g.fileno(), "Rg"))
        attempt("route g r", lambda: p.add_route(g.fileno(), READ, route))
        attempt("route g r again", lambda: p.add_route(g.fileno(), READ, route))
        attempt("add r g, routed", lambda: p.add_reader(g.fileno(), g, "Rg"))
        attempt("add w g", lambda: p.add_writer(g.fileno(), g, "Wg"))
        k.send(b"k")
        step("g routed readable and writable")
        attempt("unroute g r", lambda: p.remove_route(g.fileno(), READ))
        attempt("unroute g r again", lambda: p.remove_route(g.fileno(), READ))
        attempt("route other filter", lambda: p.add_route(12345, -7, route))
        step("g unrouted")
        attempt("add r g after route", lambda: p.add_reader(g.fileno(), g, "Rg"))
        step("g readable")
        attempt("wait nan", lambda: p.wait(float("nan")))
        attempt("fileno open", lambda: p.fileno() >= 0)
        p.close()
        attempt("add after close", lambda: p.add_reader(a.fileno(), a, "R"))
        attempt("wait after close", lambda: p.wait(0))
        attempt("dispatch after close", lambda: p.dispatch([]))
        attempt("fileno after close", p.fileno)
        attempt("close again", p.close)
    finally:
        harness.close()
        for s in socks:
            s.close()
    return trace


def test_reference_script_trace() -> None:
    entries: list[Any] = _script(_kqueue_py.KqueuePoller)
    trace = {entry[0]: list(entry[1:]) for entry in entries}
    # label -> [value, waiting read, waiting write, ctl_calls, fds, rebuilds, routes]
    assert trace["new"][1:4] == [0, 0, 1]
    assert trace["add w a"][3] == 3  # one kevent(2) call for both directions
    assert trace["a readable"][0] == (1, ["Ra"], False, [], [])
    assert trace["add r dead"][0] == ("OSError", "[Errno 9] Bad file descriptor")
    assert trace["e closed behind our back"][0] == (0, [], False, [], [])
    assert trace["forget e"][0] == ("Re", "We")
    assert trace["route g r"][0] is False
    assert trace["add r g, routed"][0] is True
    _, woken, _, _, routed = trace["g routed readable and writable"][0]
    assert woken == ["Wg"] and [filt for _, filt in routed] == [READ]
    assert trace["wait after close"][0] == ("RuntimeError", "the kqueue poller is closed")
    assert all(rest[-2] == 0 for rest in trace.values())  # never a rebuild


def test_twins_behave_identically(compiled_class: Any) -> None:
    compiled = _script(compiled_class)
    reference = _script(_kqueue_py.KqueuePoller)
    for got, want in zip(compiled, reference, strict=True):
        assert got == want


# ---------------------------------------------------------------- both twins, directly


@pytest.fixture(name="h", params=["reference", "compiled"])
def h_fixture(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "reference":
        cls = _kqueue_py.KqueuePoller
    else:
        cls = request.getfixturevalue("compiled_class")
    harness = _harness(cls)
    try:
        yield harness
    finally:
        harness.close()


@pytest.mark.parametrize("timeout", [0, -1.0, -math.inf, 1e-9])
def test_wait_with_a_short_timeout_returns_nothing(h: Harness, timeout: float) -> None:
    assert not h.poller.wait(timeout)


@pytest.mark.parametrize("timeout", [math.inf, 1e300, 2**31, 2147483.647, 0.5])
def test_wait_with_a_long_timeout_returns_when_woken(h: Harness, timeout: float) -> None:
    # Clamped (or no limit), never an OverflowError.
    h.wakeup.wakeup_thread_and_signal_safe()
    assert h.poller.dispatch(h.poller.wait(timeout)) is True


def test_wait_rejects_nan_and_a_closed_poller(h: Harness) -> None:
    with pytest.raises(ValueError, match="^timeout must not be NaN$"):
        h.poller.wait(math.nan)
    h.poller.close()
    with pytest.raises(RuntimeError, match="^the kqueue poller is closed$"):
        h.poller.wait(0)


def test_wait_from_a_second_thread_is_refused(h: Harness) -> None:
    results: list[object] = []
    entered = threading.Event()

    def blocked() -> None:
        entered.set()
        while True:
            try:
                results.append(h.poller.wait(math.inf))
            except RuntimeError:
                continue  # the main thread's wait(0) below was in the poller: retry
            return

    thread = threading.Thread(target=blocked)
    thread.start()
    entered.wait(THREAD_TIMEOUT)
    # Either the thread is in kevent(2) (refused), or it has not got there yet: retry
    # until the refusal is seen, then wake it; no fixed delay.
    refused = None
    while refused is None and thread.is_alive():
        try:
            events = h.poller.wait(0)
        except RuntimeError as exc:
            refused = exc
        else:
            h.poller.dispatch(events)
            threading.Event().wait(0.001)
    h.wakeup.wakeup_thread_and_signal_safe()
    thread.join(THREAD_TIMEOUT)
    assert not thread.is_alive()
    assert str(refused) == "another thread is already waiting in this poller"
    assert results and h.poller.dispatch(results[0]) is True


def test_regular_files_are_always_ready(h: Harness, tmp_path: pathlib.Path) -> None:
    with open(tmp_path / "f", "wb") as f:
        assert h.poller.add_writer(f.fileno(), None, "W") is False
        assert h.poll() == (["W"], False)
        assert h.poller.forget(f.fileno()) == (None, None)


def test_a_dispatch_takes_the_batch_of_the_last_wait(h: Harness) -> None:
    h.wakeup.wakeup_thread_and_signal_safe()
    batch = h.poller.wait(0)
    assert _count(batch) == 1
    assert h.poller.dispatch(batch) is True
    assert h.poller.dispatch([]) is False
    assert h.poller.dispatch(0) is False


# ----------------------------------------------------------- the compiled twin's own


@pytest.fixture(name="emulation")
def emulation_fixture(compiled_module: Any) -> Any:
    """The emulated kernel's test functions (Linux only)."""
    if not LINUX:
        pytest.skip("the emulated kernel is Linux's stand-in for kqueue")
    import ctypes

    return ctypes.CDLL(compiled_module.__file__)


@pytest.fixture(name="ch")
def compiled_harness_fixture(compiled_class: Any) -> Iterator[Harness]:
    harness = Harness(compiled_class)
    try:
        yield harness
    finally:
        harness.close()


def test_compiled_ctl_calls_are_kevent_calls_with_changes(ch: Harness, emulation: Any) -> None:
    a, b = socket.socketpair()
    with a, b:
        calls = emulation.vv_emu_count(0) - ch.poller.ctl_calls
        ch.poller.add_reader(a.fileno(), None, "R")
        ch.poller.add_writer(a.fileno(), None, "W")
        assert emulation.vv_emu_filters(ch.poller.fileno(), a.fileno()) == 3
        assert ch.poll() == (["W"], False)
        ch.poller.forget(a.fileno())
        assert emulation.vv_emu_filters(ch.poller.fileno(), a.fileno()) == 0
        assert emulation.vv_emu_count(0) - ch.poller.ctl_calls == calls


def test_compiled_half_failed_arm_is_undone(ch: Harness, emulation: Any) -> None:
    # As the reference's test over a fake that refuses EVFILT_WRITE.
    a, b = socket.socketpair()
    with a, b:
        fd = a.fileno()
        ch.poller.add_reader(fd, None, "R")
        base = ch.poller.ctl_calls
        emulation.vv_emu_refuse(fd, WRITE, errno.EINVAL)
        with pytest.raises(OSError, match=r"^\[Errno 22\] Invalid argument$"):
            ch.poller.add_writer(fd, None, "W")
        # One call adding both, one deleting the read that took: the kernel holds
        # nothing, the record is gone and its reader woken with the error.
        assert ch.poller.ctl_calls == base + 2
        assert emulation.vv_emu_filters(ch.poller.fileno(), fd) == 0
        calls = ch.resched.calls
        assert [task for task, _ in calls] == ["R"]
        assert isinstance(calls[0][1], outcome.Error)
        assert (ch.poller.registered_fds, ch.poller.tasks_waiting_read) == (0, 0)


def test_compiled_reads_a_full_batch_once(ch: Harness, emulation: Any) -> None:
    # Every registration ready at once fills the room (2 per record + the wakeup fd):
    # level-triggered, a second read would return the same events again.
    a, b = socket.socketpair()
    with a, b:
        ch.poller.add_reader(a.fileno(), None, "R")
        ch.poller.add_writer(a.fileno(), None, "W")
        b.send(b"x")
        ch.wakeup.wakeup_thread_and_signal_safe()
        reads = emulation.vv_emu_count(1)
        batch = ch.poller.wait(0)
        assert emulation.vv_emu_count(1) == reads + 1
        assert batch == 3
        assert ch.poller.dispatch(batch) is True


def test_compiled_current_kqueue_adopts_the_fd(
    ch: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    if LINUX:

        class Adopted:
            """select.kqueue.fromfd's contract: the object owns the fd."""

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

        monkeypatch.setattr(select, "kqueue", Adopted, raising=False)
    fd = ch.poller.fileno()
    kq = ch.poller.current_kqueue()
    assert kq.fileno() == fd
    assert ch.poller.current_kqueue() is kq
    ch.poller.close()
    assert kq.closed
    assert ch.poller.fileno() == -1
    with pytest.raises(OSError):
        os.fstat(fd)  # closed once, through the object


def test_compiled_poller_closes_its_kqueue(compiled_class: Any) -> None:
    harness = Harness(compiled_class)
    fd = harness.poller.fileno()
    assert fd >= 0
    assert os.get_inheritable(fd) is False
    harness.close()
    with pytest.raises(OSError):
        os.fstat(fd)
