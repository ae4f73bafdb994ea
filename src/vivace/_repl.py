"""``python -m vivace`` with no arguments: an interactive console that runs on vivace.

Behaves as ``python -m trio`` does in trio 0.35: top-level ``await`` works, and every
statement runs inside one long-lived :func:`vivace.run`, so a nursery opened or a task
started by one statement is still there for the next. The console itself (reading lines,
compiling them) runs in a worker thread; each compiled statement is handed back to the run
through :mod:`vivace.from_thread`, so sync statements may call vivace's sync API too.

Ctrl-C while a statement runs is delivered by vivace's usual KeyboardInterrupt handling
and ends that statement only. Ctrl-C at the prompt cannot interrupt the worker thread's
blocking ``input()`` (signals reach the main thread only), so a temporary SIGINT handler
records it and pushes a newline into the terminal's input queue to wake ``input()``.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import signal
import sys
import warnings
from code import InteractiveConsole
from collections.abc import Awaitable, Callable
from types import CodeType, FrameType, FunctionType, TracebackType
from typing import Any

import vivace
import vivace.from_thread
import vivace.lowlevel
import vivace.to_thread

# What the console namespace keeps from the ``__main__`` module, so that code typed at the
# prompt sees itself as ``__main__`` (as in the stdlib and asyncio consoles).
_MAIN_IDENTITY = ("__name__", "__package__", "__loader__", "__spec__", "__builtins__", "__file__")

_Outcome = tuple[bool, Any]


def _without_own_frame(error: BaseException) -> BaseException:
    # The first traceback entry is the capturing frame below; the user's traceback should
    # start at their own statement, not in the console's plumbing.
    tb = error.__traceback__
    if tb is not None:
        error.with_traceback(tb.tb_next)
    return error


async def _capture_async(func: Callable[[], Awaitable[Any]]) -> _Outcome:
    try:
        return True, await func()
    except BaseException as error:
        return False, _without_own_frame(error)


def _capture_sync(func: Callable[[], Any]) -> _Outcome:
    try:
        return True, func()
    except BaseException as error:
        return False, _without_own_frame(error)


@vivace.lowlevel.disable_ki_protection
def _wake_input() -> None:
    """Type a newline into the controlling terminal, so that a blocked ``input()`` returns."""
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import fcntl
            import termios

            fcntl.ioctl(sys.stdin, termios.TIOCSTI, b"\n")  # type: ignore[attr-defined,unused-ignore]
        except (OSError, ImportError, AttributeError, ValueError) as error:
            # Not a terminal (a pipe), or the kernel forbids TIOCSTI: the user has to.
            print(f"\nPress enter! Newline injection failed: {error}", end="", flush=True)


class VivaceInteractiveConsole(InteractiveConsole):
    """A :class:`code.InteractiveConsole` whose statements run in the surrounding vivace run.

    Its methods are called from a worker thread started by :func:`run_repl`.
    """

    def __init__(self, repl_locals: dict[str, object] | None = None) -> None:
        super().__init__(locals=repl_locals)
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        # Set by the prompt's SIGINT handler (main thread), read by this thread.
        self.interrupted = False

    def runcode(self, code: CodeType) -> None:
        func = FunctionType(code, self.locals)
        ok: bool
        value: Any
        if inspect.iscoroutinefunction(func):
            ok, value = vivace.from_thread.run(_capture_async, func)
        else:
            ok, value = vivace.from_thread.run_sync(_capture_sync, func)
        if not ok:
            error: BaseException = value
            # A bare SystemExit means "leave"; one inside an exception group is an error
            # among others and is only shown.
            if isinstance(error, SystemExit):
                raise error
            self._show(error)
        # A Ctrl-C that arrived after the statement finished is still pending in the run;
        # consume it here (the console reports it) rather than in the next statement.
        vivace.from_thread.run(vivace.lowlevel.checkpoint_if_cancelled)

    def _show(self, error: BaseException) -> None:
        sys.last_type, sys.last_value = type(error), error
        sys.last_traceback = error.__traceback__
        if sys.version_info >= (3, 12):
            sys.last_exc = error
        # sys.excepthook, not self.showtraceback: the error is an object already, and a
        # custom excepthook (rich, IPython's) should see it as it would in python's REPL.
        tb: TracebackType | None = error.__traceback__
        sys.excepthook(type(error), error, tb)

    if sys.platform != "win32":

        def raw_input(self, prompt: str = "") -> str:
            token = vivace.from_thread.run_sync(vivace.lowlevel.current_trio_token)

            def on_sigint(signum: int, frame: FrameType | None) -> None:
                self.interrupted = True
                token.run_sync_soon(_wake_input, idempotent=True)

            previous = vivace.from_thread.run_sync(signal.signal, signal.SIGINT, on_sigint)
            try:
                return input(prompt)
            finally:
                vivace.from_thread.run_sync(signal.signal, signal.SIGINT, previous)
                if self.interrupted:
                    # Whatever input() returned is the injected (or typed) newline.
                    raise KeyboardInterrupt

        def write(self, data: str) -> None:
            if self.interrupted:
                # The console reports the prompt's Ctrl-C as "\nKeyboardInterrupt\n"; the
                # newline that woke input() has already moved to a fresh line.
                self.interrupted = False
                data = data.removeprefix("\n")
            sys.stderr.write(data)

    else:  # pragma: no cover - Windows delivers Ctrl-C at the prompt as EOFError

        def raw_input(self, prompt: str = "") -> str:
            try:
                return input(prompt)
            except EOFError:
                vivace.from_thread.run(vivace.lowlevel.checkpoint_if_cancelled)
                raise


def _trio_as_vivace() -> object | None:
    """The ``trio`` module if it is vivace here (``vivace.install()``, a shim), else None.

    Under ``python -m trio`` served by vivace, code typed at the prompt says ``trio``; a
    real trio beside vivace is never imported into the console.
    """
    trio = sys.modules.get("trio")
    if trio is None:
        from ._install import is_installed

        # Installed, 'import trio' would give vivace itself.
        return vivace if is_installed() else None
    return trio if getattr(trio, "run", None) is vivace.run else None


def banner(names: list[str]) -> str:
    ps1 = getattr(sys, "ps1", ">>> ")
    imports = "\n".join(f"{ps1}import {name}" for name in names)
    return (
        f"vivace REPL {sys.version} on {sys.platform}\n"
        'Use "await" directly instead of "vivace.run()".\n'
        'Type "help", "copyright", "credits" or "license" for more information.\n'
        f"{imports}"
    )


async def run_repl(console: VivaceInteractiveConsole, names: list[str] | None = None) -> None:
    """Run ``console`` until EOF; call it inside :func:`vivace.run`."""
    try:
        await vivace.to_thread.run_sync(console.interact, banner(names or ["vivace"]))
    finally:
        # A coroutine typed without 'await' lingers in '_' or the namespace until the
        # interpreter exits; warning about it then only adds noise to leaving (as trio).
        warnings.filterwarnings(
            "ignore", message=r"^coroutine .* was never awaited$", category=RuntimeWarning
        )


def main() -> int:
    """Start the console in the current process; return the exit status (0 on EOF)."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())

    main_namespace = vars(sys.modules["__main__"])
    repl_locals: dict[str, object] = {
        key: main_namespace[key] for key in _MAIN_IDENTITY if key in main_namespace
    }
    names = ["vivace"]
    repl_locals["vivace"] = vivace
    # Under 'python -m trio' with trio provided by vivace, offer the name the user asked for.
    trio = _trio_as_vivace()
    if trio is not None:
        names.append("trio")
        repl_locals["trio"] = trio
    console = VivaceInteractiveConsole(repl_locals)
    vivace.run(run_repl, console, names)
    return 0
