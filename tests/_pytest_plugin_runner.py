"""Runs vivace.pytest_plugin's inner pytest sessions for the test_pytest_plugin_*.py files:
each case is a fresh pytest subprocess (pytester) that inherits this process's engine
variables. pytest-trio 0.8.0's behaviour is the spec; it is installed in this venv, so
most inner sessions also have it loaded, as a user's would.
"""

from __future__ import annotations

import pytest

# Each inner session fails on any warning and on an unregistered marker or ini option, so
# the plugin's registration of both is checked everywhere.
_STRICT = ("-p", "no:cacheprovider", "-W", "error", "--strict-markers", "--strict-config")
_PLUGIN = ("-p", "vivace.pytest_plugin")
_HANG_GUARD = 50.0  # seconds; a run takes about one


def run_inner(pytester: pytest.Pytester, *args: str, plugin: bool = True) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        *(_PLUGIN if plugin else ()), *_STRICT, "-rA", *args, timeout=_HANG_GUARD
    )


def report(result: pytest.RunResult) -> str:
    return f"\n--- stdout:\n{result.stdout.str()}\n--- stderr:\n{result.stderr.str()}"

