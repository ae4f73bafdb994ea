"""The engine switch: the one place that decides compiled vs reference engine.

* ``VIVACE_NO_EXTENSIONS=1``      -> the pure-Python reference engine.
* default                          -> the compiled engine if it was built, else the
                                      reference, with one RuntimeWarning that says so
                                      (an install without a C compiler is pure Python).
* ``VIVACE_REQUIRE_EXTENSIONS=1`` -> a missing or broken compiled engine is an
                                      ImportError instead of a fallback.

``ENGINE`` says which one loaded; the test suite's guard test checks it.

No engine name is listed here: each twin declares its exports in its ``__all__`` (the
compiled twin's list equals the reference's, which tests/test_twins_parity.py checks),
``TWINS`` pairs every reference twin with its compiled module, and whichever engine loads
is read through its own lists. The engine is all-or-nothing: a compiled module that lacks
a declared name fails the whole compiled engine, so the two are never mixed.
"""

from __future__ import annotations

import importlib
import os
import select
import sys
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    # Type checkers see the reference twins' precise types; at run time the names are
    # bound below from whichever engine loads.
    from ._epoll_py import *  # noqa: F403  (importable anywhere; usable on Linux only)
    from ._heap_py import *  # noqa: F403
    from ._io_readiness_py import *  # noqa: F403
    from ._kernel_py import *  # noqa: F403
    from ._kqueue_py import *  # noqa: F403  (importable anywhere; usable on macOS/BSD)
    from ._poll_py import *  # noqa: F403
    from ._scope_py import *  # noqa: F403
    from ._sockio_py import *  # noqa: F403
    from ._sync_py import *  # noqa: F403


class Twin(NamedTuple):
    """A compiled/reference pair of engine modules (names relative to ``vivace._core``)."""

    reference: str
    compiled: str
    # False where setup.py does not build the compiled module: the compiled engine then
    # uses the reference twin for this pair.
    built: bool


TWINS: tuple[Twin, ...] = (
    Twin("_heap_py", "_ext._heap", True),
    Twin("_kernel_py", "_ext._kernel", True),
    Twin("_scope_py", "_ext._scope", True),
    Twin("_sync_py", "_ext._sync", True),  # its __all__ includes _sync_channel_py's names
    Twin("_io_readiness_py", "_ext._io_readiness", True),
    Twin("_epoll_py", "_ext._epoll", sys.platform == "linux"),
    Twin("_poll_py", "_ext._poll", sys.platform != "win32"),
    Twin("_sockio_py", "_ext._sockio", sys.platform != "win32"),
    # macOS and the BSDs. Never on Linux, where select.kqueue is only the tests'
    # emulation (tests/_fake_kqueue.py), which runs on the reference engine only.
    Twin(
        "_kqueue_py",
        "_ext._kqueue",
        sys.platform not in ("linux", "win32") and hasattr(select, "kqueue"),
    ),
)

_NO_EXT = os.environ.get("VIVACE_NO_EXTENSIONS", "") not in ("", "0")
_REQUIRE_EXT = os.environ.get("VIVACE_REQUIRE_EXTENSIONS", "") not in ("", "0")

if _NO_EXT and _REQUIRE_EXT:
    raise ImportError(
        "VIVACE_NO_EXTENSIONS and VIVACE_REQUIRE_EXTENSIONS are both set; unset one of them"
    )

ENGINE: str
IMPORT_ERROR: BaseException | None = None


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.{name}")


def _bind_twin(reference: ModuleType, source: ModuleType) -> dict[str, object]:
    """The names *reference* declares, taken from *source*; an ImportError naming the
    module and the name if *source* lacks one (a half-built engine)."""
    bound = {}
    for name in reference.__all__:
        try:
            bound[name] = getattr(source, name)
        except AttributeError:
            raise ImportError(
                f"{source.__name__} does not define {name!r}, which its twin "
                f"{reference.__name__} declares in __all__",
                name=source.__name__,
            ) from None
    return bound


def _bind_compiled(twin: Twin) -> dict[str, object]:
    """The compiled twin's exports (its ``__all__``, which the parity test keeps equal to
    the reference's). The reference module is imported only to name what a half-built
    compiled module lacks, so a compiled run does not pay for importing it."""
    if not twin.built:
        reference = _module(twin.reference)
        return _bind_twin(reference, reference)
    compiled = _module(twin.compiled)
    names = getattr(compiled, "__all__", ())
    if names and all(hasattr(compiled, name) for name in names):
        return {name: getattr(compiled, name) for name in names}
    bound = _bind_twin(_module(twin.reference), compiled)  # raises, naming the gap
    if not names:
        raise ImportError(f"{compiled.__name__} declares no __all__", name=compiled.__name__)
    return bound


_names: dict[str, object] = {}
_use_reference = _NO_EXT
if not _NO_EXT:
    try:
        for twin in TWINS:
            _names.update(_bind_compiled(twin))
        ENGINE = "compiled"
    except ImportError as exc:
        if _REQUIRE_EXT:
            raise ImportError(
                "VIVACE_REQUIRE_EXTENSIONS=1 but the compiled engine could not be "
                f"imported ({exc}); build it with 'pip install -e .' (needs a C compiler "
                "and Cython) or unset VIVACE_REQUIRE_EXTENSIONS"
            ) from exc
        IMPORT_ERROR = exc
        _use_reference = True
if _use_reference:
    # The reference twins carry the declarations; their own import errors are bugs,
    # never a reason to change engine. Nothing of a half-loaded compiled engine is kept.
    _names = {}
    for twin in TWINS:
        reference = _module(twin.reference)
        _names.update(_bind_twin(reference, reference))
    ENGINE = "reference"
globals().update(_names)

if IMPORT_ERROR is not None:
    # Not silent: a user who expected the compiled engine would otherwise only see
    # everything run slower. Asking for the reference engine is the way to silence it.
    import warnings

    warnings.warn(
        "vivace is running on its pure-Python reference engine, because the compiled "
        f"engine could not be imported ({IMPORT_ERROR}). Everything works, only slower. "
        "Set VIVACE_NO_EXTENSIONS=1 to choose the reference engine and silence this "
        "warning; to get the compiled engine, reinstall vivace with a C compiler "
        "available, or from a binary wheel.",
        RuntimeWarning,
        stacklevel=1,
    )


def debug_counters() -> dict[str, int] | None:
    """Live-object counts of a VIVACE_DEBUG build of the compiled engine (tasks,
    kernels, deadline heaps); None for a release build or the reference engine."""
    if ENGINE != "compiled":
        return None
    from ._ext import _heap, _kernel  # type: ignore[attr-defined]

    kernel_counts = _kernel.debug_counters()
    heap_counts = _heap.debug_counters()
    if kernel_counts is None or heap_counts is None:
        return None
    return {**kernel_counts, **heap_counts}


if not TYPE_CHECKING:  # type checkers take the exports from the star imports above
    __all__ = ["ENGINE", "IMPORT_ERROR", "TWINS", "debug_counters", *_names]
del _names
