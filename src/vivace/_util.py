"""``fixup_module_metadata``: the API layer's public modules give what they re-export
their own ``__module__``. (The class-shape helpers ``final`` and ``NoPublicConstructor``
are the core's: ``vivace._core._util``.)"""

from __future__ import annotations

from typing import Any


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
