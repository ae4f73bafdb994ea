"""Proof, from inside a child program, that it ran on vivace and not on the real trio.

Every ecosystem program (and every inner pytest session) calls ``ran_on_vivace()`` at the
end of its run, after everything it uses has been imported. It asserts that

* ``sys.modules["trio"]`` is the ``vivace`` module itself (install() won the import);
* no loaded module comes from the real trio's directory: trio 0.35.0 is installed beside
  vivace as the test oracle, so a library that slipped past the hook would show up here;
* sniffio, asked inside the run, answers "trio" (anyio and httpx dispatch on it);

and prints ``MARK <engine>``, which the parent test (tests/_ecosystem.py) requires.
This module must not import trio itself: a program imports it after install().
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

MARK = "@@ran-on-vivace@@"


def real_trio_dir() -> str:
    """Where the oracle trio lives, found by searching sys.path directly (PathFinder
    skips the meta-path hook that install() adds, so it still sees the real package)."""
    spec = importlib.machinery.PathFinder.find_spec("trio")
    assert spec is not None and spec.submodule_search_locations, (
        "the real trio is not installed, so the check below would prove nothing"
    )
    return os.path.realpath(next(iter(spec.submodule_search_locations)))


def check_modules() -> str:
    """The import-level half of the proof; returns the vivace engine's name."""
    import vivace
    from vivace._core import _impl

    trio_module = sys.modules.get("trio")
    assert trio_module is vivace, f"sys.modules['trio'] is {trio_module!r}, not vivace"
    real_dir = real_trio_dir() + os.sep
    leaked = sorted(
        name
        for name, module in list(sys.modules.items())
        if isinstance(getattr(module, "__file__", None), str)
        and os.path.realpath(module.__file__).startswith(real_dir)
    )
    assert not leaked, f"modules loaded from the real trio ({real_dir}): {leaked}"
    return _impl.ENGINE


def ran_on_vivace() -> None:
    """Call inside the run (a task of trio.run / anyio.run), at the end of the program."""
    import sniffio

    library = sniffio.current_async_library()
    assert library == "trio", f"sniffio reports {library!r} inside the run"
    engine = check_modules()
    print(MARK, engine, flush=True)
