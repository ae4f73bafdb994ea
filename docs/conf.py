"""Sphinx configuration for vivace's documentation.

Build: ``.venv/bin/python -m sphinx -W docs build/docs`` (what tests/test_docs_build.py runs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# autodoc imports vivace: the reference engine is pure Python, so every signature is
# introspectable (compiled functions would show only what Cython's embedsignature keeps).
# Set before anything imports vivace; an explicit choice in the environment still wins.
if "VIVACE_REQUIRE_EXTENSIONS" not in os.environ:
    os.environ.setdefault("VIVACE_NO_EXTENSIONS", "1")

_here = Path(__file__).resolve().parent
sys.path.insert(0, str(_here / "_ext"))
# A fresh clone's editable install already puts src/ on the path; this makes a plain
# checkout build too.
sys.path.insert(0, str(_here.parent / "src"))

import vivace  # noqa: E402

project = "vivace"
author = "the vivace contributors"
copyright = "the vivace contributors"
release = vivace.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "vivace_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# docs/results/ holds benchmark output (tables, charts), not pages of the site.
exclude_patterns = ["_build", "results", "_ext", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options: dict[str, object] = {}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# Every cross-reference must resolve, with two exemptions: targets outside vivace (the
# standard library, outcome, pyOpenSSL, type variables), for which no inventory is
# available offline, and vivace's private modules, which annotations sometimes name.
# References to vivace's public names are checked: a public name used in a signature
# or docstring but missing from the reference fails the build.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!vivace(\.|$)).*"),
    (r"py:.*", r"vivace(\.\w+)*\._.*"),
]

html_theme = "alabaster"
html_title = f"vivace {release}"
html_static_path: list[str] = []
