"""The documentation builds, covers the whole public API, and its tutorial runs.

The site is built once per pytest process (module fixture) with Sphinx's ``-W
--keep-going -n``: any warning, including a reference to a public vivace name that is
not documented, fails the build. autodoc always imports the reference engine (see
docs/conf.py), whichever engine this process tests; the tutorial's programs run on this
process's engine.
"""

from __future__ import annotations
import __future__

import importlib
import os
import pickle
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from sphinx.util.inventory import InventoryFile

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

NAMESPACES = [
    "vivace",
    "vivace.lowlevel",
    "vivace.testing",
    "vivace.abc",
    "vivace.socket",
    "vivace.to_thread",
    "vivace.from_thread",
]

# Each tutorial program runs under a hang guard; they take well under a second each.
PROGRAM_TIMEOUT = 30


def _sphinx_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIVACE_REQUIRE_EXTENSIONS", None)
    env["VIVACE_NO_EXTENSIONS"] = "1"
    return env


class Site:
    def __init__(self, out: Path, doctrees: Path, result: subprocess.CompletedProcess[str]):
        self.out = out
        self.doctrees = doctrees
        self.result = result


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    base = tmp_path_factory.mktemp("docs")
    out, doctrees = base / "html", base / "doctrees"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            "html",
            "-W",
            "--keep-going",
            "-n",
            "-q",
            "-E",
            "-d",
            str(doctrees),
            str(DOCS),
            str(out),
        ],
        env=_sphinx_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Site(out, doctrees, result)


def test_docs_build_without_warnings(site: Site) -> None:
    assert site.result.returncode == 0, site.result.stdout + site.result.stderr
    assert site.result.stderr == "", site.result.stderr
    assert (site.out / "index.html").is_file()


def _public_names(namespace: str) -> set[str]:
    module = importlib.import_module(namespace)
    return {
        name
        for name in dir(module)
        if not name.startswith("_")
        and not isinstance(getattr(module, name), types.ModuleType)
        # ``from __future__ import annotations`` leaves its feature object behind, in
        # trio.socket as in vivace.socket: not API.
        and not isinstance(getattr(module, name), __future__._Feature)
    }


def _documented(site: Site) -> set[str]:
    with open(site.out / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    return {
        name
        for kind, entries in inventory.items()
        if kind.startswith("py:") and kind != "py:module"
        for name in entries
    }


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_reference_covers_every_public_name(site: Site, namespace: str) -> None:
    assert site.result.returncode == 0, site.result.stderr
    public = _public_names(namespace)
    documented = {
        name.removeprefix(namespace + ".")
        for name in _documented(site)
        if name.startswith(namespace + ".") and "." not in name.removeprefix(namespace + ".")
    }
    assert public, namespace
    assert sorted(public - documented) == [], f"undocumented names in {namespace}"
    # and nothing documented that the namespace does not have (a stale page)
    assert sorted(documented - public) == [], f"documented but absent from {namespace}"


def test_every_page_is_in_the_toctree(site: Site) -> None:
    with open(site.doctrees / "environment.pickle", "rb") as f:
        env = pickle.load(f)
    reachable, todo = set(), ["index"]
    while todo:
        doc = todo.pop()
        if doc not in reachable:
            reachable.add(doc)
            todo.extend(env.toctree_includes.get(doc, []))
    pages = {
        path.relative_to(DOCS).with_suffix("").as_posix()
        for pattern in ("*.md", "reference/*.rst")
        for path in DOCS.glob(pattern)
    }
    assert {"index", "tutorial", "limitations", "changelog", "architecture"} <= pages
    assert sorted(pages - reachable) == []
    # benchmark output is not part of the site
    assert not (site.out / "results").exists()


FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def tutorial_programs() -> list[tuple[str, str]]:
    """Each ``python`` block of the tutorial, with the ``text`` block that follows it
    (before the next program) as its expected output."""
    programs: list[tuple[str, str]] = []
    for language, body in FENCE.findall((DOCS / "tutorial.md").read_text()):
        if language == "python":
            programs.append((body, ""))
        elif language == "text":
            assert programs and programs[-1][1] == "", "an output block without a program"
            programs[-1] = (programs[-1][0], body)
    return programs


# The tutorial's programs sleep for whole seconds so that their output is in a fixed
# order; here they run on MockClock's virtual time (autojump), which gives the same
# output without the wait or any dependence on the machine's speed. A program that
# passes its own clock keeps it.
RUNNER = """
import runpy, sys
import vivace
from vivace.testing import MockClock

real_run = vivace.run

def run(*args, **kwargs):
    kwargs.setdefault("clock", MockClock(autojump_threshold=0))
    return real_run(*args, **kwargs)

vivace.run = run
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def test_tutorial_has_programs() -> None:
    programs = tutorial_programs()
    assert len(programs) >= 10
    assert all(expected for _, expected in programs), "every program shows its output"


@pytest.mark.parametrize("index", range(len(tutorial_programs())))
def test_tutorial_program_runs(index: int, tmp_path: Path) -> None:
    source, expected = tutorial_programs()[index]
    program = tmp_path / f"tutorial_{index}.py"
    program.write_text(source)
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", RUNNER, str(program)],
        capture_output=True,
        text=True,
        timeout=PROGRAM_TIMEOUT,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == expected


# A backticked repository path in architecture.md: has a directory part or a source
# file's extension.
PATH_TOKEN = re.compile(r"`([\w./*-]+(?:/[\w.*-]*|\.(?:py|pyx|pxd|pxi|h)))`")
# Where architecture.md's short paths are relative to.
PATH_BASES = ["", "src/vivace/", "src/vivace/_core/", "src/vivace/_core/_ext/", "csrc/", "tests/"]


def test_architecture_is_self_contained() -> None:
    text = (DOCS / "architecture.md").read_text()
    assert "../" not in text and "DESIGN.md" not in text and "shared/" not in text
    # (built extensions, `*.so`, exist only after a build)
    paths = {p for p in PATH_TOKEN.findall(text) if not p.startswith(".") and not p.endswith(".so")}
    assert len(paths) > 20
    missing = [
        p for p in sorted(paths) if not any(list(ROOT.glob(base + p)) for base in PATH_BASES)
    ]
    assert missing == []
