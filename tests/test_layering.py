"""DESIGN §1: the API layer reaches the core only through ``vivace._core``'s surface,
and the core never imports the API layer (leaf utilities excepted)."""

from __future__ import annotations

import ast
import pathlib

import vivace

SRC = pathlib.Path(vivace.__file__).parent
# Neutral leaf modules both layers may use: no engine state, no API-layer behaviour.
LEAF_UTILITIES = {"_util", "_deprecate", "_abc", "_version"}


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
            parts = module.split(".")
            if parts[0] == "vivace" and len(parts) > 1 and parts[1] != "_core":
                if parts[1] not in LEAF_UTILITIES:
                    bad.append(f"{rel}:{lineno} imports {module}")
    assert not bad, "\n".join(bad)


def test_vivace_never_imports_real_trio() -> None:
    for path in SRC.rglob("*.py"):
        for lineno, module in _imports(path):
            assert module.split(".")[0] != "trio", f"{path}:{lineno} imports {module}"
