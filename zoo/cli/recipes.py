"""``zoo recipes``: list, show, copy and locate the shipped recipes (no torch import)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from zoo.errors import ZooError
from zoo.recipes import find_recipe, list_recipes, recipes_dir


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="zoo recipes",
        description="The YAML recipes shipped with lightning-zoo.",
        epilog="examples:\n  zoo recipes list\n  zoo recipes show mlp_digits\n"
        "  zoo recipes copy mlp_digits my_digits.yaml   # then: zoo train -c my_digits.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        sys.stdout.write(find_recipe(args.name).path.read_text(encoding="utf-8"))
    elif args.action == "copy":
        recipe = find_recipe(args.name)
        dest = Path(args.dest or f"{recipe.name.rsplit('/', 1)[-1]}.yaml")
        if dest.exists():
            raise ZooError(f"{dest} exists already; choose another destination.")
        shutil.copyfile(recipe.path, dest)
        print(f"copied {recipe.name} to {dest}; run it with: zoo train -c {dest}")
    else:
        print(recipes_dir())
