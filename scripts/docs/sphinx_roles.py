"""A griffe extension for the docs site: Sphinx-style docstrings made readable by mkdocstrings.

The docstrings are Google style, but they name other objects with Sphinx roles
(``:class:`~fer_multires.data.loaders.ResumableLoader```, ``:func:`resolve_multires```) and
document module constants with ``#:`` comments above them. Once the package is loaded:

* a constant without a docstring gets its ``#:`` comment lines as its docstring, so the API
  reference lists it with its description;
* each role becomes a mkdocs-autorefs link to the object's entry, titled as Sphinx would title
  it (``~`` keeps the last name only; ``Title <target>`` sets the title). A name is looked up in
  the docstring's scope (its object, then its module's imports), then as the one object of the
  package with that name. The link is optional: a target the reference does not render (a
  private name, an undocumented attribute) shows as plain code, not as a broken link.

``mkdocs.yml`` loads this file (``extensions`` of the mkdocstrings Python handler).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc|const):`(?P<text>[^`]+)`")
EXPLICIT_TITLE = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")
DOC_COMMENT = re.compile(r"^\s*#:\s?(?P<text>.*)$")


def walk(pkg: griffe.Module) -> Iterator[griffe.Object]:
    """Yield the package and every object defined in it (aliases left out), each once."""
    seen: set[str] = set()
    stack: list[griffe.Object] = [pkg]
    while stack:
        obj = stack.pop()
        if obj.path in seen:
            continue
        seen.add(obj.path)
        yield obj
        stack.extend(m for m in obj.members.values() if not m.is_alias)


def comment_docstring(obj: griffe.Object) -> str | None:
    """Return the ``#:`` comment lines right above an attribute's definition, or None."""
    if not obj.is_attribute or obj.lineno is None:
        return None
    try:
        lines = obj.module.lines
    except (AttributeError, OSError, ValueError):
        return None
    found: list[str] = []
    number = obj.lineno - 2  # the line above, 0-based
    while number >= 0 and (match := DOC_COMMENT.match(lines[number])):
        found.insert(0, match["text"])
        number -= 1
    return "\n".join(found) if found else None


class SphinxRoles(griffe.Extension):
    """Give ``#:`` comments to constants and turn Sphinx roles into cross-references."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of ``pkg`` and of everything in it."""
        objects = list(walk(pkg))
        by_name: dict[str, list[str]] = defaultdict(list)
        for obj in objects:
            by_name[obj.name].append(obj.path)
        for obj in objects:
            if obj.docstring is None and (text := comment_docstring(obj)):
                obj.docstring = griffe.Docstring(text, parent=obj)
            if obj.docstring is not None:
                obj.docstring.value = ROLE.sub(
                    lambda m, o=obj: self.crossref(o, m["text"], by_name), obj.docstring.value
                )

    @staticmethod
    def resolve(obj: griffe.Object, target: str, by_name: dict[str, list[str]]) -> str:
        """Return the full path of ``target`` as named in ``obj``'s docstring, or ``target``."""
        target = target.lstrip(".")
        head, _, rest = target.partition(".")
        for scope in (obj, obj.module):
            try:
                found = scope.resolve(head)
            except (griffe.NameResolutionError, AttributeError, KeyError):
                continue
            return f"{found}.{rest}" if rest else found
        if "." not in head and len(by_name.get(head, ())) == 1:
            found = by_name[head][0]
            return f"{found}.{rest}" if rest else found
        return target

    @classmethod
    def crossref(cls, obj: griffe.Object, text: str, by_name: dict[str, list[str]]) -> str:
        """Return the autorefs tag for one role's text (``~a.b``, ``a.b``, ``Title <a.b>``)."""
        explicit = EXPLICIT_TITLE.match(text)
        if explicit:
            title, target = explicit["title"], explicit["target"]
        else:
            target = text
            title = text.lstrip("~").rsplit(".", 1)[-1] if text.startswith("~") else text
        identifier = cls.resolve(obj, target.lstrip("~"), by_name)
        return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'
