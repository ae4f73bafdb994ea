"""pytest-trio 0.8, unchanged, on vivace: a pytest subprocess with ``-p
vivace.install_plugin`` runs inner test files that use its markers, fixtures, clocks and
``trio_mode`` (tests/ecosystem/inner_pytest_trio*.py)."""

from __future__ import annotations

import pytest

from _ecosystem import run_inner_pytest

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
