"""``zoo recipes``: list, show, copy and locate the shipped recipes (no torch import)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from zoo.cli.args import command_parser
from zoo.errors import ZooError
from zoo.files import atomic_write, check_writable
from zoo.recipes import find_recipe, list_recipes, recipes_dir


def main(argv: list[str]) -> None:
    parser = command_parser(
        "zoo recipes",
        "The YAML recipes shipped with lightning-zoo.",
        "examples:\n  zoo recipes list\n  zoo recipes show mlp_digits\n"
        "  zoo recipes copy mlp_digits my_digits.yaml   # then: zoo train -c my_digits.yaml",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="{list,show,copy,path}")
    sub.add_parser("list", help="each recipe with its one-line description")
    show = sub.add_parser("show", help="print a recipe")
    show.add_argument("name")
    copy = sub.add_parser("copy", help="copy a recipe to a file to edit")
    copy.add_argument("name")
    copy.add_argument("dest", nargs="?", help="target file (default: NAME.yaml in this folder)")
    sub.add_parser("path", help="the folder holding the recipes")
    args = parser.parse_args(argv)

    if args.action == "list":
        recipes = list_recipes()
        width = max(len(r.name) for r in recipes)
        print("recipes (zoo train -c NAME):")
        for r in recipes:
            if not r.is_fragment:
                print(f"  {r.name:<{width}}  {r.description}")
        print("\nfragments (add to a recipe with a second -c NAME):")
        for r in recipes:
            if r.is_fragment:
                print(f"  {r.name:<{width}}  {r.description}")
    elif args.action == "show":
        sys.stdout.write(find_recipe(args.name, option=None).path.read_text(encoding="utf-8"))
    elif args.action == "copy":
        recipe = find_recipe(args.name, option=None)
        dest = Path(args.dest or f"{recipe.name.rsplit('/', 1)[-1]}.yaml")
        if dest.exists():
            raise ZooError(f"{dest} exists already; choose another destination.")
        if not dest.parent.is_dir():
            raise ZooError(f"{dest.parent} is not a folder; copy the recipe into an existing folder.")
        check_writable(dest, f"copy to {dest}", f"{recipe.name.rsplit('/', 1)[-1]}.yaml")
        text = renamed_copy(recipe.path.read_text(encoding="utf-8"), recipe.name, dest)
        atomic_write(dest, lambda handle: handle.write(text))
        print(f"copied {recipe.name} to {dest}; run it with: zoo train -c {dest} (runs in runs/{dest.stem}/)")
    else:
        print(recipes_dir())


def renamed_copy(text: str, name: str, dest: Path) -> str:
    """A recipe's text for its copy ``dest``: its runs go to ``runs/<dest's stem>`` (so runs of the
    edited copy never mix with the original's), its usage line names the copy, and the original's
    ``# measured:`` line is left out."""
    text = re.sub(r"(?m)^(\s*default_root_dir:\s*)\S+", rf"\g<1>runs/{dest.stem}", text)
    text = re.sub(r"(?m)^# measured:.*\n", "", text)  # the original's result, not the copy's
    return re.sub(rf"(?m)^(#.*zoo \w+ -c ){re.escape(name)}\b", rf"\g<1>{dest}", text)
