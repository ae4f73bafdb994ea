"""Run a misuse program in a fresh interpreter with a timeout, on real trio and on vivace.

A misuse case may hang, crash the interpreter or wedge the engine with the GIL held; a
thread joined with a timeout cannot bound the last two, and a wedged run would outlive
the test. So each program runs in a child process that is killed at the deadline.

A program is a function ``program(lib)`` registered in a test module's ``CASES``; ``lib``
is the ``trio`` or ``vivace`` module (subpackages imported), so one body runs on both. The child runs it on trio first
(the oracle; skipped where trio itself hangs or when trio is not installed), then on
vivace, and prints one JSON line per library describing what came out: the value it
returned or the exception it raised (type, message, and the same for group members,
``__cause__`` and ``__context__``). The child inherits the environment, so vivace runs
on the engine the test process was told to use.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

# Generous: a hang guard, not a timing assertion (a case takes well under a second). Below
# pytest-timeout's 60 s so that a hang is reported with what trio did and what the child
# printed.
TIMEOUT = 30.0

_MARK = "@@misuse-outcome@@ "

_CHILD = r"""
import importlib.util, json, sys, traceback
sys.path.insert(0, {tests_dir!r})
spec = importlib.util.spec_from_file_location("_misuse_child_module", {module_file!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
program = module.CASES[{name!r}].program

def describe(exc, depth=0):
    if exc is None or depth > 4:
        return None
    return {{
        "module": type(exc).__module__,
        "name": type(exc).__qualname__,
        "message": str(exc),
        "members": [describe(e, depth + 1) for e in getattr(exc, "exceptions", ())],
        "cause": describe(exc.__cause__, depth + 1),
        "context": describe(exc.__context__, depth + 1),
        "traceback": "".join(traceback.format_exception(exc)) if depth == 0 else "",
    }}

for lib_name in {libs!r}:
    try:
        lib = __import__(lib_name)
        # trio's subpackages are not imported by its top level; vivace's are.
        for sub in ("lowlevel", "testing", "from_thread", "to_thread", "socket"):
            __import__(lib_name + "." + sub)
    except ImportError:
        print({mark!r} + json.dumps({{"lib": lib_name, "missing": True}}), flush=True)
        continue
    try:
        value = program(lib)
    except BaseException as exc:
        record = {{"lib": lib_name, "raised": describe(exc)}}
    else:
        record = {{"lib": lib_name, "returned": repr(value)}}
    print({mark!r} + json.dumps(record), flush=True)
"""


@dataclass
class Raised:
    """What a program raised, with the library's package name taken off the module."""

    name: str
    module: str
    message: str
    members: list[Raised] = field(default_factory=list)
    cause: Raised | None = None
    context: Raised | None = None
    traceback: str = ""

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> Raised | None:
        if data is None:
            return None
        return cls(
            name=data["name"],
            module=data["module"],
            message=data["message"],
            members=[m for m in map(cls.parse, data["members"]) if m is not None],
            cause=cls.parse(data["cause"]),
            context=cls.parse(data["context"]),
            traceback=data["traceback"],
        )

    def is_public(self, lib: str) -> bool:
        """True when the type is a builtin or one of ``lib``'s public exceptions."""
        return self.module == "builtins" or self.module.split(".")[0] == lib

    def __str__(self) -> str:
        return f"{self.module}.{self.name}: {self.message}"


@dataclass
class Outcome:
    """What one library did with the program: returned, raised, or was not run."""

    lib: str
    raised: Raised | None = None
    returned: str | None = None
    ran: bool = True

    def __str__(self) -> str:
        if not self.ran:
            return f"{self.lib}: not run"
        if self.raised is not None:
            return f"{self.lib} raised {self.raised}\n{self.raised.traceback}"
        return f"{self.lib} returned {self.returned}"


@dataclass
class Outcomes:
    trio: Outcome
    vivace: Outcome


def run_both(module_file: str, name: str, *, trio_too: bool = True) -> Outcomes:
    """Run ``name`` from ``module_file`` on trio (unless ``trio_too`` is false) and on
    vivace in one child process. A hang or a crash fails with what the child printed."""
    libs = ["trio", "vivace"] if trio_too else ["vivace"]
    code = _CHILD.format(
        tests_dir=os.path.dirname(os.path.abspath(__file__)),
        module_file=os.path.abspath(module_file),
        name=name,
        libs=libs,
        mark=_MARK,
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        before = "".join(f"(before the hang, {o})\n" for o in _parse(_text(exc.stdout)).values())
        raise AssertionError(
            f"{name} hung for {TIMEOUT:g} s (misuse must raise, never hang)\n{before}"
            f"--- stdout\n{_text(exc.stdout)}\n--- stderr\n{_text(exc.stderr)}"
        ) from None
    found = _parse(proc.stdout)
    if "vivace" not in found or proc.returncode != 0:
        raise AssertionError(
            f"{name}: the child process died (exit status {proc.returncode})\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return Outcomes(trio=found.get("trio", Outcome("trio", ran=False)), vivace=found["vivace"])


def _parse(stdout: str) -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            record = json.loads(line[len(_MARK):])
            lib = record["lib"]
            if record.get("missing"):
                found[lib] = Outcome(lib, ran=False)
            elif "raised" in record:
                found[lib] = Outcome(lib, raised=Raised.parse(record["raised"]))
            else:
                found[lib] = Outcome(lib, returned=record["returned"])
    return found


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


# ---------------------------------------------------------------- expectations

Program = Callable[[ModuleType], object]


@dataclass(frozen=True)
class Misuse:
    """What a misuse program must raise.

    ``raises`` names vivace's exception type (a builtin or a public vivace exception; a
    tuple allows any of several) and ``says`` is a regex its message must match: what
    went wrong, or what to do. ``trio_raises``/``trio_says`` state what trio 0.35 does
    when that differs (trio crashing with an unclear error where vivace must be clear);
    by default trio must raise the same type. ``in_group``: the error comes out of a
    nursery, as the single member of an ExceptionGroup. ``trio_hangs``: trio is not run.
    """

    raises: str | tuple[str, ...]
    says: str
    trio_raises: str | None = None
    trio_says: str | None = None
    in_group: bool = False
    trio_hangs: bool = False


@dataclass(frozen=True)
class Case:
    program: Program
    expect: Misuse


class Cases(dict[str, Case]):
    """A test module's misuse programs by name (the name is the test id)."""

    def add(self, raises: str | tuple[str, ...], says: str, **kw: Any) -> Callable[[Program], Program]:
        def register(program: Program) -> Program:
            self.register(program.__name__, program, Misuse(raises, says, **kw))
            return program

        return register

    def register(self, name: str, program: Program, expect: Misuse) -> None:
        assert name not in self, f"duplicate misuse case {name}"
        self[name] = Case(program, expect)


def check_misuse(module_file: str, name: str, expect: Misuse) -> None:
    """Run case ``name`` on trio and vivace under the hang guard; assert each raised the
    expected error."""
    outcomes = run_both(module_file, name, trio_too=not expect.trio_hangs)
    if outcomes.trio.ran:
        trio_type = expect.trio_raises or _names(expect.raises)[0]
        _check("trio", outcomes.trio, (trio_type,), expect.trio_says, expect.in_group)
    _check("vivace", outcomes.vivace, _names(expect.raises), expect.says, expect.in_group)


def _names(raises: str | tuple[str, ...]) -> tuple[str, ...]:
    return (raises,) if isinstance(raises, str) else raises


def _check(
    lib: str, outcome: Outcome, types: tuple[str, ...], says: str | None, in_group: bool
) -> None:
    raised = outcome.raised
    assert raised is not None, f"expected {' or '.join(types)}, but {outcome}"
    if in_group:
        assert raised.name in ("ExceptionGroup", "BaseExceptionGroup") and len(
            raised.members
        ) == 1, f"expected an ExceptionGroup of one {' or '.join(types)}, but {outcome}"
        raised = raised.members[0]
    assert raised.name in types, f"expected {' or '.join(types)}, but {outcome}"
    assert raised.is_public(lib), f"{raised.module}.{raised.name} is not a public type"
    if says is not None:
        assert re.search(says, raised.message, re.DOTALL), (
            f"{lib}'s message does not say what went wrong (/{says}/): {raised}\n{outcome}"
        )
