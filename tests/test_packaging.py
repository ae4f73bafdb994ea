"""Installing without a C compiler: setup.py's build falls back to the pure-Python
reference engine, and ``import vivace`` then says so with one RuntimeWarning.

The build side runs setup.py's build_ext on a toy package in tmp_path (two tiny Cython
modules, a couple of seconds), never on vivace's own extensions. The full round trip
(sdist installed with ``CC=/bin/false``, wheel installed with a compiler) is
scripts/check-package.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap
from types import ModuleType
from typing import Any

import pytest

from vivace._core import _impl

ROOT = pathlib.Path(__file__).resolve().parent.parent
SETUP_PY = ROOT / "setup.py"

# A hang guard below pytest-timeout's 60 s, so that a hang shows the child's output.
SUBPROCESS_TIMEOUT = 40

GOOD_PYX = "def answer():\n    return 42\n"
# Valid Cython whose generated C does not compile: a compile error mid-build.
BAD_PYX = 'cdef extern from *:\n    """\n    #error vivace-test-broken-module\n    """\n'


def _load_setup_py() -> ModuleType:
    """setup.py as a module: its setup() call runs only as __main__."""
    spec = importlib.util.spec_from_file_location("_vivace_setup_py", SETUP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _toy_build_ext(tmp_path: pathlib.Path, modules: dict[str, str], *, inplace: bool) -> Any:
    """setup.py's build_ext, finalized for a package ``toy`` holding *modules*
    (name -> pyx source), with cwd at tmp_path."""
    from setuptools import Distribution, Extension

    setup_py = _load_setup_py()
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "__init__.py").write_text("")
    for name, source in modules.items():
        (tmp_path / "toy" / f"{name}.pyx").write_text(source)
    dist = Distribution({
        "name": "toy",
        "packages": ["toy"],
        "ext_modules": [Extension(f"toy.{name}", [f"toy/{name}.pyx"]) for name in modules],
        "cmdclass": {"build_ext": setup_py.optional_build_ext},
        "script_name": "setup.py",
    })
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib = str(tmp_path / "build" / "lib")
    cmd.build_temp = str(tmp_path / "build" / "temp")
    cmd.inplace = inplace
    cmd.ensure_finalized()
    return cmd


@pytest.fixture
def toy_env(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.chdir(tmp_path)
    for name in ("VIVACE_REQUIRE_EXTENSIONS", "VIVACE_BUILD_PURE", "CC", "LDSHARED"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _built(root: pathlib.Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.suffix in (".so", ".pyd"))


def test_a_build_with_a_working_compiler_builds_every_module(
    toy_env: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmd = _toy_build_ext(toy_env, {"_one": GOOD_PYX, "_two": GOOD_PYX}, inplace=False)
    cmd.run()
    assert [os.path.basename(p) for p in cmd.get_outputs()] == [
        os.path.basename(cmd.get_ext_filename(name)) for name in ("toy._one", "toy._two")
    ]
    assert all(os.path.exists(p) for p in cmd.get_outputs())
    assert "pure-Python" not in capsys.readouterr().err


def test_no_compiler_builds_nothing_and_says_why(
    toy_env: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CC", "/bin/false")
    cmd = _toy_build_ext(toy_env, {"_one": GOOD_PYX}, inplace=False)
    cmd.run()  # no exception: the install goes on, pure Python
    assert cmd.get_outputs() == []
    assert _built(toy_env) == []
    err = capsys.readouterr().err
    assert "vivace: building the compiled engine failed (no working C compiler: " in err
    assert "CompileError: Command '['/bin/false'" in err
    assert "installing the pure-Python reference engine only" in err
    # The compiler was tried before Cython ran: no C was generated for nothing.
    assert not (toy_env / "toy" / "_one.c").exists()


def test_a_module_that_fails_to_compile_drops_the_whole_engine(
    toy_env: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmd = _toy_build_ext(toy_env, {"_a_good": GOOD_PYX, "_b_bad": BAD_PYX}, inplace=True)
    # What an earlier in-place build left in the source tree must not load instead.
    stale = [toy_env / cmd.get_ext_filename(f"toy.{name}") for name in ("_a_good", "_b_bad")]
    for path in stale:
        path.write_bytes(b"stale")
    cmd.run()
    assert cmd.get_outputs() == []
    # _a_good compiled before _b_bad failed; neither it nor the stale copies remain.
    assert _built(toy_env) == []
    err = capsys.readouterr().err
    assert (
        "vivace: building the compiled engine failed (a compiled module did not build: "
        "CompileError: " in err
    )


def test_required_extensions_make_a_compiler_failure_a_build_error(
    toy_env: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "/bin/false")
    monkeypatch.setenv("VIVACE_REQUIRE_EXTENSIONS", "1")
    cmd = _toy_build_ext(toy_env, {"_one": GOOD_PYX}, inplace=False)
    with pytest.raises(Exception, match=r"/bin/false.*returned non-zero exit status") as info:
        cmd.run()
    assert type(info.value).__name__ == "CompileError"


def test_build_pure_skips_the_compiler(
    toy_env: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIVACE_BUILD_PURE", "1")
    cmd = _toy_build_ext(toy_env, {"_one": GOOD_PYX}, inplace=False)
    cmd.run()
    assert cmd.get_outputs() == []
    assert _built(toy_env) == []
    assert "(VIVACE_BUILD_PURE is set)" in capsys.readouterr().err


# ---------------------------------------------------------------- at run time

_PROGRAM = """
import sys, types
{prelude}
import vivace
from vivace._core import _impl

async def main():
    async with vivace.open_nursery() as nursery:
        nursery.start_soon(vivace.sleep, 0)
    return 42

print(_impl.ENGINE, vivace.run(main))
"""


def _run_child(prelude: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("VIVACE_")}
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM.format(prelude=textwrap.dedent(prelude))],
        env={**child_env, **env},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


# The compiled engine as a pure-Python install has it: no _ext modules at all.
_NO_COMPILED = 'sys.modules["vivace._core._ext._heap"] = None'
# A half-built one: the first compiled module lacks its declared names.
_HALF_BUILT = (
    'sys.modules["vivace._core._ext._heap"] = types.ModuleType("vivace._core._ext._heap")'
)


def test_a_missing_compiled_engine_is_one_warning_and_everything_runs() -> None:
    proc = _run_child(_NO_COMPILED)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "reference 42\n"
    assert proc.stderr.count("Warning") == 1, proc.stderr
    assert (
        "RuntimeWarning: vivace is running on its pure-Python reference engine, because "
        "the compiled engine could not be imported (import of vivace._core._ext._heap "
        "halted; None in sys.modules). Everything works, only slower. Set "
        "VIVACE_NO_EXTENSIONS=1 to choose the reference engine and silence this warning; "
        "to get the compiled engine, reinstall vivace with a C compiler available, or "
        "from a binary wheel."
    ) in proc.stderr


def test_a_half_built_compiled_engine_warns_with_what_it_lacks() -> None:
    proc = _run_child(_HALF_BUILT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "reference 42\n"
    assert proc.stderr.count("RuntimeWarning") == 1, proc.stderr
    assert (
        "(vivace._core._ext._heap does not define 'DeadlineHeap', which its twin "
        "vivace._core._heap_py declares in __all__)"
    ) in proc.stderr


def test_asking_for_the_reference_engine_is_silent() -> None:
    proc = _run_child(_NO_COMPILED, VIVACE_NO_EXTENSIONS="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "reference 42\n"
    assert proc.stderr == ""


def test_the_warning_is_an_error_under_error_filters() -> None:
    # As in this suite (filterwarnings = error): a silent fallback cannot pass unseen.
    proc = _run_child("import warnings; warnings.simplefilter('error')\n" + _NO_COMPILED)
    assert proc.returncode != 0
    assert "RuntimeWarning: vivace is running on its pure-Python reference engine" in (
        proc.stderr
    )


def test_the_default_engine_warns_exactly_when_it_falls_back() -> None:
    proc = _run_child("print(end='')")
    assert proc.returncode == 0, proc.stderr
    engine = proc.stdout.split()[0]
    if _impl.ENGINE == "compiled":
        # The compiled engine this process runs on is importable, so the child's too.
        assert engine == "compiled"
    if engine == "compiled":
        assert proc.stderr == ""
    else:
        assert proc.stderr.count("RuntimeWarning") == 1, proc.stderr
