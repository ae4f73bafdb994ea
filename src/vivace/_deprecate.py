"""Deprecation warnings in trio's format (``X is deprecated since Trio V; use Y instead``)."""

from __future__ import annotations

import warnings
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

F = TypeVar("F", bound="Callable[..., Any]")


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


def deprecated(
    version: str, *, thing: object = None, issue: int | None, instead: object
) -> Callable[[F], F]:
    """Decorator: calling the function warns with ``warn_deprecated``."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            warn_deprecated(thing if thing is not None else wrapper, version, issue=issue,
                            instead=instead)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
