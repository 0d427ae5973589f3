"""MkDocs hook: the parts of the docs that come from the code, generated at build time so they never
drift: the recipe table (from the shipped recipes' headers), the trained models' table (from the
weights' manifest) and the lists of named options (from the zoo's registries). A page asks for one with an HTML comment, e.g. ``<!-- zoo:recipes -->``."""

from __future__ import annotations

import re
from typing import Any


def recipe_table() -> str:
    from zoo.recipes import list_recipes

    recipes = list_recipes()
    rows = ["| recipe | what it trains, on what, and its target | measured |", "| --- | --- | --- |"]
    rows += [
        f"| `{r.name}` | {r.description} | {r.measured or 'not yet (built for a GPU)'} |"
        for r in recipes
        if not r.is_fragment
    ]
    rows += ["", "| fragment (a second `-c`) | what it adds |", "| --- | --- |"]
    rows += [f"| `{r.name}` | {r.description} |" for r in recipes if r.is_fragment]
    return "\n".join(rows)


def registry_list(kind: str) -> str:
    from zoo import registry

    names = {
        "activations": registry.ACTIVATIONS,
        "losses": registry.LOSSES,
        "optimizers": registry.OPTIMIZERS,
        "schedulers": registry.SCHEDULERS,
        "models": registry.MODELS,
        "data": registry.DATA,
    }[kind].list()
    return ", ".join(f"`{name}`" for name in names)


def render(markdown: str) -> str:
    """``markdown`` with every ``<!-- zoo:... -->`` marker replaced by what it names."""

    def replace(match: re.Match[str]) -> str:
        what = match.group(1)
        if what == "pretrained":
            from zoo.pretrained import table

            return table()
        return recipe_table() if what == "recipes" else registry_list(what)

    return re.sub(r"<!-- zoo:(\w+) -->", replace, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return render(markdown)
