"""Deprecation warnings in trio's format (``X is deprecated since Trio V; use Y instead``).

A leaf module: the core warns with it, and the API layer gets it through ``vivace._core``'s
surface (``vivace.TrioDeprecationWarning`` is the public name of the category).
"""

from __future__ import annotations

import warnings


class TrioDeprecationWarning(FutureWarning):
    """Warns about trio API that is deprecated (and will go away in a later release).

    A FutureWarning, not a DeprecationWarning, so that it is shown by default.
    """


def _describe(thing: object) -> str:
    module = getattr(thing, "__module__", None)
    qualname = getattr(thing, "__qualname__", None)
    if module is not None and qualname is not None:
        return f"{module}.{qualname}"
    return str(thing)


def warn_deprecated(
    thing: object,
    version: str,
    *,
    issue: int | None,
    instead: object,
    stacklevel: int = 2,
    use_triodeprecationwarning: bool = True,
) -> None:
    message = f"{_describe(thing)} is deprecated since Trio {version}"
    message += " with no replacement" if instead is None else f"; use {_describe(instead)} instead"
    if issue is not None:
        message += f" (https://github.com/python-trio/trio/issues/{issue})"
    category: type[Warning] = (
        TrioDeprecationWarning if use_triodeprecationwarning else DeprecationWarning
    )
    warnings.warn(category(message), stacklevel=stacklevel + 1)
