"""vivace.install(): the import hook, trio's metadata, sniffio, Hypothesis, the CLI, the
pytest plugin and the pip stand-in.

install() changes process-global import state, and this test process has the real trio
imported (the oracle tests and pytest-trio's plugin import it), so every case runs in a
fresh child interpreter; the engine choice is inherited through the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from vivace._stand_in import STAND_IN_VERSION, build_wheel

# Real trio 0.35.0 is installed beside vivace in the test environment (it is the oracle);
# install() has to win over it, and this is where its files live.
_REAL_TRIO_PREFIX = """
import importlib.util, os, sys
def _real_trio_dir():
    for entry in sys.path:
        candidate = os.path.join(entry or ".", "trio", "__init__.py")
        if os.path.exists(candidate) and "site-packages" in candidate:
            return os.path.dirname(os.path.realpath(candidate))
    return None
REAL_TRIO_DIR = _real_trio_dir()
def assert_no_real_trio():
    assert REAL_TRIO_DIR is not None, "the test environment should have the real trio"
    for name, module in list(sys.modules.items()):
        f = getattr(module, "__file__", None) or ""
        assert not os.path.realpath(f).startswith(REAL_TRIO_DIR + os.sep), (name, f)
"""


def run_child(
    code: str,
    *args: str,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    python: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.pop("PYTEST_ADDOPTS", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [python, *args]
        if not code
        else [python, "-c", _REAL_TRIO_PREFIX + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=full_env,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


# ---------------------------------------------------------------- the import hook


def test_install_makes_trio_and_its_public_modules_vivace() -> None:
    ok(
        run_child("""
        import vivace
        vivace.install()
        import trio, trio.lowlevel, trio.testing, trio.abc, trio.socket
        import trio.to_thread, trio.from_thread
        assert trio is vivace
        for name in ("lowlevel", "testing", "abc", "socket", "to_thread", "from_thread"):
            assert sys.modules["trio." + name] is getattr(vivace, name), name
        from trio.lowlevel import current_task
        assert current_task is vivace.lowlevel.current_task
        assert_no_real_trio()
    """)
    )


def test_private_paths_resolve_to_the_same_vivace_modules_without_a_second_core() -> None:
    ok(
        run_child("""
        import vivace, vivace._core._run
        before = set(sys.modules)
        vivace.install()
        import trio._core._run
        assert trio._core._run is vivace._core._run
        assert callable(trio._core._run._hypothesis_plugin_setup)
        # Nothing was executed again: the only new entries are the trio aliases.
        new = {n for n in set(sys.modules) - before if n.split(".")[0] in ("trio", "vivace")}
        assert new == {"trio", "trio._core", "trio._core._run"}, new
        assert_no_real_trio()
    """)
    )


def test_aliased_modules_keep_their_own_spec() -> None:
    ok(
        run_child("""
        import vivace
        vivace.install()
        import trio.lowlevel, importlib
        assert vivace.__spec__.name == "vivace"
        assert vivace.lowlevel.__spec__.name == "vivace.lowlevel"
        assert importlib.reload(vivace.lowlevel) is vivace.lowlevel
    """)
    )


def test_install_twice_changes_nothing() -> None:
    ok(
        run_child("""
        import vivace
        vivace.install()
        meta_path = list(sys.meta_path)
        vivace.install()
        assert sys.meta_path == meta_path
        import trio
        assert trio is vivace
    """)
    )


def test_a_trio_module_vivace_lacks_is_refused_by_name_and_never_loaded_from_real_trio() -> None:
    out = ok(
        run_child("""
        import vivace
        vivace.install()
        try:
            import trio._tests.test_exports
        except ModuleNotFoundError as exc:
            print(exc)
            assert exc.name == "trio._tests"
        else:
            raise AssertionError("imported a module vivace does not have")
        assert_no_real_trio()
    """)
    )
    assert "has no counterpart of 'trio._tests'" in out


def test_install_after_the_real_trio_was_imported_names_the_fix() -> None:
    result = run_child("""
        import trio, vivace
        vivace.install()
    """)
    assert result.returncode == 1
    assert "vivace.install() came too late" in result.stderr
    assert "python -m vivace run" in result.stderr
    assert "-p vivace.install_plugin" in result.stderr


def test_uninstall_restores_the_real_trio_and_install_works_again() -> None:
    ok(
        run_child("""
        import vivace
        vivace.install()
        import trio, trio.lowlevel
        assert trio is vivace
        vivace.uninstall()
        assert not any(n == "trio" or n.startswith("trio.") for n in sys.modules)
        assert not vivace._install.is_installed()
        vivace.uninstall()  # a second call is harmless
        # With the hook gone, the real trio (installed beside vivace here) imports.
        import trio as real
        assert real is not vivace and real.__file__.startswith(REAL_TRIO_DIR)
        for name in [n for n in sys.modules if n == "trio" or n.startswith("trio.")]:
            del sys.modules[name]
        vivace.install()
        import trio as again
        assert again is vivace
    """)
    )


# ---------------------------------------------------------------- metadata


def test_trio_metadata_answers_while_installed() -> None:
    out = ok(
        run_child("""
        import vivace, importlib.metadata as md
        vivace.install()
        assert md.version("trio") == "0.35.0"
        dist = md.distribution("trio")
        assert dist.metadata["Name"] == "trio"
        print(dist.metadata["Summary"])
        eps = [ep for ep in md.entry_points(group="hypothesis") if ep.name == "trio"]
        assert len(eps) == 1 and eps[0].value == "trio._core._run:_hypothesis_plugin_setup"
        assert eps[0].load() is vivace._core._run._hypothesis_plugin_setup
        # trio-websocket parses the version at import time.
        import trio_websocket
        assert_no_real_trio()
    """)
    )
    assert "standing in for trio 0.35.0" in out


def test_without_install_the_metadata_is_the_real_distributions() -> None:
    out = ok(
        run_child("""
        import vivace, importlib.metadata as md
        print(md.distribution("trio").metadata["Summary"])
    """)
    )
    assert "standing in" not in out


# ---------------------------------------------------------------- sniffio and anyio


def test_sniffio_reports_trio_when_installed_and_vivace_otherwise() -> None:
    out = ok(
        run_child("""
        import sniffio, vivace
        async def name():
            return sniffio.current_async_library()
        print(vivace.run(name))
        vivace.install()
        import trio
        print(trio.run(name))
    """)
    )
    assert out.split() == ["vivace", "trio"]


def test_anyio_without_install_says_to_install() -> None:
    result = run_child("""
        import anyio, vivace
        async def main():
            await anyio.sleep(0)
        vivace.run(main)
    """)
    assert result.returncode == 1
    assert "anyio has no backend named 'vivace'" in result.stderr
    assert "call vivace.install()" in result.stderr


def test_anyio_and_httpx_run_on_vivace_once_installed() -> None:
    ok(
        run_child("""
        import vivace
        vivace.install()
        import anyio, httpx
        async def main():
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.sleep, 0)
            async with httpx.AsyncClient() as client:
                try:
                    await client.get("http://127.0.0.1:1/")
                except httpx.ConnectError:
                    pass
                else:
                    raise AssertionError("port 1 answered")
            return sys.modules["trio"]
        assert anyio.run(main, backend="trio") is vivace
        assert_no_real_trio()
    """)
    )


# ---------------------------------------------------------------- Hypothesis


def test_hypothesis_entry_point_makes_schedules_replay() -> None:
    ok(
        run_child("""
        import vivace
        vivace.install()
        from vivace._core import _run
        assert not _run._ALLOW_DETERMINISTIC_SCHEDULING
        from hypothesis import given, settings, strategies as st
        from hypothesis.internal.entropy import RANDOMS_TO_MANAGE
        assert _run._ALLOW_DETERMINISTIC_SCHEDULING
        assert any(r is _run._r for r in RANDOMS_TO_MANAGE.values())
        import trio

        async def order():
            seen = []
            async def record(i):
                seen.append(i)
            async with trio.open_nursery() as nursery:
                for i in range(8):
                    nursery.start_soon(record, i)
            return seen

        orders = {}
        @settings(max_examples=20, database=None, derandomize=True)
        @given(st.integers(0, 10))
        def check(n):
            orders.setdefault(n, []).append(trio.run(order))
        check()
        check()
        # Hypothesis reseeds the registered batch-order RNG before every example, so all
        # 40 runs schedule alike (without the hook, each batch is reversed at random:
        # 40 equal orders would have odds of 2**-39).
        assert len({tuple(run) for runs in orders.values() for run in runs}) == 1, orders
    """)
    )


# ---------------------------------------------------------------- python -m vivace


def _write_program(tmp_path: Path) -> Path:
    program = tmp_path / "prog.py"
    program.write_text(
        textwrap.dedent("""
        import os, sys, sniffio, trio
        async def main():
            return sniffio.current_async_library()
        print(trio.__name__, trio.run(main), sys.argv[1:], sys.path[0] == os.path.dirname(os.path.realpath(__file__)), __name__)
        sys.exit(int(sys.argv[1]))
    """)
    )
    return program


def test_cli_run_script_installs_and_keeps_argv_path_and_exit_status(tmp_path: Path) -> None:
    program = _write_program(tmp_path)
    result = run_child("", "-m", "vivace", "run", str(program), "7", "x", cwd=os.getcwd())
    assert result.returncode == 7, result.stderr
    assert result.stdout.split("\n")[0] == "vivace trio ['7', 'x'] True __main__"


def test_cli_run_module(tmp_path: Path) -> None:
    pkg = tmp_path / "somepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tool.py").write_text(
        textwrap.dedent("""
        import sys, trio
        print(trio.__name__, __name__, sys.argv[1:], sys.argv[0].endswith("tool.py"))
    """)
    )
    result = run_child("", "-m", "vivace", "run", "-m", "somepkg.tool", "a", cwd=tmp_path)
    assert ok(result).strip() == "vivace __main__ ['a'] True"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--no-such-option",), "python -m vivace run SCRIPT [ARGS...]"),
        (("run",), "'run' needs a script path"),
        (("run", "-m"), "'run -m' needs a module name"),
        (("run", "no-such-file.py"), "can't open file"),
        (("frobnicate",), "unknown command 'frobnicate'"),
    ],
)
def test_cli_misuse_exits_2_with_a_message(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_child("", "-m", "vivace", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stdout + result.stderr


# ---------------------------------------------------------------- pytest plugin


def run_pytest_with_install_plugin(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    plugins = ("-p", "vivace.install_plugin", "-p", "no:cacheprovider")
    return run_child("", "-m", "pytest", *plugins, *args, cwd=project)


def test_install_plugin_runs_a_pytest_trio_suite_on_vivace(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent("""
        import sys
        import pytest
        import trio

        @pytest.fixture
        async def value():
            await trio.sleep(0)
            return 5

        @pytest.mark.trio
        async def test_on_vivace(value):
            assert value == 5
            assert sys.modules["trio"].__name__ == "vivace"
            assert trio.lowlevel.current_task() is not None
    """)
    )
    result = run_pytest_with_install_plugin(tmp_path, "-q", "-W", "error", "test_inner.py")
    assert "1 passed" in ok(result)


def test_install_plugin_reports_itself_in_the_header(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    result = run_pytest_with_install_plugin(tmp_path, "test_x.py")
    assert "installed as trio (" in ok(result)


# ---------------------------------------------------------------- pip stand-in


def test_stand_in_wheel_is_a_valid_trio_distribution(tmp_path: Path) -> None:
    wheel = Path(build_wheel(str(tmp_path)))
    assert wheel.name == f"trio-{STAND_IN_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = f"trio-{STAND_IN_VERSION}.dist-info"
        assert names == {
            "trio/__init__.py",
            f"{dist_info}/METADATA",
            f"{dist_info}/WHEEL",
            f"{dist_info}/top_level.txt",
            f"{dist_info}/RECORD",
        }
        record = zf.read(f"{dist_info}/RECORD").decode().splitlines()
        # Every file but RECORD is listed with its hash and size.
        assert {line.split(",")[0] for line in record} == names
        assert "entry_points.txt" not in " ".join(names)
    # Built twice, the same bytes.
    again = Path(build_wheel(str(tmp_path / "again")))
    assert again.read_bytes() == wheel.read_bytes()


def test_stand_in_satisfies_pip_and_defers_to_vivace(tmp_path: Path) -> None:
    wheel = build_wheel(str(tmp_path / "wheels"))
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--target",
            str(target),
            wheel,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}
    # Without install(), the guard says what to do (and shadows the real trio).
    result = run_child("import trio", env=env)
    assert result.returncode == 1
    assert "call vivace.install() first" in result.stderr
    # pip sees trio 0.35.0+vivace; with install() the program gets vivace and the
    # metadata says exactly trio's version.
    out = ok(
        run_child(
            """
        import importlib.metadata as md, vivace
        print(md.version("trio"))
        vivace.install()
        import trio
        assert trio is vivace
        print(md.version("trio"))
    """,
            env=env,
        )
    )
    assert out.split() == [STAND_IN_VERSION, "0.35.0"]


def test_stand_in_keeps_pip_from_pulling_in_trio(tmp_path: Path) -> None:
    # A bare environment (no vivace, no trio, no network) and a package that requires
    # trio: with the stand-in installed, pip resolves it without looking for trio.
    wheels = tmp_path / "wheels"
    build_wheel(str(wheels))
    _write_wheel(wheels, "needs_trio", "1.0", "Requires-Dist: trio>=0.22\n")
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    venv_python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(venv_python)]
    common = ["install", "-q", "--no-index", "--find-links", str(wheels)]
    ok(subprocess.run([*pip, *common, "trio"], capture_output=True, text=True, timeout=120))
    ok(subprocess.run([*pip, *common, "needs-trio"], capture_output=True, text=True, timeout=120))
    listing = ok(subprocess.run([*pip, "list"], capture_output=True, text=True, timeout=120))
    assert f"trio       {STAND_IN_VERSION}" in listing or f"trio {STAND_IN_VERSION}" in " ".join(
        listing.split()
    )


def _write_wheel(directory: Path, name: str, version: str, extra_metadata: str) -> None:
    import base64
    import hashlib

    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{extra_metadata}"
        ).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(data)}")
    lines.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)


def test_stand_in_install_refuses_when_the_real_trio_is_installed(tmp_path: Path) -> None:
    result = run_child("", "-m", "vivace", "trio-stand-in", "--output", str(tmp_path), "--install")
    assert result.returncode == 1
    assert "the real trio 0.35.0 is installed here" in result.stderr
    assert (tmp_path / f"trio-{STAND_IN_VERSION}-py3-none-any.whl").exists()


# ---------------------------------------------------------------- child processes


_MP_PROGRAM = """
import multiprocessing, sys

def child(queue):
    import trio
    queue.put(trio.__name__)

def main():
    import vivace
    if "install" in sys.argv:
        vivace.install()  # inside main(): a spawned child never runs this line
    names = []
    for method in ("spawn", "forkserver"):
        ctx = multiprocessing.get_context(method)
        queue = ctx.Queue()
        process = ctx.Process(target=child, args=(queue,))
        process.start()
        names.append(queue.get(timeout=60))
        process.join()
    print(" ".join(names))

if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("how", ["install() in main", "python -m vivace run"])
def test_multiprocessing_children_started_afresh_run_on_vivace_too(
    tmp_path: Path, how: str
) -> None:
    # hypercorn starts its workers with the spawn method: a fresh interpreter that
    # would otherwise import the real trio installed beside vivace.
    program = tmp_path / "mp_prog.py"
    program.write_text(_MP_PROGRAM)
    if how == "install() in main":
        result = run_child("", str(program), "install", cwd=tmp_path)
    else:
        result = run_child("", "-m", "vivace", "run", str(program), cwd=tmp_path)
    assert ok(result).split() == ["vivace", "vivace"]


def test_uninstall_stops_carrying_over_to_children(tmp_path: Path) -> None:
    ok(
        run_child("""
        import multiprocessing.util, vivace
        original = multiprocessing.util.spawnv_passfds
        vivace.install()
        assert multiprocessing.util.spawnv_passfds is not original
        vivace.uninstall()
        assert multiprocessing.util.spawnv_passfds is original
    """)
    )


def _write_anyio_first_project(tmp_path: Path) -> None:
    # anyio's plugin imports trio when it loads, and pytest reads addopts first.
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p anyio\n")
    (tmp_path / "test_x.py").write_text(
        "import trio\n\ndef test_x():\n    assert trio.__name__ == 'vivace'\n"
    )


def test_install_plugin_loaded_too_late_is_a_usage_error_naming_the_fix(tmp_path: Path) -> None:
    _write_anyio_first_project(tmp_path)
    result = run_pytest_with_install_plugin(tmp_path)
    assert result.returncode == 4  # pytest's usage-error status
    assert "put '-p vivace.install_plugin' first in addopts" in result.stderr
    assert "python -m vivace run -m pytest" in result.stderr


def test_pytest_started_through_the_cli_is_on_vivace_whatever_the_config(tmp_path: Path) -> None:
    _write_anyio_first_project(tmp_path)
    result = run_child(
        "", "-m", "vivace", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path
    )
    assert "1 passed" in ok(result)
