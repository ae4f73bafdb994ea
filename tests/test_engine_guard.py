"""The guard: the compiled engine must really be loaded unless the reference engine was
asked for. A silently missing extension would make every speed claim and half of the
test matrix meaningless."""

from __future__ import annotations

import os
import subprocess
import sys

from vivace._core import _impl

# A hang guard below pytest-timeout's 60 s, so that a hang shows the child's output.
SUBPROCESS_TIMEOUT = 40


def _reference_requested() -> bool:
    return os.environ.get("VIVACE_NO_EXTENSIONS", "") not in ("", "0")


def test_compiled_engine_loaded_unless_reference_requested() -> None:
    if _reference_requested():
        assert _impl.ENGINE == "reference"
    else:
        assert _impl.ENGINE == "compiled", (
            f"compiled engine did not load: {_impl.IMPORT_ERROR!r}; build it with "
            "'pip install -e .' or run with VIVACE_NO_EXTENSIONS=1"
        )


def test_engine_twins_come_from_the_selected_engine() -> None:
    expected = "_ext" if _impl.ENGINE == "compiled" else "_py"
    for obj in (_impl.KernelBase, _impl.TaskBase, _impl.DeadlineHeap):
        assert expected in obj.__module__, (obj, obj.__module__)


def test_conflicting_engine_switches_are_an_import_error() -> None:
    env = dict(os.environ, VIVACE_NO_EXTENSIONS="1", VIVACE_REQUIRE_EXTENSIONS="1")
    proc = subprocess.run(
        [sys.executable, "-c", "import vivace"], env=env, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert proc.returncode != 0
    assert "both set" in proc.stderr


def test_reference_engine_selected_by_environment() -> None:
    env = dict(os.environ, VIVACE_NO_EXTENSIONS="1")
    env.pop("VIVACE_REQUIRE_EXTENSIONS", None)
    proc = subprocess.run(
        [sys.executable, "-c", "from vivace._core import _impl; print(_impl.ENGINE)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "reference"
