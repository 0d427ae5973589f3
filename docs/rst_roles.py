"""A griffe extension for the API pages: the docstrings are written for reading in the source and in
Sphinx-flavoured text (``code``, :class:`~zoo.models.MLP`, :func:`zoo.load`); mkdocstrings reads them
as Markdown, where the roles would show raw. Rewrite them as inline code: ``:role:`~a.b.C``` -> ``C``,
``:role:`a.b.c``` -> ``a.b.c``."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc|paramref):`(~?)([^`]+)`")


def plain(text: str) -> str:
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class RstRoles(griffe.Extension):
    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
