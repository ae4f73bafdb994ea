"""pytest-trio 0.8, unchanged, on vivace: a pytest subprocess with ``-p
vivace.install_plugin`` runs inner test files that use its markers, fixtures, clocks and
``trio_mode`` (tests/ecosystem/inner_pytest_trio*.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _ecosystem import HANG_GUARD, describe, run_inner_pytest

pytest_plugins = ["pytester"]


def test_marked_tests_async_fixtures_nursery_and_clocks(pytester: pytest.Pytester) -> None:
    result = run_inner_pytest(pytester, "inner_pytest_trio.py")
    result.assert_outcomes(passed=8, failed=1)
    result.stdout.fnmatch_lines(["*::test_reported_as_failed FAILED*"])
    result.stdout.fnmatch_lines(["*AssertionError: 1 + 1 == 3*"])


def test_trio_mode_from_the_ini_file(pytester: pytest.Pytester) -> None:
    result = run_inner_pytest(pytester, "inner_pytest_trio_mode.py", ini="trio_mode = true\n")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*::test_fails_in_trio_mode FAILED*"])
    result.stdout.fnmatch_lines(["*ValueError: expected failure*"])


def test_pytest_trios_own_suite_passes_on_vivace(tmp_path: Path) -> None:
    # pytest-trio's own tests (shipped in its wheel as pytest_trio/_tests), unchanged,
    # with vivace installed as trio: the same outcome as on trio (52 passed, 2 xfailed).
    # test_hypothesis_interaction imports trio.tests, which trio 0.35 itself lacks.
    import pytest_trio

    shutil.copytree(Path(pytest_trio.__file__).parent / "_tests", tmp_path / "_tests")
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "vivace.install_plugin",
         "-p", "no:cacheprovider", "-p", "pytester", "_tests",
         "--ignore=_tests/test_hypothesis_interaction.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_GUARD,
    )
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.strip().splitlines()[-1].startswith("52 passed, 2 xfailed"), describe(proc)
