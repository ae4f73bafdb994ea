"""Build the compiled engine: one extension module per src/vivace/_core/_ext/*.pyx.

Project metadata lives in pyproject.toml; this file only declares the extensions.

- ``<name>.pyx`` becomes ``vivace._core._ext.<name>``, compiled with ``csrc/`` on
  the include path. No .pyx at all is fine: the package is then pure Python.
- Platform backends are built only where they can work: ``_epoll*`` on Linux,
  ``_kqueue*`` on macOS and the BSDs, ``_iocp*`` on Windows.
- A pyx that needs a C file from csrc/ names it in its header, relative to the
  repository root::

      # distutils: sources = csrc/vv_heap.c

- ``VIVACE_DEBUG=1`` at build time defines the C macro ``VV_DEBUG=1`` (leak and
  invariant counters). Switching it needs a forced rebuild; scripts/test does that.
- ``VIVACE_ANNOTATE=1`` also writes Cython's HTML annotation next to each pyx.
"""

from __future__ import annotations

import os
import sys
from glob import glob

from setuptools import Extension, setup

EXT_PACKAGE = "vivace._core._ext"
EXT_DIR = os.path.join("src", "vivace", "_core", "_ext")
C_DIR = "csrc"

_BSD_OR_MAC = ("darwin", "freebsd", "openbsd", "netbsd", "dragonfly")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _builds_here(module: str) -> bool:
    """Whether a platform-specific backend belongs in this platform's build."""
    if module.startswith("_epoll"):
        return sys.platform.startswith("linux")
    if module.startswith("_kqueue"):
        return sys.platform.startswith(_BSD_OR_MAC)
    if module.startswith("_iocp"):
        return sys.platform == "win32"
    return True


def _extensions() -> list[Extension]:
    # setuptools wants paths relative to the project root; pip runs us from there.
    here = os.path.dirname(os.path.abspath(__file__))
    if os.getcwd() != here:
        os.chdir(here)

    pyx_files = sorted(glob(os.path.join(EXT_DIR, "*.pyx")))
    modules = [
        (os.path.splitext(os.path.basename(path))[0], path)
        for path in pyx_files
    ]
    modules = [(name, path) for name, path in modules if _builds_here(name)]
    if not modules:
        return []

    debug = _env_flag("VIVACE_DEBUG")
    define_macros = [("VV_DEBUG", "1")] if debug else []
    extra_compile_args = [] if sys.platform == "win32" else ["-O2"]
    # A changed header must recompile its users; build_ext compares timestamps.
    depends = sorted(glob(os.path.join(C_DIR, "*.h")))

    extensions = [
        Extension(
            f"{EXT_PACKAGE}.{name}",
            sources=[path],
            include_dirs=[C_DIR],
            define_macros=define_macros,
            extra_compile_args=extra_compile_args,
            depends=depends,
        )
        for name, path in modules
    ]

    from Cython.Build import cythonize  # build-system requirement

    return cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        include_path=["src", C_DIR],
        annotate=_env_flag("VIVACE_ANNOTATE"),
    )


setup(ext_modules=_extensions())
