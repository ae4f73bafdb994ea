"""pytest plugin that runs an existing trio or anyio test suite on vivace, unchanged.

Enable it so that it loads before any plugin that imports trio (pytest-trio's does, at
load time)::

    pytest -p vivace.install_plugin

or, for every run, in the pytest configuration (``addopts`` is read before plugins load)::

    [pytest]
    addopts = -p vivace.install_plugin

It calls :func:`vivace.install` when pytest loads it, so everything the session imports
as ``trio`` -- the suite, pytest-trio, anyio's trio backend -- is vivace.
"""

from __future__ import annotations

from ._core._impl import ENGINE
from ._install import install
from ._version import __version__

install()


def pytest_report_header() -> str:
    return f"vivace {__version__} installed as trio ({ENGINE} engine)"
