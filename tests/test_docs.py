"""The documentation site's generated parts and API targets (the site itself: `nox -s docs`, run by CI)."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_parts_follow_the_code() -> None:
    from zoo.recipes import list_recipes
    from zoo.registry import ACTIVATIONS, MODELS

    hooks = _hooks()
    table = hooks.render("<!-- zoo:recipes -->")
    for recipe in list_recipes():
        assert f"| `{recipe.name}` | {recipe.description} |" in table
    measured = [r for r in list_recipes() if r.measured]
    assert {"mlp_digits", "convnet_fashion", "gpt_chars"} <= {r.name for r in measured}
    assert all(f"| {r.measured} |" in table for r in measured)
    names = ", ".join(f"`{n}`" for n in ACTIVATIONS.list())
    assert hooks.render("a <!-- zoo:activations --> b") == f"a {names} b"
    models = (ROOT / "docs" / "models.md").read_text()
    assert "<!-- zoo:models -->" in models and all(f"`{n}`" in hooks.render(models) for n in MODELS.list())


def test_every_page_is_in_the_nav_and_every_api_target_imports() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages == set(re.findall(r":\s*(\w+\.md)$", config, flags=re.M))
    for target in re.findall(r"^::: ([\w.]+)$", (ROOT / "docs" / "api.md").read_text(), flags=re.M):
        module, _, name = target.rpartition(".")
        assert hasattr(importlib.import_module(module), name), target


def test_sphinx_roles_become_inline_code_on_the_api_pages() -> None:
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("rst_roles", ROOT / "docs" / "rst_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "see :class:`~zoo.models.MLP`, :func:`zoo.load` and :meth:`~zoo.models.GPT.generate`"
    assert module.plain(text) == "see `MLP`, `zoo.load` and `generate`"
