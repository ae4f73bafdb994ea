"""pytest plugin that runs an existing trio or anyio test suite on vivace, unchanged.

Enable it so that it loads before any plugin that imports trio (pytest-trio's does, at
load time)::

    pytest -p vivace.install_plugin

or, for every run, in the pytest configuration (``addopts`` is read before plugins load)::

    [pytest]
    addopts = -p vivace.install_plugin

It calls :func:`vivace.install` when pytest loads it, so everything the session imports
as ``trio`` -- the suite, pytest-trio, anyio's trio backend -- is vivace. pytest reads
``addopts`` before the command line, so a configuration that loads anyio's or another
trio-importing plugin there (``addopts = -p anyio``) must list this plugin first. Starting
pytest as ``python -m vivace run -m pytest ...`` installs vivace before pytest itself
starts, whatever the configuration says.
"""

from __future__ import annotations

from ._core._impl import ENGINE
from ._install import install
from ._version import __version__


def _install_or_explain() -> None:
    # A function, so the caught exception is not left behind as a module attribute.
    try:
        install()
    except RuntimeError as exc:
        import pytest

        raise pytest.UsageError(
            f"{exc}\nWith pytest: a plugin that imports trio was loaded before "
            "vivace.install_plugin. pytest reads the configuration's addopts before the "
            "command line, so put '-p vivace.install_plugin' first in addopts (before "
            "'-p anyio' or '-p trio'), or start pytest as 'python -m vivace run -m pytest ...'."
        ) from None


_install_or_explain()


def pytest_report_header() -> str:
    return f"vivace {__version__} installed as trio ({ENGINE} engine)"
