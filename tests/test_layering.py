"""DESIGN §1: the API layer reaches the core only through ``vivace._core``'s surface,
and the core never imports the API layer: no exceptions (the helpers both layers use,
``final``, ``NoPublicConstructor``, ``warn_deprecated``, ``Clock`` and ``Instrument``, live
in ``vivace._core`` and reach the API layer through its surface)."""

from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess
import sys

# The source tree beside the tests, not the imported package: an installed wheel
# carries no Cython sources, and these checks read them.
SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "vivace"


def _outside_the_core(module: str) -> bool:
    """True for vivace itself and any vivace module not under vivace._core: the package
    root counts, since importing it (``import vivace``, ``from .. import x``) loads the
    whole API layer."""
    parts = module.split(".")
    return parts[0] == "vivace" and (len(parts) == 1 or parts[1] != "_core")


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    package_parts = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - node.level + 1])
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            for alias in node.names:
                found.append((node.lineno, f"{module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def test_api_layer_uses_only_the_core_surface() -> None:
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "_core":
            continue
        for lineno, module in _imports(path):
            parts = module.split(".")
            if parts[:2] == ["vivace", "_core"] and len(parts) > 2 and parts[2].startswith("_"):
                # vivace._core._x: reaching past the surface (the engine switch is
                # allowed for introspection in diagnostics only).
                if parts[2] != "_impl":
                    bad.append(f"{rel}:{lineno} imports {module}")
    assert not bad, "\n".join(bad)


def test_core_does_not_import_the_api_layer() -> None:
    bad = []
    for path in (SRC / "_core").rglob("*.py"):
        rel = path.relative_to(SRC)
        for lineno, module in _imports(path):
            if _outside_the_core(module):
                bad.append(f"{rel}:{lineno} imports {module}")
    assert not bad, "\n".join(bad)


def test_import_scan_flags_every_way_out_of_the_core() -> None:
    assert _outside_the_core("vivace")
    assert _outside_the_core("vivace._util")
    assert _outside_the_core("vivace.abc.Clock")
    assert not _outside_the_core("vivace._core")
    assert not _outside_the_core("vivace._core._util.final")
    assert not _outside_the_core("outcome")


# Loads every core module with an empty stand-in for the vivace package, so that only
# what the core itself imports (at import time, by any means) can appear in sys.modules.
_LOAD_THE_CORE_ALONE = """
import importlib, importlib.util, pkgutil, sys, types

spec = importlib.util.find_spec("vivace")
root = types.ModuleType("vivace")
root.__path__ = list(spec.submodule_search_locations)
sys.modules["vivace"] = root
import vivace._core
for info in pkgutil.iter_modules(vivace._core.__path__, "vivace._core."):
    if not info.ispkg:
        importlib.import_module(info.name)
print(vivace._core.ENGINE)
print(" ".join(sorted(
    name for name in sys.modules
    if name.startswith("vivace.") and not name.startswith("vivace._core")
)))
"""


def test_loading_every_core_module_loads_nothing_of_the_api_layer(engine: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_THE_CORE_ALONE],
        capture_output=True, text=True, timeout=50, env=dict(os.environ), check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded_engine, api_modules = proc.stdout.split("\n")[:2]
    assert loaded_engine == engine  # the child ran the engine this run tests
    assert api_modules == "", f"the core alone loaded {api_modules}"


def test_vivace_never_imports_real_trio() -> None:
    for path in SRC.rglob("*.py"):
        for lineno, module in _imports(path):
            assert module.split(".")[0] != "trio", f"{path}:{lineno} imports {module}"


# Cython sources (.pyx, .pxi, .pxd) are not Python ASTs; their import statements
# ('from M import a, b', 'from M cimport ...', 'import M', 'cimport M', possibly indented
# inside a function) are found line by line. Names imported from a package count as
# modules too ('from .. import _sync' reaches vivace._sync), as in _imports above.
_CYTHON_IMPORT = re.compile(
    r"^\s*(?:from\s+(?P<from>\.*[\w.]*)\s+c?import\s*(?P<names>[^#]*)"
    r"|c?import\s+(?P<plain>[\w.]+(?:\s*,\s*[\w.]+)*))"
)


def _cython_imports_in(text: str, package_parts: tuple[str, ...]) -> list[tuple[int, str]]:
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        match = _CYTHON_IMPORT.match(line)
        if match is None:
            continue
        if match["from"] is None:
            found.extend((lineno, name.strip()) for name in match["plain"].split(","))
            continue
        module = match["from"]
        dots = len(module) - len(module.lstrip("."))
        if dots:
            base = list(package_parts[: len(package_parts) - dots + 1])
            module = ".".join(base + ([module[dots:]] if module[dots:] else []))
        found.append((lineno, module))
        for name in match["names"].strip("()\\ ").split(","):
            name = name.split()[0] if name.split() else ""
            if name.isidentifier():
                found.append((lineno, f"{module}.{name}"))
    return found


def _cython_sources() -> list[pathlib.Path]:
    return sorted(p for suffix in ("*.pyx", "*.pxi", "*.pxd") for p in SRC.rglob(suffix))


def test_compiled_engine_imports_only_the_core_and_never_trio() -> None:
    sources = _cython_sources()
    assert sources, "no Cython sources found next to the package"
    seen = 0
    bad = []
    for path in sources:
        rel = path.relative_to(SRC)
        package_parts = path.relative_to(SRC.parent).parts[:-1]
        for lineno, module in _cython_imports_in(path.read_text(), package_parts):
            seen += 1
            parts = module.split(".")
            if parts[0] == "trio":
                bad.append(f"{rel}:{lineno} imports {module}")
            if _outside_the_core(module):
                bad.append(f"{rel}:{lineno} imports {module}")
    # The engine's modules import each other and the core's Python modules; finding
    # none would mean the scan itself is broken.
    assert seen > 20, f"only {seen} import statements found in {len(sources)} Cython files"
    assert not bad, "\n".join(bad)


def test_cython_import_scan_resolves_relative_and_cimport_forms() -> None:
    text = (
        "from vivace._core._ext._kernel cimport KernelBase\n"
        "    from .._traps import Abort as A  # comment\n"
        "cimport cython\n"
        "import os, outcome\n"
        "from ... import _sync\n"
        "from vivace._core._exceptions import (\n"
    )
    modules = [m for _, m in _cython_imports_in(text, ("vivace", "_core", "_ext"))]
    assert modules == [
        "vivace._core._ext._kernel",
        "vivace._core._ext._kernel.KernelBase",
        "vivace._core._traps",
        "vivace._core._traps.Abort",
        "cython",
        "os",
        "outcome",
        "vivace",
        "vivace._sync",
        "vivace._core._exceptions",
    ]
