"""Build the compiled engine: one extension module per src/vivace/_core/_ext/*.pyx.

Project metadata lives in pyproject.toml; this file only declares the extensions.

- ``<name>.pyx`` becomes ``vivace._core._ext.<name>``, compiled with ``csrc/`` on
  the include path. No .pyx at all is fine: the package is then pure Python.
- Platform backends are built only where they can work: ``_epoll*`` on Linux,
  ``_poll*`` and ``_sockio*`` on every POSIX system, ``_kqueue*`` on macOS and the
  BSDs, ``_iocp*`` on Windows.
- A pyx that needs a C file from csrc/ names it in its header, relative to the
  repository root::

      # distutils: sources = csrc/vv_heap.c

- The compiled engine is optional: when there is no working C compiler (or a
  module fails to compile or link) the build prints a warning, drops every
  extension module and installs the pure-Python reference engine, which
  ``import vivace`` then announces with a RuntimeWarning. ``pip install`` never
  fails for lack of a compiler.
- ``VIVACE_REQUIRE_EXTENSIONS=1`` at build time turns that fallback into a build
  error (release wheels, CI, development builds: a silently pure build there would
  hide a broken compiler).
- ``VIVACE_BUILD_PURE=1`` skips the extensions on purpose (no compiler needed).
- ``VIVACE_DEBUG=1`` at build time defines the C macro ``VV_DEBUG=1`` (leak and
  invariant counters). Switching it needs a forced rebuild; scripts/test does that.
- ``VIVACE_ANNOTATE=1`` also writes Cython's HTML annotation next to each pyx.
"""

from __future__ import annotations

import os
import sys
import tempfile
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

EXT_PACKAGE = "vivace._core._ext"
EXT_DIR = os.path.join("src", "vivace", "_core", "_ext")
C_DIR = "csrc"

_BSD_OR_MAC = ("darwin", "freebsd", "openbsd", "netbsd", "dragonfly")

# What a missing or broken C toolchain raises from build_ext: a CompileError or
# LinkError; a compiler that is not installed is an ExecError (or an OSError from
# spawn); no usable compiler class at all is a PlatformError. Matched by name within
# distutils: setuptools can hold two copies of distutils' error classes at once
# (setuptools._distutils and the `distutils` alias), so isinstance() misses one.
_TOOLCHAIN_ERRORS = {"CompileError", "LinkError", "DistutilsExecError", "DistutilsPlatformError"}


def _is_toolchain_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    return any(
        cls.__name__ in _TOOLCHAIN_ERRORS and "distutils" in cls.__module__
        for cls in type(exc).__mro__
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _builds_here(module: str) -> bool:
    """Whether a platform-specific backend belongs in this platform's build."""
    if module.startswith("_epoll"):
        return sys.platform.startswith("linux")
    if module.startswith(("_poll", "_sockio")):
        # _sockio: non-blocking socket calls (MSG_DONTWAIT) on any readiness backend.
        return sys.platform != "win32"
    if module.startswith("_kqueue"):
        return sys.platform.startswith(_BSD_OR_MAC)
    if module.startswith("_iocp"):
        return sys.platform == "win32"
    return True


def _extensions() -> list[Extension]:
    """The extension modules, still as .pyx: build_ext cythonizes them once it knows
    the compiler works, so a build without one does not spend a minute in Cython."""
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

    return [
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


def _cythonize_in_place(extensions: list[Extension]) -> None:
    """Replace each extension's .pyx source by the generated C (plus what its header
    declares). The Extension objects themselves are kept: setuptools has annotated
    them with state of its own by the time build_ext runs."""
    from Cython.Build import cythonize  # build-system requirement

    generated = cythonize(
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
    by_name = {ext.name: ext for ext in generated}
    for ext in extensions:
        new = by_name[ext.name]
        for attr in ("sources", "include_dirs", "define_macros", "libraries",
                     "library_dirs", "extra_compile_args", "extra_link_args", "depends"):
            setattr(ext, attr, getattr(new, attr))


def _warn(message: str) -> None:
    # pip shows a build backend's output only with -v, except what goes to stderr
    # before a failure; a banner at least makes it easy to find in a build log.
    bar = "*" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)


class optional_build_ext(build_ext):
    """build_ext that falls back to a pure-Python build when the C toolchain fails.

    The engine is all-or-nothing (vivace._core._impl loads every compiled twin or
    none), so one failed module drops all of them rather than shipping a half."""

    def run(self) -> None:
        if not self.extensions:
            return
        # setuptools' run() clears inplace while it builds; _go_pure needs to know.
        self._was_inplace = bool(self.inplace)
        if _env_flag("VIVACE_BUILD_PURE"):
            self._go_pure("VIVACE_BUILD_PURE is set")
            return
        stage = "no working C compiler"
        try:
            self._check_compiler()
            stage = "a compiled module did not build"
            _cythonize_in_place(self.extensions)
            super().run()
        except Exception as exc:
            # Anything else (a Cython error, a bug here) is not a missing compiler.
            if not _is_toolchain_error(exc) or _env_flag("VIVACE_REQUIRE_EXTENSIONS"):
                raise
            self._go_pure(f"{stage}: {type(exc).__name__}: {exc}")

    def _check_compiler(self) -> None:
        """Compile and link a trivial C file with the compiler the build will use;
        raises what the real build would raise if it cannot."""
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler

        compiler = new_compiler(compiler=self.compiler, force=True)
        customize_compiler(compiler)
        with tempfile.TemporaryDirectory(prefix="vivace-cc-") as tmp:
            source = os.path.join(tmp, "probe.c")
            with open(source, "w") as f:
                f.write("int vivace_probe(void) { return 0; }\n")
            objects = compiler.compile([source], output_dir=tmp)
            compiler.link_shared_object(objects, os.path.join(tmp, "probe.so"))

    def _go_pure(self, reason: str) -> None:
        # A module built before the failure must not ship (half an engine), nor may one
        # an earlier in-place build left in the source tree: it would load instead.
        was_inplace = self.inplace
        for inplace in {False, self._was_inplace}:
            self.inplace = inplace
            for ext in self.extensions:
                path = self.get_ext_fullpath(ext.name)
                if os.path.exists(path):
                    os.remove(path)
        self.inplace = was_inplace
        self.extensions = []
        _warn(
            f"vivace: building the compiled engine failed ({reason}); installing the "
            "pure-Python reference engine only.\n"
            "It is complete but slower; `import vivace` will say so with a "
            "RuntimeWarning. To get the compiled engine, install a C compiler and "
            "reinstall (or install a binary wheel)."
        )


if __name__ == "__main__":
    # setuptools wants paths relative to the project root; pip runs us from there.
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    setup(ext_modules=_extensions(), cmdclass={"build_ext": optional_build_ext})
