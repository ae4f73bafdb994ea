"""Small helpers shared by the API layer and the core.

These carry no engine state; they exist so every public class can have trio's shape
(final, no public constructor, public `__module__`).
"""

from __future__ import annotations

from abc import ABCMeta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, final as _typing_final

if TYPE_CHECKING:
    pass

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


def fixup_module_metadata(module_name: str, namespace: dict[str, Any]) -> None:
    """Give every public object re-exported by *module_name* that module's name as its
    ``__module__`` (and a matching ``__qualname__``), so reprs and pickles show the
    public path (``vivace.CancelScope``) instead of the private one."""
    seen: set[int] = set()

    def fix_one(qualname: str, name: str, obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        mod = getattr(obj, "__module__", None)
        if mod is None or not mod.startswith("vivace."):
            return
        try:
            obj.__module__ = module_name
        except (AttributeError, TypeError):
            return
        if isinstance(obj, type):
            for attr_name, attr_value in obj.__dict__.items():
                fix_one(f"{qualname}.{attr_name}", attr_name, attr_value)
        if hasattr(obj, "__name__") and "." not in getattr(obj, "__qualname__", ""):
            try:
                obj.__name__ = name
                obj.__qualname__ = qualname
            except (AttributeError, TypeError):
                pass

    for objname, obj in list(namespace.items()):
        if not objname.startswith("_"):
            fix_one(objname, objname, obj)
