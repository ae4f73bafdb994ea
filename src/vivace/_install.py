"""``vivace.install()``: existing trio programs and libraries run on vivace.

Design notes
------------
* One finder, first on ``sys.meta_path``, answers ``trio`` and every ``trio.<path>`` by
  importing ``vivace.<path>`` and handing back that very module object. Its loader's
  ``create_module`` returns the vivace module and ``exec_module`` executes nothing, so
  vivace's code runs exactly once, under its own name, whichever name imported it first.
  Being first on ``sys.meta_path`` is what makes it win over a real trio installed beside
  vivace.
* importlib stamps the alias's spec onto the module it loads (``module_from_spec`` sets
  ``__spec__`` unconditionally); ``exec_module`` puts the module's own spec back, so a
  vivace module keeps its identity (``importlib.reload``, ``python -m``, pickling).
* A ``trio.<path>`` with no vivace counterpart is refused by the finder itself. Returning
  ``None`` instead would let the path finder load the real trio's submodule under a vivace
  parent: two cores in one process.
* The same finder answers ``importlib.metadata`` for the distribution named ``trio``
  (libraries read its version at import; Hypothesis reads its entry points). It is a
  stand-in generated here, not a file on disk: nothing has to be installed for it.
* sniffio's answer needs no switch: ``_core._run_context.library_name`` reports "trio"
  whenever ``sys.modules["trio"]`` is vivace.
* Without ``install()``, anyio looks for a backend module named after sniffio's answer,
  ``anyio._backends._vivace``. A second finder, last on ``sys.meta_path`` (so it is asked
  only after every real finder said no), answers that one name with a module whose import
  fails with the fix, instead of a bare ModuleNotFoundError.
* Python processes started by ``multiprocessing``'s spawn and forkserver methods begin
  afresh and would import the real trio (hypercorn's workers are spawned). While
  installed, the ``-c`` program multiprocessing hands those interpreters starts with
  ``vivace.install()``: the wrapper sits on ``multiprocessing.util.spawnv_passfds`` (POSIX:
  both methods launch through it) and ``multiprocessing.spawn.get_command_line``
  (Windows), the two places the command line passes through.
* Process-global state, changed under one lock; ``uninstall()`` removes exactly the
  ``sys.modules`` entries the finder made and the multiprocessing wrappers.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# The trio release whose public API vivace implements; what the stand-in metadata says.
TRIO_VERSION = "0.35.0"

_HOW_TO_INSTALL = (
    "call vivace.install() first thing in the program, before anything imports trio "
    "(anyio, httpx, trio-websocket, hypercorn and pytest-trio all do), or start it "
    "unchanged with 'python -m vivace run script.py' (or 'python -m vivace run -m module'); "
    "for a test suite, run pytest with '-p vivace.install_plugin'"
)


def _trio_name_to_vivace(fullname: str) -> str | None:
    if fullname == "trio":
        return "vivace"
    if fullname.startswith("trio."):
        return "vivace" + fullname[4:]
    return None


class _AliasLoader(importlib.abc.Loader):
    """Loads nothing: returns an already imported vivace module for a trio name."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._own_spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self._module

    def exec_module(self, module: ModuleType) -> None:
        # module_from_spec replaced __spec__ with the alias's; vivace keeps its own.
        module.__spec__ = self._own_spec


class _TrioStandInDistribution(importlib.metadata.Distribution):
    """The ``trio`` distribution's metadata, answered while vivace is installed as trio."""

    def read_text(self, filename: str) -> str | None:
        from ._version import __version__

        if filename == "METADATA":
            return (
                "Metadata-Version: 2.1\n"
                "Name: trio\n"
                f"Version: {TRIO_VERSION}\n"
                f"Summary: vivace {__version__} standing in for trio {TRIO_VERSION} "
                "(vivace.install())\n"
                "Requires-Python: >=3.11\n"
            )
        if filename == "entry_points.txt":
            # trio's own Hypothesis hook path; it resolves to vivace._core._run.
            return "[hypothesis]\ntrio = trio._core._run:_hypothesis_plugin_setup\n"
        if filename == "top_level.txt":
            return "trio\n"
        return None

    def locate_file(self, path: str | os.PathLike[str]) -> Path:
        return Path(__file__).resolve().parent / path


def _is_trio_distribution_name(name: str) -> bool:
    return re.sub(r"[-_.]+", "-", name).lower() == "trio"


class _TrioFinder(importlib.abc.MetaPathFinder):
    """Makes ``trio`` and ``trio.*`` vivace, and answers the ``trio`` metadata."""

    def __init__(self) -> None:
        self.aliased: set[str] = set()

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        vivace_name = _trio_name_to_vivace(fullname)
        if vivace_name is None:
            return None
        try:
            module = importlib.import_module(vivace_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and vivace_name.startswith(exc.name):
                raise ModuleNotFoundError(
                    f"No module named {fullname!r}: vivace, installed as trio by "
                    f"vivace.install(), has no counterpart of {fullname!r} (it would be "
                    f"{vivace_name!r}). trio's public modules are all there; if a library "
                    "needs this private one, please report it to vivace.",
                    name=fullname,
                ) from None
            raise
        own_spec = module.__spec__
        self.aliased.add(fullname)
        return importlib.machinery.ModuleSpec(
            fullname,
            _AliasLoader(module),
            origin=own_spec.origin if own_spec is not None else None,
            is_package=hasattr(module, "__path__"),
        )

    def find_distributions(self, context: Any = None) -> Iterator[importlib.metadata.Distribution]:
        name = getattr(context, "name", None)
        if name is None or _is_trio_distribution_name(name):
            yield _TrioStandInDistribution()

    def invalidate_caches(self) -> None:
        pass


class _AnyioHintLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        raise RuntimeError(
            "anyio (or a library built on it, such as httpx) was used inside vivace.run, "
            "but anyio has no backend named 'vivace': vivace runs anyio's trio backend "
            "once installed as trio. To fix it, " + _HOW_TO_INSTALL + "."
        )


class _AnyioHintFinder(importlib.abc.MetaPathFinder):
    """Turns anyio's lookup of a 'vivace' backend into an error that names the fix."""

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "anyio._backends._vivace":
            return None
        return importlib.machinery.ModuleSpec(fullname, _AnyioHintLoader())


_INSTALL_PREFIX = "import vivace; vivace.install(); "


def _prefix_multiprocessing_program(args: list[str]) -> list[str]:
    # multiprocessing starts its children as '<python> [flags] -c "from multiprocessing...'
    out = list(args)
    for i in range(len(out) - 1):
        if out[i] == "-c" and out[i + 1].startswith("from multiprocessing"):
            out[i + 1] = _INSTALL_PREFIX + out[i + 1]
    return out


def _patch_multiprocessing() -> list[tuple[Any, str, Any]]:
    import multiprocessing.spawn
    import multiprocessing.util

    patched: list[tuple[Any, str, Any]] = []
    if sys.platform == "win32":
        original_cmd = multiprocessing.spawn.get_command_line

        def get_command_line(**kwds: Any) -> list[str]:
            return _prefix_multiprocessing_program(original_cmd(**kwds))

        multiprocessing.spawn.get_command_line = get_command_line
        patched.append((multiprocessing.spawn, "get_command_line", original_cmd))
    else:
        original_spawnv = multiprocessing.util.spawnv_passfds

        def spawnv_passfds(path: Any, args: Any, passfds: Any) -> Any:
            return original_spawnv(path, _prefix_multiprocessing_program(list(args)), passfds)

        multiprocessing.util.spawnv_passfds = spawnv_passfds
        patched.append((multiprocessing.util, "spawnv_passfds", original_spawnv))
    return patched


def _unpatch_multiprocessing(patched: list[tuple[Any, str, Any]]) -> None:
    for owner, name, original in reversed(patched):
        setattr(owner, name, original)


_lock = threading.Lock()
_finder: _TrioFinder | None = None
_mp_patches: list[tuple[Any, str, Any]] = []


def _real_trio_modules() -> list[str]:
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if (name == "trio" or name.startswith("trio."))
        and module is not None
        and not getattr(module, "__name__", "").startswith("vivace")
    )


def install() -> None:
    """Make ``import trio`` (and every ``trio.<module>``) give vivace.

    Call it once, first thing, before anything imports trio; from then on trio programs
    and the libraries built on trio (anyio's trio backend, httpx, trio-websocket,
    hypercorn, pytest-trio) run on vivace, and ``importlib.metadata`` reports a ``trio``
    distribution of the trio version vivace implements. It takes precedence over a real
    trio installed beside vivace, and it carries over to the Python processes that
    ``multiprocessing`` starts with its spawn or forkserver method (forked ones inherit
    it anyway). Calling it again does nothing.

    Raises:
        RuntimeError: if the real trio was imported already (two libraries cannot share
            the module name); the message says how to install earlier.
    """
    global _finder
    with _lock:
        if _finder is not None:
            if _finder in sys.meta_path:
                return
            # Someone took the finder off sys.meta_path: start over.
            _finder = None
            _unpatch_multiprocessing(_mp_patches)
            _mp_patches.clear()
        real = _real_trio_modules()
        if real:
            origin = getattr(sys.modules.get(real[0]), "__file__", None)
            raise RuntimeError(
                f"vivace.install() came too late: the real trio is already imported "
                f"({real[0]!r} from {origin or 'an unknown location'}), and one process "
                f"cannot have both under the name 'trio'. To fix it, {_HOW_TO_INSTALL}."
            )
        finder = _TrioFinder()
        sys.meta_path.insert(0, finder)
        _finder = finder
        _mp_patches[:] = _patch_multiprocessing()
        importlib.invalidate_caches()


def uninstall() -> None:
    """Undo :func:`install`: ``import trio`` finds the real trio again, if there is one.

    Modules that already hold a reference to vivace under the name ``trio`` keep it;
    this is meant for tests and tools that install and remove vivace in one process.
    Does nothing if vivace is not installed.
    """
    global _finder
    with _lock:
        finder = _finder
        if finder is None:
            return
        _finder = None
        _unpatch_multiprocessing(_mp_patches)
        _mp_patches.clear()
        try:
            sys.meta_path.remove(finder)
        except ValueError:
            pass
        for name in finder.aliased:
            module = sys.modules.get(name)
            if module is not None and getattr(module, "__name__", "").startswith("vivace"):
                del sys.modules[name]
        importlib.invalidate_caches()


def is_installed() -> bool:
    """Whether :func:`install` is in effect."""
    finder = _finder
    return finder is not None and finder in sys.meta_path


def _register_anyio_hint() -> None:
    if not any(isinstance(f, _AnyioHintFinder) for f in sys.meta_path):
        sys.meta_path.append(_AnyioHintFinder())
