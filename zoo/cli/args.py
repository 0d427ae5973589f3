"""What the zoo's argparse commands (``generate``, ``predict``, ``export``) share: the parser of a
command that reads a checkpoint, and argument types."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1, else argparse's one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A number > 0, else argparse's one-line usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def checkpoint_parser(
    prog: str, description: str, examples: str, checkpoint_help: str
) -> argparse.ArgumentParser:
    """The parser of a command whose first argument is a checkpoint, with its examples as epilog."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help=checkpoint_help)
    return parser


def require_recipe(command: str, argv: list[str]) -> None:
    """A command that builds a recipe's run (``tune-lr``, ``sweep``) needs at least one ``-c``."""
    from zoo.errors import ZooError

    if not any(a in ("-c", "--config") or a.startswith("--config=") for a in argv):
        raise ZooError(f"zoo {command} needs a recipe: -c RECIPE (zoo recipes list), as for zoo train.")
