"""httpx 0.28's AsyncClient, unchanged, on vivace installed as trio (issue 10).

Each test runs one scenario of tests/ecosystem/prog_httpx.py in a fresh interpreter: the
server (trio + h11) and the client share one run, started by ``trio.run`` (vivace.run) or
by ``anyio.run(backend="trio")``.
"""

from __future__ import annotations

import pytest

from _ecosystem import run_program

RUNNERS = pytest.mark.parametrize("runner", ["trio", "anyio"])


@RUNNERS
def test_get_over_one_kept_alive_connection(runner: str) -> None:
    run_program("prog_httpx.py", "get", runner)


@RUNNERS
def test_post_bodies_echoed_byte_for_byte(runner: str) -> None:
    run_program("prog_httpx.py", "post", runner)


@RUNNERS
def test_read_timeout_from_a_server_that_never_answers(runner: str) -> None:
    run_program("prog_httpx.py", "timeout", runner)


@RUNNERS
def test_connection_refused_is_connect_error(runner: str) -> None:
    run_program("prog_httpx.py", "refused", runner)


@RUNNERS
def test_fifty_concurrent_requests_all_answered(runner: str) -> None:
    run_program("prog_httpx.py", "concurrent", runner)
