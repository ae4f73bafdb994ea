"""What type checkers see of vivace's public namespaces, and the typing sample program.

scripts/typecheck runs mypy and pyright themselves (too slow for the suite); these tests
guard the same ground quickly:

* every public name of every public namespace is *explicitly* re-exported (``X as X``,
  ``__all__``, or defined there), read from the source the way the typing spec's rules
  for a ``py.typed`` package read it; the set equals the names present at run time, and
  equals what trio 0.35.0's own namespaces re-export, apart from vivace's own additions;
* tests/typing/sample_program.py, the program scripts/typecheck checks, runs correctly
  on the engine under test (it is a real program, not just something that type-checks).
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import socket as stdlib_socket
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

import vivace

NAMESPACES = ["", ".abc", ".lowlevel", ".socket", ".testing", ".to_thread", ".from_thread"]
# vivace's own public names, which trio does not have.
VIVACE_ONLY = {"": {"install", "uninstall"}}
TYPING_DIR = Path(__file__).parent / "typing"


def _module_source(module: ModuleType) -> ast.Module:
    assert module.__file__ is not None
    return ast.parse(Path(module.__file__).read_text())


def _resolve(module: ModuleType, level: int, name: str | None) -> ModuleType:
    package = module.__name__ if hasattr(module, "__path__") else module.__package__
    target = "." * level + (name or "")
    return importlib.import_module(target, package) if level else importlib.import_module(target)


class _TypingAsCheckersSeeIt:
    TYPE_CHECKING = True


def _static_condition(test: ast.expr) -> bool | None:
    names = {
        "sys": sys,
        "_sys": sys,
        "typing": _TypingAsCheckersSeeIt,
        "_t": _TypingAsCheckersSeeIt,
        "TYPE_CHECKING": True,
        "_TYPE_CHECKING": True,
    }
    try:
        return bool(eval(compile(ast.Expression(test), "<condition>", "eval"), names))
    except Exception:
        return None


def static_exports(module: ModuleType) -> set[str]:
    """The public names a type checker takes *module* to export: names it defines or
    assigns, ``from m import X as X``, ``from . import submodule``, ``from m import *``
    of such names, and ``__all__``. A plain ``from m import X`` or ``import m as other``
    is private."""
    names: set[str] = set()
    dunder_all: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        names.update(static_exports(_resolve(module, node.level, node.module)))
                    elif alias.asname == alias.name or (
                        # `from . import submodule` re-exports it, too
                        node.level and node.module is None and alias.asname is None
                    ):
                        names.add(alias.name)
            elif isinstance(node, ast.Import):
                names.update(alias.asname for alias in node.names if alias.asname == alias.name)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        names.add(target.id)
                        if target.id == "__all__" and node.value is not None:
                            dunder_all.update(ast.literal_eval(node.value))
            elif isinstance(node, ast.If):
                # As a checker does: for this platform and version, with TYPE_CHECKING
                # true; a condition it cannot evaluate here counts both ways.
                taken = _static_condition(node.test)
                if taken is not False:
                    visit(node.body)
                if taken is not True:
                    visit(node.orelse)
            elif isinstance(node, ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(node, block, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(_module_source(module).body)
    return {name for name in names | dunder_all if not name.startswith("_")}


def runtime_exports(module: ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and name != "annotations"  # `from __future__`
        # a submodule imported by another module of the package is not an export
        and not (isinstance(value, ModuleType) and name not in static_exports(module))
    }


@pytest.mark.parametrize("namespace", NAMESPACES, ids=lambda ns: f"vivace{ns}")
def test_every_runtime_name_is_explicitly_exported(namespace: str) -> None:
    module = importlib.import_module(f"vivace{namespace}")
    hidden = runtime_exports(module) - static_exports(module)
    assert not hidden, f"public at run time but not re-exported to type checkers: {sorted(hidden)}"


@pytest.mark.parametrize("namespace", NAMESPACES, ids=lambda ns: f"vivace{ns}")
def test_type_checkers_see_no_private_helpers(namespace: str) -> None:
    module = importlib.import_module(f"vivace{namespace}")
    static = static_exports(module)
    # Everything exported statically exists at run time (constants of other platforms
    # are the one exception, and only in vivace.socket).
    missing = static - runtime_exports(module)
    if namespace == ".socket":
        missing = {name for name in missing if not name.isupper()}
    assert not missing, f"re-exported to type checkers but absent at run time: {sorted(missing)}"


@pytest.mark.parametrize("namespace", NAMESPACES, ids=lambda ns: f"vivace{ns}")
def test_static_exports_are_trios(namespace: str) -> None:
    trio_module = pytest.importorskip(f"trio{namespace}")
    module = importlib.import_module(f"vivace{namespace}")
    ours, theirs = static_exports(module), static_exports(trio_module)
    if namespace == ".socket":
        # The constants: vivace lists the ones typeshed's socket stub declares; trio's
        # list also has a few Windows-only names typeshed lacks. Whatever this Python
        # has at run time must be in both.
        present = {name for name in vars(stdlib_socket) if name.isupper()}
        assert not (present & theirs) - ours
        ours = {name for name in ours if not name.isupper()}
        theirs = {name for name in theirs if not name.isupper()}
    assert ours - VIVACE_ONLY.get(namespace, set()) == theirs


def _load_script(name: str) -> ModuleType:
    path = Path(__file__).parent.parent / "scripts" / name
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_socket_constants_are_exactly_the_typeshed_stubs_names() -> None:
    # _socket_constants.py is generated (scripts/gen-socket-constants) from typeshed's
    # socket stub; a name added or lost by hand, or a typeshed upgrade not regenerated,
    # fails here.
    generator = _load_script("gen-socket-constants")
    expected = generator.typeshed_constants(generator.stub_path())
    tree = ast.parse(Path(generator.TARGET).read_text())
    declared = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "socket"
        for alias in node.names
    }
    assert declared == expected
    assert {"AF_INET", "SOCK_STREAM", "SO_REUSEADDR"} <= declared


def test_socket_constants_keep_the_stdlib_types() -> None:
    # Runtime identity is what the static declaration (an import from socket) promises.
    assert vivace.socket.AF_INET is stdlib_socket.AF_INET
    assert isinstance(vivace.socket.SOCK_STREAM, stdlib_socket.SocketKind)


def test_deprecated_testing_names_are_hidden_from_type_checkers() -> None:
    # trio's are: a module __getattr__ visible to checkers would type every misspelt
    # vivace.testing attribute as object. At run time they still resolve (with a warning).
    assert "__getattr__" not in static_exports(vivace.testing)
    assert callable(vivace.testing.__getattr__)


def test_the_typing_sample_program_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("trustme")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spec = importlib.util.spec_from_file_location(
        "vivace_typing_sample", TYPING_DIR / "sample_program.py"
    )
    assert spec is not None and spec.loader is not None
    sample = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, sample)
    spec.loader.exec_module(sample)
    # The mock clock's autojump makes an hour's sleep take no real time.
    assert sample.run_all() == 3600.0
