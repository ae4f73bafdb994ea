"""Leaf helpers that give classes trio's shape: ``final`` (no subclassing) and
``NoPublicConstructor`` (no direct construction). No engine state; the API layer gets
them through ``vivace._core``'s surface."""

from __future__ import annotations

from abc import ABCMeta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, final as _typing_final

T = TypeVar("T")


def _refuse_subclass(cls: type[object]) -> NoReturn:
    raise TypeError(f"{cls.__module__}.{cls.__qualname__} does not support subclassing")


def _final_impl(cls: type[T]) -> type[T]:
    # Any later subclass statement calls __init_subclass__ of the parent: refuse there.
    cls.__init_subclass__ = classmethod(_refuse_subclass)  # type: ignore[assignment]
    return _typing_final(cls)


if TYPE_CHECKING:
    from typing import final
else:
    final = _final_impl


@final
class NoPublicConstructor(ABCMeta):
    """Metaclass for classes users may hold but never build themselves.

    Calling the class raises TypeError; the implementation builds instances with
    ``cls._create(...)``.
    """

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} has no public constructor")

    def _create(cls: type[T], *args: object, **kwargs: object) -> T:
        # type.__call__ is the normal construction path that our __call__ overrides.
        return type.__call__(cls, *args, **kwargs)


def name_asyncgen(agen: Any) -> str:
    """Return a qualified name for the function that produced async generator *agen*."""
    code = getattr(agen, "ag_code", None)
    if code is None:
        return repr(agen)
    try:
        module = agen.ag_frame.f_globals["__name__"]
    except (AttributeError, KeyError):
        module = f"<{code.co_filename}>"
    try:
        qualname = agen.__qualname__
    except AttributeError:
        qualname = code.co_name
    return f"{module}.{qualname}"
