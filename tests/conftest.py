"""Shared fixtures. The engine is chosen per pytest process (scripts/test runs the suite
once per engine); ``engine`` tells a test which one it runs on."""

from __future__ import annotations

import pytest

import vivace
from vivace._core import _impl


@pytest.fixture
def engine() -> str:
    return _impl.ENGINE


@pytest.fixture
def mock_clock() -> vivace.testing.MockClock:
    return vivace.testing.MockClock()


@pytest.fixture
def autojump_clock() -> vivace.testing.MockClock:
    return vivace.testing.MockClock(autojump_threshold=0)


def pytest_report_header(config: pytest.Config) -> str:
    return f"vivace engine: {_impl.ENGINE}"
