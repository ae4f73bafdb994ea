"""Subprocesses: run_process, lowlevel.open_process and Process, with trio 0.35's
arguments, errors, cancellation delivery and reaping (issue 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio as real_trio

import vivace as trio
import vivace._subprocess as vivace_subprocess
from vivace.lowlevel import open_process
from vivace.testing import MockClock, wait_all_tasks_blocked

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocess tests")

PY = sys.executable


def python(code: str) -> list[str]:
    return [PY, "-c", code]


# A child that is certainly still running until the test stops it.
LONG_SLEEP = ["sleep", "3600"]


@pytest.fixture(params=[True, False], ids=["pidfd", "waitid"])
def exit_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with pidfds and once with the waitid-thread fallback."""
    if not request.param:
        monkeypatch.setattr(vivace_subprocess, "can_try_pidfd_open", False)
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open here")
    return "pidfd" if request.param else "waitid"


def assert_reaped(pid: int) -> None:
    # Reaped means no longer our child: waitpid on it finds nothing to wait for.
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# ---------------------------------------------------------------- run_process


def test_run_process_sequence_stdin_and_capture() -> None:
    async def main() -> subprocess.CompletedProcess[bytes]:
        return await trio.run_process(
            python("import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d[::-1]);"
                   " sys.stderr.write('e')"),
            stdin=b"abc" * 50_000,
            capture_stdout=True,
            capture_stderr=True,
        )

    result = trio.run(main)
    assert result.returncode == 0
    assert result.stdout == (b"abc" * 50_000)[::-1]
    assert result.stderr == b"e"
    assert result.args[0] == PY


def test_run_process_shell_string_and_popen_kwargs(tmp_path: Any) -> None:
    async def main() -> subprocess.CompletedProcess[bytes]:
        return await trio.run_process(
            'printf "%s:%s" "$(pwd)" "$VIVACE_SP"',
            shell=True,
            cwd=str(tmp_path),
            env={"VIVACE_SP": "yes", "PATH": os.environ["PATH"]},
            capture_stdout=True,
        )

    result = trio.run(main)
    assert result.stdout == f"{os.path.realpath(tmp_path)}:yes".encode()
    assert result.stderr is None


def test_run_process_stdin_from_fd_and_output_to_fd(tmp_path: Any) -> None:
    src = tmp_path / "in"
    src.write_bytes(b"from a file")
    dst = tmp_path / "out"

    async def main() -> subprocess.CompletedProcess[bytes]:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            return await trio.run_process(["cat"], stdin=fin.fileno(), stdout=fout)

    result = trio.run(main)
    assert result.stdout is None
    assert dst.read_bytes() == b"from a file"


def test_run_process_default_stdin_is_empty() -> None:
    async def main() -> bytes | None:
        return (await trio.run_process(["cat"], capture_stdout=True)).stdout

    assert trio.run(main) == b""


def test_run_process_check_raises_with_output() -> None:
    async def main(check: bool) -> subprocess.CompletedProcess[bytes]:
        return await trio.run_process(
            python("import sys; print('out'); sys.stderr.write('err'); sys.exit(3)"),
            capture_stdout=True,
            capture_stderr=True,
            check=check,
        )

    with pytest.raises(subprocess.CalledProcessError) as info:
        trio.run(main, True)
    assert info.value.returncode == 3
    assert info.value.output == b"out\n"
    assert info.value.stderr == b"err"
    assert info.value.cmd[0] == PY
    assert trio.run(main, False).returncode == 3


def test_run_process_child_that_ignores_stdin() -> None:
    # The child exits without reading: the broken pipe is not an error.
    async def main() -> int:
        result = await trio.run_process(["true"], stdin=b"x" * 1_000_000)
        return result.returncode

    assert trio.run(main) == 0


def test_spawn_failure_leaks_no_fd() -> None:
    async def main() -> None:
        with pytest.raises(PermissionError):
            await trio.run_process(["/dev/null"], capture_stdout=True, capture_stderr=True)
        with pytest.raises(FileNotFoundError):
            await open_process(["/nonexistent/vivace"], stdin=subprocess.PIPE)

    before = sorted(os.listdir("/proc/self/fd"))
    trio.run(main)
    assert sorted(os.listdir("/proc/self/fd")) == before


def _argument_errors(lib: Any) -> list[str]:
    """Each misuse trio rejects, as 'ExceptionType: message', run on *lib*."""
    open_proc = lib.lowlevel.open_process
    calls: list[Callable[[], Awaitable[object]]] = [
        partial(lib.run_process, ["true"], stdin="text"),
        partial(lib.run_process, ["true"], stdin=subprocess.PIPE),
        partial(lib.run_process, ["true"], stdout=subprocess.PIPE),
        partial(lib.run_process, ["true"], stderr=subprocess.PIPE),
        partial(lib.run_process, ["true"], capture_stdout=True, stdout=subprocess.DEVNULL),
        partial(lib.run_process, ["true"], capture_stderr=True, stderr=None),
        partial(lib.run_process, ["true"], text=True),
        partial(open_proc, ["true"], encoding="utf-8"),
        partial(open_proc, ["true"], universal_newlines=True),
        partial(open_proc, ["true"], errors="strict"),
        partial(open_proc, ["true"], bufsize=1),
        partial(open_proc, "true"),
        partial(open_proc, b"true"),
        partial(open_proc, ["true"], shell=True),
    ]
    found = []

    async def main() -> None:
        for call in calls:
            try:
                await call()
            except Exception as exc:
                found.append(f"{type(exc).__name__}: {exc}")
            else:
                found.append("no error")

    lib.run(main)
    return found


def test_argument_errors_match_trio() -> None:
    ours = _argument_errors(trio)
    assert "no error" not in ours
    assert ours == _argument_errors(real_trio)


# ---------------------------------------------------------------- open_process / Process


def test_open_process_pipes_and_stdio(exit_watch: str) -> None:
    async def main() -> None:
        proc = await open_process(
            python("import sys\nfor line in sys.stdin:\n"
                   "    sys.stdout.write(line.upper()); sys.stdout.flush()\n"
                   "sys.stderr.write('bye')"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.args[0] == PY
        assert isinstance(proc.pid, int)
        assert proc.returncode is None
        assert proc.poll() is None
        assert repr(proc) == f"<vivace.Process {proc.args!r}: running with PID {proc.pid}>"
        assert isinstance(proc.stdio, trio.StapledStream)
        assert proc.stdio.send_stream is proc.stdin
        assert proc.stdio.receive_stream is proc.stdout
        await proc.stdio.send_all(b"hello\n")
        got = b""
        while got != b"HELLO\n":
            got += await proc.stdio.receive_some()
        await proc.stdio.send_eof()
        errors = b""
        assert proc.stderr is not None
        while chunk := await proc.stderr.receive_some():
            errors += chunk
        assert errors == b"bye"
        assert await proc.wait() == 0
        assert proc.returncode == 0
        assert repr(proc) == f"<vivace.Process {proc.args!r}: exited with status 0>"
        await proc.aclose()

    trio.run(main)


def test_stdio_only_for_a_pipe_pair() -> None:
    async def main() -> None:
        async with await open_process(["true"], stdin=subprocess.PIPE) as proc:
            assert proc.stdout is None and proc.stderr is None
            assert proc.stdio is None
        async with await open_process(["true"], stdout=subprocess.PIPE) as proc:
            assert proc.stdin is None and proc.stdio is None
        async with await open_process(["true"]) as proc:
            assert (proc.stdin, proc.stdout, proc.stderr, proc.stdio) == (None,) * 4

    trio.run(main)


def test_stderr_to_stdout() -> None:
    async def main() -> bytes:
        proc = await open_process(
            python("import sys, os; os.write(1, b'1'); os.write(2, b'2'); os.write(1, b'3')"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        async with proc:
            assert proc.stderr is None
            out = b""
            assert proc.stdout is not None
            while chunk := await proc.stdout.receive_some():
                out += chunk
            await proc.wait()
        return out

    assert trio.run(main) == b"123"


@pytest.mark.parametrize(
    ("send", "signum"),
    [
        (lambda p: p.kill(), signal.SIGKILL),
        (lambda p: p.terminate(), signal.SIGTERM),
        (lambda p: p.send_signal(signal.SIGUSR1), signal.SIGUSR1),
    ],
    ids=["kill", "terminate", "send_signal"],
)
def test_signals_report_negative_returncode(
    exit_watch: str, send: Callable[[trio.Process], None], signum: int
) -> None:
    async def main() -> None:
        proc = await open_process(LONG_SLEEP)
        assert (proc._pidfd is not None) == (exit_watch == "pidfd")
        send(proc)
        with trio.fail_after(30):  # hang guard only
            assert await proc.wait() == -signum
        assert repr(proc).endswith(f": exited with signal {signum}>")
        assert_reaped(proc.pid)

    trio.run(main)


def test_returncode_updates_without_wait(exit_watch: str) -> None:
    async def main() -> None:
        proc = await open_process(LONG_SLEEP)
        assert proc.returncode is None
        proc.kill()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # blocks until dead
        assert proc.returncode == -signal.SIGKILL
        assert proc._pidfd is None
        assert await proc.wait() == -signal.SIGKILL

    trio.run(main)


def test_wait_is_a_checkpoint_and_cancelled_wait_does_not_kill(exit_watch: str) -> None:
    async def main() -> None:
        proc = await open_process(LONG_SLEEP)
        with trio.CancelScope() as scope:
            scope.cancel()
            await proc.wait()
        assert scope.cancelled_caught
        with trio.move_on_after(0.05) as scope:
            await proc.wait()
        assert scope.cancelled_caught
        assert proc.returncode is None
        proc.kill()
        await proc.wait()
        # Also a checkpoint once the child is known to be gone.
        with trio.CancelScope() as scope:
            scope.cancel()
            await proc.wait()
        assert scope.cancelled_caught

    trio.run(main)


def test_many_waiters_all_woken(exit_watch: str) -> None:
    async def main() -> None:
        proc = await open_process(LONG_SLEEP)
        results: list[int] = []

        async def waiter() -> None:
            results.append(await proc.wait())

        with trio.fail_after(30):  # hang guard only
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(waiter)
                await wait_all_tasks_blocked()
                proc.terminate()
        assert results == [-signal.SIGTERM] * 4

    trio.run(main)


def test_poll_from_elsewhere_wakes_a_waiter(exit_watch: str) -> None:
    # A poll() that reaps the child closes the pidfd a waiter is parked on.
    async def main() -> None:
        proc = await open_process(LONG_SLEEP)
        woke = trio.Event()

        async def waiter() -> None:
            await proc.wait()
            woke.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            proc.kill()
            proc._proc.wait()
            assert proc.poll() == -signal.SIGKILL
            with trio.fail_after(30):  # hang guard only
                await woke.wait()

    trio.run(main)


def test_wait_with_sigchld_ignored(exit_watch: str) -> None:
    # The kernel reaps the child itself; like subprocess, the status reads 0.
    async def main() -> None:
        proc = await open_process(LONG_SLEEP)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(proc.wait)
            await wait_all_tasks_blocked()
            proc.kill()
            nursery.cancel_scope.deadline = trio.current_time() + 30  # hang guard only
        assert not nursery.cancel_scope.cancelled_caught
        assert proc.returncode == 0

    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        trio.run(main)
    finally:
        signal.signal(signal.SIGCHLD, old)


def test_aclose_closes_streams_then_waits() -> None:
    async def main() -> None:
        # cat exits only once its stdin is closed, so aclose must close before waiting.
        proc = await open_process(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        async with proc:
            pass
        assert proc.returncode == 0
        assert proc.stdin is not None
        with pytest.raises(trio.ClosedResourceError):
            await proc.stdin.send_all(b"x")

    trio.run(main)


def test_cancelled_aclose_kills_and_reaps() -> None:
    async def main() -> None:
        proc = await open_process(LONG_SLEEP, stdout=subprocess.PIPE)
        with trio.CancelScope() as scope:
            scope.cancel()
            await proc.aclose()
        assert scope.cancelled_caught
        assert proc.returncode == -signal.SIGKILL
        assert_reaped(proc.pid)

    trio.run(main)


def test_process_has_no_public_constructor() -> None:
    with pytest.raises(TypeError):
        trio.Process(None, None, None, None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):

        class Sub(trio.Process):  # type: ignore[misc]
            pass


# ---------------------------------------------------------------- cancellation


def test_task_status_gives_the_process_and_cancel_reports_sigterm(exit_watch: str) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            proc = await nursery.start(
                partial(
                    trio.run_process, LONG_SLEEP, stdin=subprocess.PIPE, check=False
                )
            )
            assert isinstance(proc, trio.Process)
            assert proc.stdin is not None
            assert proc.returncode is None
            nursery.cancel_scope.cancel()
        assert nursery.cancel_scope.cancelled_caught
        assert proc.returncode == -signal.SIGTERM
        assert_reaped(proc.pid)

    trio.run(main)


def test_start_with_captured_output_hides_the_streams() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            proc = await nursery.start(
                partial(trio.run_process, ["true"], capture_stdout=True, stderr=subprocess.PIPE)
            )
            assert proc.stdout is None and proc.stdin is None and proc.stdio is None
            assert proc.stderr is not None

    trio.run(main)


def test_failure_under_start_raises_called_process_error() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.run_process, ["false"])

    with pytest.raises(ExceptionGroup) as info:
        trio.run(main)
    assert info.group_contains(subprocess.CalledProcessError)


def test_cancelled_run_process_reaps_and_reraises_cancelled() -> None:
    async def main() -> None:
        with trio.move_on_after(0.2) as scope:
            await trio.run_process(LONG_SLEEP)
        assert scope.cancelled_caught

    before = sorted(os.listdir("/proc/self/fd"))
    trio.run(main)
    assert sorted(os.listdir("/proc/self/fd")) == before
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def _ignores_sigterm() -> list[str]:
    # Ignored dispositions survive exec; "ready" says the trap is set.
    return ["sh", "-c", "trap '' TERM; echo ready; exec sleep 3600"]


async def _start_when_ready(nursery: trio.Nursery, **kwargs: Any) -> trio.Process:
    proc: trio.Process = await nursery.start(
        partial(trio.run_process, _ignores_sigterm(), stdout=subprocess.PIPE, **kwargs)
    )
    assert proc.stdout is not None
    got = b""
    while b"ready" not in got:
        got += await proc.stdout.receive_some()
    return proc


def test_default_deliver_cancel_escalates_to_sigkill_after_5s(
    autojump_clock: MockClock,
) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            proc = await _start_when_ready(nursery)
            start = trio.current_time()
            nursery.cancel_scope.cancel()
        assert trio.current_time() - start == pytest.approx(5)
        assert proc.returncode == -signal.SIGKILL

    with pytest.warns(RuntimeWarning, match="ignored SIGTERM for 5 seconds"):
        trio.run(main, clock=autojump_clock)


def test_custom_deliver_cancel(autojump_clock: MockClock) -> None:
    calls: list[trio.Process] = []
    finished_after_exit = []

    async def deliver(proc: trio.Process) -> None:
        calls.append(proc)
        await trio.sleep(1)
        proc.send_signal(signal.SIGUSR1)
        try:
            await trio.sleep_forever()
        finally:
            # Cancelled only once the child is gone.
            finished_after_exit.append(proc.returncode)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            proc = await _start_when_ready(nursery, deliver_cancel=deliver)
            start = trio.current_time()
            nursery.cancel_scope.cancel()
        assert trio.current_time() - start == pytest.approx(1)
        assert calls == [proc]
        assert finished_after_exit == [-signal.SIGUSR1]
        assert proc.returncode == -signal.SIGUSR1

    trio.run(main, clock=autojump_clock)


def test_deliver_cancel_error_is_raised_in_groups() -> None:
    async def deliver(proc: trio.Process) -> None:
        proc.kill()
        raise ValueError("deliver failed")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.run_process, LONG_SLEEP, deliver_cancel=deliver))
            await wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    with pytest.RaisesGroup(pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="deliver"))):
        trio.run(main)


def test_failed_terminate_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: trio.Process) -> None:
        self.kill()
        raise OSError("no such luck")

    monkeypatch.setattr(trio.Process, "terminate", broken)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.run_process, LONG_SLEEP)
            await wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    with pytest.warns(RuntimeWarning, match="no such luck"):
        trio.run(main)
