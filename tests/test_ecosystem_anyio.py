"""anyio 4.16, unchanged, on its trio backend with vivace installed as trio (issue 10).

Each test runs one scenario of tests/ecosystem/prog_anyio.py in a fresh interpreter,
under ``anyio.run(backend="trio")`` and under ``trio.run`` (vivace.run); anyio's pytest
plugin runs in a pytest subprocess; the ``python -m vivace run`` forms switch a program
that never mentions vivace.
"""

from __future__ import annotations

import pytest

from _ecosystem import MARK, describe, run_child, run_inner_pytest, run_program

pytest_plugins = ["pytester"]

RUNNERS = pytest.mark.parametrize("runner", ["anyio", "trio"])


@RUNNERS
def test_task_groups_children_errors_and_start(runner: str) -> None:
    run_program("prog_anyio.py", "task_groups", runner)


@RUNNERS
def test_cancel_scopes_timeouts_shielding_and_outside_cancel(runner: str) -> None:
    run_program("prog_anyio.py", "cancel_scopes", runner)


@RUNNERS
def test_memory_object_streams(runner: str) -> None:
    run_program("prog_anyio.py", "memory_streams", runner)


@RUNNERS
def test_tcp_echo_checks_every_byte(runner: str) -> None:
    run_program("prog_anyio.py", "tcp_echo", runner)


@RUNNERS
def test_open_file_and_path(runner: str) -> None:
    run_program("prog_anyio.py", "files", runner)


@RUNNERS
def test_to_thread_from_thread_and_blocking_portal(runner: str) -> None:
    run_program("prog_anyio.py", "threads", runner)


@RUNNERS
def test_event_lock_semaphore_capacity_limiter_condition(runner: str) -> None:
    run_program("prog_anyio.py", "sync_primitives", runner)


def test_anyio_pytest_plugin_on_the_trio_backend(pytester: pytest.Pytester) -> None:
    result = run_inner_pytest(pytester, "inner_anyio_plugin.py")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*test_reported_as_failed*trio* FAILED*"])
    result.stdout.fnmatch_lines(["*KeyError: 'expected failure'*"])


def test_cli_run_script_switches_an_unchanged_program() -> None:
    proc = run_program("prog_plain_anyio.py", "1", "2", "39", via="cli")
    assert "sum=42 name=__main__" in proc.stdout.splitlines(), proc.stdout


def test_cli_run_module_switches_an_unchanged_program() -> None:
    proc = run_program("prog_plain_anyio.py", "5", "6", via="cli-module")
    assert "sum=11 name=__main__" in proc.stdout.splitlines(), proc.stdout


def test_the_proof_fails_on_the_real_trio() -> None:
    # Without install() the same program runs on the real trio: the proof must say so,
    # or every test above could pass without vivace.
    proc = run_child(["prog_plain_anyio.py", "1"])
    report = describe(proc)
    assert proc.returncode != 0, report
    assert "not vivace" in proc.stderr and MARK not in proc.stdout, report
