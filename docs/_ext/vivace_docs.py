"""Sphinx helpers for vivace's reference pages.

- ``vivace-socket-constants``: documents every constant ``vivace.socket`` re-exports.
  They come from the running Python's ``socket`` module, so the list differs between
  platforms and Python versions; writing them out by hand would rot.
- Classes users never instantiate (``NoPublicConstructor``, and protocols such as
  ``TaskStatus``) are shown without the meaningless ``(*args, **kwargs)`` signature,
  with a line saying where instances come from.
- A ``missing-reference`` hook that resolves a bare or privately qualified class name in
  a signature (``Clock``, ``vivace._core._run.Task``) to the public name documented in
  one of the reference pages, so annotations link where a reader can look them up.
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode

# Where a bare name is looked for, in order: the first namespace documenting it wins.
NAMESPACES = (
    "vivace",
    "vivace.abc",
    "vivace.lowlevel",
    "vivace.testing",
    "vivace.socket",
    "vivace.to_thread",
    "vivace.from_thread",
)


def socket_constant_names() -> list[str]:
    """The upper-case data names ``vivace.socket`` exposes in this Python (``CMSG_LEN``
    and ``CMSG_SPACE`` are functions, documented on their own)."""
    module = importlib.import_module("vivace.socket")
    return sorted(
        name for name in dir(module) if name.isupper() and not callable(getattr(module, name))
    )


class SocketConstants(SphinxDirective):
    """Index every socket constant and show them as one compact table."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        module = importlib.import_module("vivace.socket")
        names = socket_constant_names()
        lines: list[str] = []
        # Targets only (no rendering per constant): one table reads better than 300
        # one-line entries, and the targets still make ``:data:`AF_INET``` links work.
        for name in names:
            lines += [f".. py:data:: {name}", "   :no-typesetting:", ""]
        lines += [".. list-table::", "   :header-rows: 1", "", "   * - name", "     - value"]
        for name in names:
            value = getattr(module, name)
            shown = f"``{int(value)}``" if isinstance(value, int) else type(value).__name__
            lines += [f"   * - :py:data:`{name}`", f"     - {shown}"]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="vivace-socket-constants"), 0, container)
        return list(container.children)


def _not_constructible(obj: object) -> bool:
    from vivace._core._util import NoPublicConstructor

    return isinstance(obj, NoPublicConstructor) or bool(getattr(obj, "_is_protocol", False))


def hide_constructor_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    if what in ("class", "exception") and _not_constructible(obj):
        return "", return_annotation
    return None


def note_no_constructor(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    if what in ("class", "exception") and _not_constructible(obj):
        lines += ["", "*vivace creates instances of this class; user code does not.*"]


def resolve_public_name(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    if node.get("refdomain") != "py":
        return None
    target: str = node.get("reftarget", "")
    if target.startswith("vivace.") and "._" not in target:
        return None  # a public path that really is missing: let nitpicky report it
    short = target.rsplit(".", 1)[-1]
    if short.startswith("_"):
        return None
    objects: dict[str, Any] = env.get_domain("py").objects  # type: ignore[attr-defined]
    for namespace in NAMESPACES:
        entry = objects.get(f"{namespace}.{short}")
        if entry is not None:
            return make_refnode(
                app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, short
            )
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("vivace-socket-constants", SocketConstants)
    app.connect("missing-reference", resolve_public_name)
    app.connect("autodoc-process-signature", hide_constructor_signature)
    app.connect("autodoc-process-docstring", note_no_constructor)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
