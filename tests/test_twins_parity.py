"""The twins' surfaces match: for every pair in ``_impl.TWINS`` (the one table the engine
switch reads), the compiled module exports every name its reference twin declares in
``__all__``, of the same kind and name, with the same signatures, the same attributes on
instances, the same constructor arity and equal constants. Behaviour is compared by the
``test_*twins*`` modules; this one compares what the names are.

Like the epoll twin tests, the compiled twins are compared when the compiled engine may
run (it is required, or it is the default); with ``VIVACE_NO_EXTENSIONS=1`` only the
reference side and the engine switch itself are checked. ``VIVACE_REQUIRE_EXTENSIONS=1``
with a compiled twin missing is a failure, never a skip.
"""

from __future__ import annotations

import ast
import contextvars
import importlib
import importlib.machinery
import inspect
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import outcome
import pytest

from vivace._core import _impl

_REQUIRED = os.environ.get("VIVACE_REQUIRE_EXTENSIONS", "") not in ("", "0")
_CORE = "vivace._core"
# A hang guard below pytest-timeout's 60 s, so that a hang shows the child's output.
SUBPROCESS_TIMEOUT = 40

# Only the pairs this platform builds (epoll is Linux's); the comparison is static, so it
# runs in the reference engine's run too, whenever the compiled modules were built.
PAIRS = [
    pytest.param(twin, id=f"{twin.reference}={twin.compiled}")
    for twin in _impl.TWINS
    if twin.built
]


def _reference(twin: _impl.Twin) -> types.ModuleType:
    return importlib.import_module(f"{_CORE}.{twin.reference}")


def _compiled(twin: _impl.Twin) -> types.ModuleType:
    """The compiled twin (a pure-Python install, which has none, skips)."""
    try:
        return importlib.import_module(f"{_CORE}.{twin.compiled}")
    except ImportError as exc:
        if _REQUIRED:
            pytest.fail(f"VIVACE_REQUIRE_EXTENSIONS=1 but {twin.compiled} is missing: {exc}")
        pytest.skip(f"the compiled engine is not built: {exc}")


def _kind(obj: object) -> str:
    if isinstance(obj, type):
        return "class"
    if callable(obj):
        return "function"
    return "constant"


def _declared(module: types.ModuleType, kind: str) -> list[str]:
    return [name for name in module.__all__ if _kind(getattr(module, name)) == kind]


def _shape(obj: Any) -> list[tuple[str, str, str]] | None:
    """The signature without annotations (the compiled twin has none): each parameter's
    name, kind and default. None when ``inspect.signature`` cannot read it."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [(p.name, p.kind.name, repr(p.default)) for p in sig.parameters.values()]


def _rejects(probe: Callable[[Any], object], target: Any) -> bool:
    """Whether ``probe(target)`` raises TypeError (closing a coroutine it returns)."""
    try:
        result = probe(target)
    except TypeError:
        return True
    if inspect.iscoroutine(result):
        result.close()
    return False


def _arity_mismatches(label: str, ref: Any, comp: Any, sig: inspect.Signature) -> list[str]:
    """Where one twin's signature is unreadable, probe its arity through the reference's:
    one positional argument too many, an unknown keyword, and (if the reference requires
    any) no arguments at all must be a TypeError on both, before any body runs."""
    params = list(sig.parameters.values())
    kinds = {p.kind for p in params}
    probes: list[tuple[str, Callable[[Any], object]]] = []
    if inspect.Parameter.VAR_POSITIONAL not in kinds:
        n = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        many = f"{n + 1} positional argument{'s' if n else ''}"
        probes.append((many, lambda f: f(*[None] * (n + 1))))
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        probes.append(("an unknown keyword", lambda f: f(__no_such_parameter__=None)))
    if any(
        p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params
    ):
        probes.append(("no arguments", lambda f: f()))
    bad = []
    for what, probe in probes:
        verdicts = ["rejects" if _rejects(probe, f) else "accepts" for f in (ref, comp)]
        if verdicts[0] != verdicts[1]:
            bad.append(f"{label} with {what}: the reference {verdicts[0]}, compiled {verdicts[1]}")
    return bad


# ---------------------------------------------------------------- instances to compare

_Args = tuple[tuple[Any, ...], dict[str, Any]]


def _no_args(m: types.ModuleType, fd: int) -> _Args:
    return (), {}


# One valid constructor call per engine class, the same for both twins. A class the
# reference declares without an entry here fails test_every_class_can_be_compared.
CONSTRUCT: dict[str, Callable[[types.ModuleType, int], _Args]] = {
    "DeadlineHeap": _no_args,
    "KernelBase": _no_args,
    "SystemClock": _no_args,
    "TaskBase": lambda m, fd: ((object(), contextvars.copy_context(), None, 0, False), {}),
    "WaitTaskRescheduled": lambda m, fd: ((print,), {}),
    "PermanentlyDetachCoroutineObject": lambda m, fd: ((outcome.Value(None),), {}),
    "CancelScopeBase": lambda m, fd: ((), {"deadline": 5.0, "shield": True}),
    "CancelStatusBase": lambda m, fd: ((None, None), {}),
    "ReadinessTable": lambda m, fd: (("test", fd), {}),
    "ChannelState": lambda m, fd: ((3,), {}),
    "EventBase": _no_args,
    "LockBase": _no_args,
    "LotBase": _no_args,
    "SendChannelBase": lambda m, fd: ((m.ChannelState(0),), {}),
    "ReceiveChannelBase": lambda m, fd: ((m.ChannelState(0),), {}),
    "EpollPoller": lambda m, fd: ((fd,), {}),
    "PollPoller": lambda m, fd: ((fd,), {}),
    "BusyGuard": lambda m, fd: (("busy",), {}),
}


@contextmanager
def _instances(
    name: str, ref: types.ModuleType, comp: types.ModuleType
) -> Iterator[tuple[object, object]]:
    a, b = socket.socketpair()
    made: list[object] = []
    try:
        for module in (ref, comp):
            args, kwargs = CONSTRUCT[name](module, a.fileno())
            made.append(getattr(module, name)(*args, **kwargs))
        yield made[0], made[1]
    finally:
        for obj in made:
            if name in ("EpollPoller", "PollPoller"):
                obj.close()  # type: ignore[attr-defined]
        a.close()
        b.close()


def _home(obj: object) -> str:
    """The module that defines *obj* (or, for a constant, its type)."""
    return obj.__module__ if callable(obj) else type(obj).__module__


def _dir(obj: object) -> set[str]:
    return {n for n in dir(obj) if not (n.startswith("__") and n.endswith("__"))}


# ---------------------------------------------------------------- the engine switch


def test_every_compiled_module_and_reference_twin_is_in_the_table() -> None:
    """A twin missing from ``_impl.TWINS`` would be compared by nothing here."""
    core = pathlib.Path(_impl.__file__).parent
    references = {p.stem for p in core.glob("_*_py.py")}
    # A reference module may be part of a listed twin: its names exported through that
    # twin's __all__, as _sync_channel_py's are through _sync_py's.
    covered = {twin.reference for twin in _impl.TWINS}
    for twin in _impl.TWINS:
        module = _reference(twin)
        for name in module.__all__:
            covered.add(_home(getattr(module, name)).rpartition(".")[2])
    assert sorted(references - covered) == [], (
        "reference twins missing from _impl.TWINS: add each pair there, its exports in __all__"
    )
    built = {
        p.name.split(".")[0]
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        for p in (core / "_ext").glob(f"*{suffix}")
    }
    listed = {twin.compiled.rpartition(".")[2] for twin in _impl.TWINS}
    assert sorted(built - listed) == [], (
        "compiled modules missing from _impl.TWINS: add each pair there"
    )


def test_type_checkers_see_every_reference_twin() -> None:
    """``_impl`` star-imports each reference twin for type checkers only; a twin added to
    the table without its star import would be untyped."""
    tree = ast.parse(pathlib.Path(_impl.__file__).read_text())
    star_imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ["*"]
    }
    assert star_imported == {twin.reference for twin in _impl.TWINS}


def test_each_name_is_declared_by_one_reference_twin() -> None:
    owners: dict[str, list[str]] = {}
    for twin in _impl.TWINS:
        module = _reference(twin)
        assert len(set(module.__all__)) == len(module.__all__), twin.reference
        for name in module.__all__:
            assert hasattr(module, name), f"{twin.reference} declares {name!r} but lacks it"
            owners.setdefault(name, []).append(twin.reference)
    assert {n: o for n, o in owners.items() if len(o) > 1} == {}
    assert set(vars(_impl)["__all__"]) == set(owners) | {
        "ENGINE",
        "IMPORT_ERROR",
        "TWINS",
        "debug_counters",
    }


def test_impl_binds_each_declared_name_from_the_selected_engine() -> None:
    for twin in _impl.TWINS:
        reference = _reference(twin)
        if _impl.ENGINE == "compiled" and twin.built:
            source = importlib.import_module(f"{_CORE}.{twin.compiled}")
        else:
            source = reference
        for name in reference.__all__:
            assert getattr(_impl, name) is getattr(source, name), (twin, name)


_HALF_BUILT = """
import sys, types
# The first compiled module of the table, built without its declared names.
sys.modules["vivace._core._ext._heap"] = types.ModuleType("vivace._core._ext._heap")
from vivace._core import _impl
print(_impl.ENGINE)
print(_impl.IMPORT_ERROR)
print(_impl.DeadlineHeap.__module__, _impl.KernelBase.__module__)
"""


def _run_half_built(**env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("VIVACE_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_HALF_BUILT)],
        env={**child_env, **env},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def test_a_half_built_compiled_engine_falls_back_whole() -> None:
    assert _impl.TWINS[0].compiled == "_ext._heap"
    proc = _run_half_built()
    assert proc.returncode == 0, proc.stderr
    engine, error, modules = proc.stdout.splitlines()
    assert engine == "reference"
    assert error == (
        "vivace._core._ext._heap does not define 'DeadlineHeap', which its twin "
        "vivace._core._heap_py declares in __all__"
    )
    # Nothing of the compiled engine is mixed in.
    assert modules == "vivace._core._heap_py vivace._core._kernel_py"


def test_a_half_built_compiled_engine_is_an_import_error_when_required() -> None:
    proc = _run_half_built(VIVACE_REQUIRE_EXTENSIONS="1")
    assert proc.returncode != 0
    assert (
        "ImportError: VIVACE_REQUIRE_EXTENSIONS=1 but the compiled engine could not be "
        "imported (vivace._core._ext._heap does not define 'DeadlineHeap', which its twin "
        "vivace._core._heap_py declares in __all__)"
    ) in proc.stderr


# ---------------------------------------------------------------- the pairs
# Each check returns the pair's mismatches as sentences; the test reports them all.


def _kinds_and_names(ref: Any, comp: Any) -> list[str]:
    bad = []
    if list(getattr(comp, "__all__", ())) != list(ref.__all__):
        # _impl binds the compiled engine from the compiled module's own list.
        bad.append(f"__all__: {getattr(comp, '__all__', None)!r} vs {ref.__all__!r}")
    for name in ref.__all__:
        if not hasattr(comp, name):
            bad.append(f"{name}: missing from the compiled twin")
            continue
        a, b = getattr(ref, name), getattr(comp, name)
        if _kind(a) != _kind(b):
            bad.append(f"{name}: a {_kind(a)} in the reference, a {_kind(b)} compiled")
        elif _kind(a) != "constant":
            for attr in ("__name__", "__qualname__"):
                if (getattr(a, attr), getattr(b, attr)) != (name, name):
                    bad.append(f"{name}.{attr}: {getattr(a, attr)!r} vs {getattr(b, attr)!r}")
    return bad


def _constants(ref: Any, comp: Any) -> list[str]:
    plain = (int, float, str, bytes, bool, tuple, frozenset, type(None))
    bad = []
    for name in _declared(ref, "constant"):
        a, b = getattr(ref, name), getattr(comp, name)
        if isinstance(a, plain):
            if (type(b), b) != (type(a), a):
                bad.append(f"{name}: {a!r} vs {b!r}")
        # Sentinels: one object per engine, alike in type name and repr.
        elif (type(b).__name__, repr(b)) != (type(a).__name__, repr(a)):
            bad.append(f"{name}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}")
    return bad


def _function_signatures(ref: Any, comp: Any) -> list[str]:
    bad = []
    for name in _declared(ref, "function"):
        a, b = getattr(ref, name), getattr(comp, name)
        if _shape(b) is None:
            bad += _arity_mismatches(f"{name}()", a, b, inspect.signature(a))
        elif _shape(a) != _shape(b):
            bad.append(f"{name}(): {_shape(a)} vs {_shape(b)}")
    return bad


def _method_signatures(ref: Any, comp: Any) -> list[str]:
    bad = []
    for name in _declared(ref, "class"):
        a, b = getattr(ref, name), getattr(comp, name)
        for attr in sorted(_dir(a) & _dir(b)):
            if not (callable(getattr(a, attr)) and callable(getattr(b, attr))):
                continue
            sa, sb = _shape(getattr(a, attr)), _shape(getattr(b, attr))
            if sa is not None and sb is not None and sa != sb:
                bad.append(f"{name}.{attr}(): {sa} vs {sb}")
            binding = [
                type(inspect.getattr_static(cls, attr)).__name__
                for cls in (a, b)
                if isinstance(inspect.getattr_static(cls, attr), (staticmethod, classmethod))
            ]
            if len(binding) == 1:
                bad.append(f"{name}.{attr}: a {binding[0]} on one twin only")
    return bad


def _constructors(ref: Any, comp: Any) -> list[str]:
    bad = []
    for name in _declared(ref, "class"):
        a, b = getattr(ref, name), getattr(comp, name)
        with _instances(name, ref, comp):
            pass  # both build from the same arguments
        if _shape(b) is None:
            bad += _arity_mismatches(f"{name}()", a, b, inspect.signature(a))
        elif _shape(a) != _shape(b):
            bad.append(f"{name}(): {_shape(a)} vs {_shape(b)}")
    return bad


def _instance_attributes(ref: Any, comp: Any) -> list[str]:
    """Public names match both ways; the compiled twin's private names (those it makes
    visible to the Python layer) exist in the reference too, which may keep more helpers
    of its own. A shared name is a method on both or data on both."""
    bad = []
    for name in _declared(ref, "class"):
        with _instances(name, ref, comp) as (a, b):
            da, db = _dir(a), _dir(b)
            public_a = {n for n in da if not n.startswith("_")}
            public_b = {n for n in db if not n.startswith("_")}
            if public_a - public_b:
                bad.append(f"{name}: only the reference has {sorted(public_a - public_b)}")
            if db - da:
                bad.append(f"{name}: only the compiled twin has {sorted(db - da)}")
            for attr in sorted(da & db):
                if len({callable(getattr(x, attr, None)) for x in (a, b)}) > 1:
                    bad.append(f"{name}.{attr}: a method on one twin, data on the other")
    return bad


def _subclassing(ref: Any, comp: Any) -> list[str]:
    """A class final on one side (a C type the engine never extends) is final on both."""

    def final(cls: type) -> bool:
        try:
            type("Sub", (cls,), {})
        except TypeError:
            return True
        return False

    bad = []
    for name in _declared(ref, "class"):
        a, b = getattr(ref, name), getattr(comp, name)
        if final(a) != final(b):
            verdicts = ["final" if final(cls) else "subclassable" for cls in (a, b)]
            bad.append(f"{name}: {verdicts[0]} in the reference, {verdicts[1]} compiled")
    return bad


@pytest.mark.parametrize("twin", PAIRS)
def test_every_class_can_be_compared(twin: _impl.Twin) -> None:
    ref = _reference(twin)
    assert [n for n in _declared(ref, "class") if n not in CONSTRUCT] == [], "add to CONSTRUCT"


@pytest.mark.parametrize("twin", PAIRS)
def test_compiled_twin_matches_its_reference(twin: _impl.Twin) -> None:
    ref = _reference(twin)
    comp = _compiled(twin)
    bad = _kinds_and_names(ref, comp)
    if not bad:  # the rest assumes every declared name exists, of the same kind
        for check in (
            _constants,
            _function_signatures,
            _method_signatures,
            _constructors,
            _instance_attributes,
            _subclassing,
        ):
            bad += check(ref, comp)
    assert not bad, f"{twin.compiled} differs from {twin.reference}:\n" + "\n".join(bad)


def test_the_checks_see_drifts() -> None:
    """The checks on a made-up compiled kernel that drifted in four ways."""
    ref = importlib.import_module(f"{_CORE}._kernel_py")
    fake = types.ModuleType("fake_kernel")
    vars(fake).update({name: getattr(ref, name) for name in ref.__all__})
    fake.__all__ = list(ref.__all__)  # type: ignore[attr-defined]

    async def checkpoint(extra: object) -> None:
        pass

    class SystemClock(ref.SystemClock):  # type: ignore[name-defined]
        def current_time(self, now: float = 0.0) -> float:
            return now

        def rate(self) -> float:
            return 1.0

    checkpoint.__qualname__ = "checkpoint"
    SystemClock.__qualname__ = "SystemClock"
    fake.checkpoint = checkpoint  # type: ignore[attr-defined]
    fake.SystemClock = SystemClock  # type: ignore[attr-defined]
    fake.CHECKPOINT = "Checkpoint"  # type: ignore[attr-defined]
    assert _kinds_and_names(ref, fake) == []
    assert [s.split(":")[0] for s in _function_signatures(ref, fake)] == ["checkpoint()"]
    assert [s.split(":")[0] for s in _constants(ref, fake)] == ["CHECKPOINT"]
    assert [s.split(":")[0] for s in _method_signatures(ref, fake)] == [
        "SystemClock.current_time()"
    ]
    assert _instance_attributes(ref, fake) == ["SystemClock: only the compiled twin has ['rate']"]
    del fake.KernelBase
    assert _kinds_and_names(ref, fake) == ["KernelBase: missing from the compiled twin"]
    fake.__all__ = [name for name in ref.__all__ if name != "KernelBase"]  # type: ignore[attr-defined]
    assert [s.split(":")[0] for s in _kinds_and_names(ref, fake)] == [
        "__all__",
        "KernelBase",
    ]
