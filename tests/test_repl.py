"""``python -m vivace`` with no arguments: the async REPL, driven through a pseudo-terminal.

Each test starts ``python -m vivace`` on a fresh pty that is the child's controlling
terminal, so that typing Ctrl-C (byte 0x03) makes the terminal driver send SIGINT exactly
as it does for a user. The child inherits the environment, so it runs on the engine this
pytest process was told to use. Every read has a deadline: a wedged REPL fails the test
with what it printed instead of hanging it.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

# A hang guard, not a timing assertion: each step takes milliseconds when things work.
DEADLINE = 30.0
PROMPT = ">>> "
# readline may wrap prompts in terminal control sequences (bracketed paste mode).
_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")


class Repl:
    def __init__(self, *command: str) -> None:
        master, slave = os.openpty()
        env = dict(os.environ, TERM="dumb", PYTHONUNBUFFERED="1")
        env.pop("PYTHONSTARTUP", None)

        def become_terminal_owner() -> None:
            # After setsid (start_new_session), take the pty as controlling terminal, so
            # that 0x03 typed into it reaches this process as SIGINT.
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            [sys.executable, *(command or ("-m", "vivace"))],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=become_terminal_owner,
        )
        os.close(slave)
        self.fd = master
        self.pending = b""
        self.transcript = b""

    def read_until(self, *markers: str) -> str:
        """Everything printed up to and including the first of ``markers``; returns it."""
        wanted = [m.encode() for m in markers]
        deadline = time.monotonic() + DEADLINE
        while True:
            clean = _ESCAPES.sub(b"", self.pending).replace(b"\r\n", b"\n")
            found = [(clean.find(m) + len(m), m) for m in wanted if m in clean]
            if found:
                end = min(found)[0]
                # Whatever followed the marker belongs to the next read.
                self.pending = clean[end:]
                return clean[:end].decode(errors="replace")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"REPL did not print any of {markers!r} within {DEADLINE} s; "
                    f"transcript:\n{self.transcript.decode(errors='replace')}\n"
                    f"{self.signal_state()}"
                )
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(
                    f"REPL closed its terminal before printing {markers!r}; "
                    f"transcript:\n{self.transcript.decode(errors='replace')}"
                )
            self.pending += chunk
            self.transcript += chunk

    def signal_state(self) -> str:
        """The child's per-thread signal masks and pending sets, for a failure message:
        a Ctrl-C that never took effect was either blocked, ignored or never handled."""
        lines = []
        try:
            for tid in sorted(os.listdir(f"/proc/{self.process.pid}/task")):
                with open(f"/proc/{self.process.pid}/task/{tid}/status") as status:
                    fields = [
                        line.strip()
                        for line in status
                        if line.startswith(("Name", "State", "Sig", "ShdPnd"))
                    ]
                lines.append(f"thread {tid}: " + "; ".join(fields))
        except OSError as error:
            lines.append(f"(no /proc signal state: {error})")
        return "signal state of the REPL's threads:\n" + "\n".join(lines)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def run(self, line: str) -> str:
        """Type ``line`` and return what it printed before the next prompt (echo included)."""
        self.send(line.encode() + b"\n")
        return self.read_until(PROMPT)

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"REPL did not exit; transcript:\n{self.transcript.decode(errors='replace')}"
            ) from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.fd)


@pytest.fixture
def repl() -> Iterator[Repl]:
    session = Repl()
    try:
        banner = session.read_until(f"{PROMPT}import vivace\n{PROMPT}")
        assert banner.startswith("vivace REPL ")
        assert 'Use "await" directly instead of "vivace.run()".' in banner
        yield session
    finally:
        session.close()


def test_top_level_await_runs_in_one_long_lived_run(repl: Repl) -> None:
    assert "None" not in repl.run("await vivace.sleep(0)")
    repl.run("root = vivace.lowlevel.current_root_task()")
    repl.run("answer = await vivace.to_thread.run_sync(lambda: 6 * 7)")
    out = repl.run("print('same run:', vivace.lowlevel.current_root_task() is root, answer)")
    assert "same run: True 42" in out
    # The namespace is __main__'s, with vivace and not trio (nothing installed vivace as trio).
    out = repl.run("print(__name__, 'vivace' in dir(), 'trio' in dir())")
    assert "__main__ True False" in out
    # Sync statements run in the run's thread too, so vivace's sync API works in them.
    assert "clock: True" in repl.run("print('clock:', vivace.current_time() > 0)")


def test_nursery_within_one_statement(repl: Repl) -> None:
    repl.send(b"async def child(i):\n")
    repl.read_until("... ")
    repl.send(b"    await vivace.sleep(0)\n")
    repl.read_until("... ")
    repl.send(b"    print('child', i, 'done')\n")
    repl.read_until("... ")
    repl.run("")
    repl.send(b"async with vivace.open_nursery() as nursery:\n")
    repl.read_until("... ")
    repl.send(b"    for i in range(3): nursery.start_soon(child, i)\n")
    repl.read_until("... ")
    out = repl.run("")
    assert sorted(re.findall(r"child \d done", out)) == [f"child {i} done" for i in range(3)]


def test_nursery_and_task_live_across_statements(repl: Repl) -> None:
    repl.run("event = vivace.Event(); seen = []")
    repl.send(b"async def waiter():\n")
    repl.read_until("... ")
    repl.send(b"    await event.wait(); seen.append('woke'); print('waiter woke')\n")
    repl.read_until("... ")
    repl.run("")
    repl.run("manager = vivace.open_nursery()")
    repl.run("nursery = await manager.__aenter__()")
    repl.run("nursery.start_soon(waiter)")
    # The task started by the previous statement is alive and waiting between statements.
    out = repl.run("await vivace.sleep(0); print('waiting tasks:', len(nursery.child_tasks), seen)")
    assert "waiting tasks: 1 []" in out
    repl.run("event.set()")
    out = repl.run("await manager.__aexit__(None, None, None); print('closed', seen)")
    assert "closed ['woke']" in out
    assert "Traceback" not in out


def test_exception_prints_traceback_and_session_continues(repl: Repl) -> None:
    out = repl.run("1 / 0")
    assert "Traceback (most recent call last):" in out
    assert "ZeroDivisionError: division by zero" in out
    # The traceback starts at the user's statement, not in the console's machinery.
    assert "_repl.py" not in out
    repl.send(b"async def fails():\n")
    repl.read_until("... ")
    repl.send(b"    await vivace.sleep(0); raise KeyError('from a coroutine')\n")
    repl.read_until("... ")
    repl.run("")
    out = repl.run("await fails()")
    assert "KeyError: 'from a coroutine'" in out
    # SystemExit inside an exception group is an error like the others: shown, no exit.
    out = repl.run("raise BaseExceptionGroup('', [RuntimeError(), SystemExit(5)])")
    assert "BaseExceptionGroup" in out
    assert "after: 42" in repl.run("print('after:', 6 * 7)")


def test_ctrl_c_cancels_the_running_statement_only(repl: Repl) -> None:
    repl.send(b"print('READY'); await vivace.sleep_forever(); print('not reached')\n")
    repl.read_until("READY\n")
    repl.send(b"\x03")
    out = repl.read_until(PROMPT)
    assert "KeyboardInterrupt" in out
    assert "not reached" not in out
    # The session, its run and its namespace survive.
    assert "still here: 3" in repl.run(
        "print('still here:', await vivace.to_thread.run_sync(len, 'abc'))"
    )
    # Ctrl-C during a blocking sync statement is a KeyboardInterrupt too. Short sleeps in
    # a loop, not one long one: CPython runs a Python signal handler only between
    # bytecodes, so a SIGINT landing after print() returned but before a single
    # time.sleep(1000) began would wait the whole 1000 s (seen once on a loaded machine);
    # the loop (endless: iter(int, 1) never yields 1) gives the handler a bytecode
    # boundary every 50 ms.
    repl.send(b"import time; print('READY'); [time.sleep(0.05) for _ in iter(int, 1)]\n")
    repl.read_until("READY\n")
    repl.send(b"\x03")
    out = repl.read_until(PROMPT)
    assert "KeyboardInterrupt" in out
    assert "again: 1" in repl.run("print('again:', 1)")


def test_ctrl_c_at_the_prompt_discards_the_line(repl: Repl) -> None:
    repl.send(b"print('typed but not entered')")
    repl.send(b"\x03")
    # The REPL wakes its reader by pushing a newline into the terminal; where the kernel
    # forbids that (TIOCSTI disabled) it asks for Enter instead.
    out = repl.read_until("KeyboardInterrupt", "Press enter!")
    if "Press enter!" in out:
        repl.send(b"\n")
        out += repl.read_until("KeyboardInterrupt")
    out += repl.read_until(PROMPT)
    out += repl.run("print('next:', 2)")
    assert "next: 2" in out.splitlines()
    # The half-typed line was dropped, not run (its echo is there, its output is not).
    assert "typed but not entered" not in out.splitlines()


def test_eof_exits_with_status_0(repl: Repl) -> None:
    repl.run("await vivace.sleep(0)")
    repl.send(b"\x04")
    assert repl.wait() == 0


def test_system_exit_leaves_with_its_status(repl: Repl) -> None:
    repl.send(b"await vivace.sleep(0); raise SystemExit(3)\n")
    assert repl.wait() == 3


def test_trio_is_offered_when_vivace_is_installed_as_trio() -> None:
    # As 'python -m trio' would be with trio provided by vivace: the name asked for works.
    start = (
        "import runpy, sys, vivace; vivace.install(); sys.argv[1:] = []; "
        "runpy.run_module('vivace', run_name='__main__', alter_sys=True)"
    )
    session = Repl("-c", start)
    try:
        banner = session.read_until(f"{PROMPT}import vivace\n{PROMPT}import trio\n{PROMPT}")
        assert banner.startswith("vivace REPL ")
        out = session.run("print('trio is vivace:', trio is vivace); await trio.sleep(0)")
        assert "trio is vivace: True" in out
        session.send(b"\x04")
        assert session.wait() == 0
    finally:
        session.close()
