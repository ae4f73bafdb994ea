"""Run third-party trio code, unchanged, in a child process on vivace (issue 10).

``vivace.install()`` is process-global and the test process may already hold the real
trio (the oracle tests and pytest-trio's plugin import it), so every ecosystem program runs
in a fresh interpreter. The child inherits this process's environment, and with it the
engine choice (``VIVACE_NO_EXTENSIONS`` / ``VIVACE_REQUIRE_EXTENSIONS``).

The programs live in ``tests/ecosystem`` (``prog_*.py``: never collected by pytest). Each
ends its run with ``ecocheck.ran_on_vivace()``, which prints ``MARK <engine>``;
``run_program`` requires that line with this process's engine, so a program that fell
back to the real trio, or ran on the other engine, fails its test.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Sequence

import pytest

from vivace._core import _impl

ECOSYSTEM_DIR = pathlib.Path(__file__).resolve().parent / "ecosystem"


def _proof_mark() -> str:
    # The children's own module, loaded by path: the test process's sys.path stays as is.
    spec = importlib.util.spec_from_file_location("_ecocheck", ECOSYSTEM_DIR / "ecocheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.MARK)


MARK = _proof_mark()

# A hang guard, not a timing assertion: every program takes a few seconds at most even on
# a loaded machine. Below pytest-timeout's 60 s so that a hang reports the child's output.
HANG_GUARD = 50.0


def child_env() -> dict[str, str]:
    """This process's environment (so the engine choice), with the programs' directory on
    the path so that ``-m module`` forms and inner pytest sessions find ``ecocheck``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ECOSYSTEM_DIR), env.get("PYTHONPATH", "")) if p
    )
    # A child's warnings are errors too, as in this suite.
    env["PYTHONWARNINGS"] = "error"
    return env


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"\n--- command: {proc.args}\n--- exit status: {proc.returncode}"
        f"\n--- stdout:\n{proc.stdout}\n--- stderr:\n{proc.stderr}"
    )


def assert_ran_on_vivace(stdout: str, report: str, *, runs: int = 1) -> None:
    """The child printed the proof, on this process's engine, ``runs`` times. (Anywhere in
    a line: under ``pytest -s`` it follows the test file's name.)"""
    engines = re.findall(re.escape(MARK) + r" (\S+)", stdout)
    assert len(engines) == runs, f"expected {runs} proof(s) from the child{report}"
    assert set(engines) == {_impl.ENGINE}, (
        f"the child ran on another engine than {_impl.ENGINE!r}{report}"
    )


def run_child(argv: Sequence[str], *,
              timeout: float = HANG_GUARD) -> subprocess.CompletedProcess[str]:
    """Run ``python argv...``; returns whatever happened (no assertion)."""
    try:
        return subprocess.run(
            [sys.executable, *argv],
            cwd=ECOSYSTEM_DIR,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise AssertionError(
            f"hang guard: {argv} still running after {timeout} s\n--- stdout:\n{out}"
            f"\n--- stderr:\n{err}"
        ) from None


def run_program(program: str, *args: str, via: str = "python", runs: int = 1,
                timeout: float = HANG_GUARD) -> subprocess.CompletedProcess[str]:
    """Run ``tests/ecosystem/<program>`` and require a clean exit and the proof line.

    ``via``: ``"python"`` (the program calls ``vivace.install()`` itself), ``"cli"``
    (``python -m vivace run prog.py args``) or ``"cli-module"``
    (``python -m vivace run -m prog args``).
    """
    if via == "python":
        argv = [str(ECOSYSTEM_DIR / program), *args]
    elif via == "cli":
        argv = ["-m", "vivace", "run", str(ECOSYSTEM_DIR / program), *args]
    elif via == "cli-module":
        argv = ["-m", "vivace", "run", "-m", program.removesuffix(".py"), *args]
    else:
        raise ValueError(via)
    proc = run_child(argv, timeout=timeout)
    report = describe(proc)
    assert proc.returncode == 0, f"the program failed{report}"
    assert_ran_on_vivace(proc.stdout, report, runs=runs)
    return proc


def run_inner_pytest(pytester: pytest.Pytester, inner: str, *args: str, ini: str = "",
                     runs: int = 1) -> pytest.RunResult:
    """Run ``tests/ecosystem/<inner>`` as ``test_<name>.py`` in a pytest subprocess with
    vivace installed by its plugin, and require ecocheck's proof ``runs`` times (``-s`` lets
    the proof through pytest's capture)."""
    name = "test_" + inner.removeprefix("inner_").removesuffix(".py")
    pytester.makepyfile(**{name: (ECOSYSTEM_DIR / inner).read_text()})
    pytester.makeini("[pytest]\nfilterwarnings = error\n" + ini)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in child_env().items():
            if key in ("PYTHONPATH", "PYTHONWARNINGS"):
                mp.setenv(key, value)
        result = pytester.runpytest_subprocess(
            "-p", "vivace.install_plugin", "-p", "no:cacheprovider", "-s", "-v", *args,
            timeout=HANG_GUARD,
        )
    report = f"\n--- stdout:\n{result.stdout.str()}\n--- stderr:\n{result.stderr.str()}"
    assert_ran_on_vivace(result.stdout.str(), report, runs=runs)
    return result
