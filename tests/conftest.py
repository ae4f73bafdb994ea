"""Shared fixtures. The engine is chosen per pytest process (scripts/test runs the suite
once per engine); ``engine`` tells a test which one it runs on."""

from __future__ import annotations

import gc
import signal
import time
from collections.abc import Iterator

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


def pytest_configure(config: pytest.Config) -> None:
    # A shell without job control starts a background job ("cmd &": CI harnesses, nohup)
    # with SIGINT and SIGQUIT ignored, and exec keeps "ignored" for every child. Python
    # then installs no KeyboardInterrupt handler and vivace.run, like trio.run, rightly
    # leaves an ignored SIGINT alone, so each test that types Ctrl-C, here or in a child
    # process, would see it vanish. The tests assume a terminal's signal set-up.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(signal, "SIGQUIT") and signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def pytest_report_header(config: pytest.Config) -> str:
    return f"vivace engine: {_impl.ENGINE}"


def pytest_collection_finish(session: pytest.Session) -> None:
    # Importing Hypothesis (collection does, for the differential tests) runs vivace's
    # entry point, which switches every later run to Hypothesis's deterministic batch
    # order, as trio's does for trio. The suite should exercise the scheduling users
    # get; the tests that want determinism (tests/differential, tests/test_install.py)
    # switch it on themselves.
    from vivace._core import _run

    _run._ALLOW_DETERMINISTIC_SCHEDULING = False


def _drop_logged_tracebacks(item: pytest.Item) -> None:
    # Log records captured with exc_info keep the failing frames (and through them a
    # finished run) alive until pytest reports the test; their text is already
    # formatted, so only the references go.
    from _pytest.logging import caplog_records_key

    for records in item.stash.get(caplog_records_key, {}).values():
        for record in records:
            record.exc_info = None


@pytest.fixture(autouse=True)
def _live_objects_return_to_baseline(request: pytest.FixtureRequest) -> Iterator[None]:
    """In a VIVACE_DEBUG build (``VIVACE_DEBUG=1 scripts/test``): every test leaves as
    many live tasks, kernels and deadline heaps as it found (DESIGN.md section 7)."""
    if _impl.debug_counters() is None:
        yield
        return
    gc.collect()
    before = _impl.debug_counters()
    yield
    _drop_logged_tracebacks(request.node)
    gc.collect()
    after = _impl.debug_counters()
    # A worker thread of the run (guest mode's I/O waits, the thread cache) may still hold
    # the last references for a moment after the test returns; a leak never lets go, so
    # waiting a bounded while for the count to settle cannot hide one.
    deadline = time.monotonic() + 5.0
    while after != before and time.monotonic() < deadline:
        time.sleep(0.01)
        gc.collect()
        after = _impl.debug_counters()
    # What survived that collection is live; frozen, later tests' two collections walk
    # only what was made since, instead of every object of the session (which made
    # the debug run four times slower than a plain one).
    gc.freeze()
    assert after == before, f"live engine objects changed: {before} -> {after}"
